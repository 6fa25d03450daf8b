"""A file to its signatures and facts: scanning folders, decoding once, the worker processes."""
