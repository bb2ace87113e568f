"""The copy as a graph walk over :mod:`shared.content` protocols."""
