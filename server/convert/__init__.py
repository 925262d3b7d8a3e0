"""proto <-> domain conversion, one module per resource; pure functions."""
