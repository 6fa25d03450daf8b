"""Settling duplicates: keep policies, journaled actions on files with their undo, the desktop trash,
and "not a duplicate" marks."""
