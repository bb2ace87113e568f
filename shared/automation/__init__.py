"""Imports nobody asked for by hand: promotion and mirror rules (``rules``), promotions on push
and mirror passes (``passes``), and the triggers' single calls into them (``calls``)."""
