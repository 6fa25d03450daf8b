"""Pairs to groups around a reference, copy counts, and the groups kept as rows in the store."""
