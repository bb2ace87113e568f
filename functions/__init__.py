"""Thin triggers: parse the input, make one call into ``shared``, map the result."""
