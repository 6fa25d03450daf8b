"""Settling duplicates: keep policies, actions on files with their journal and undo, "not a duplicate"
marks, and the review page (a small ASGI app, imported only by ``catalog review``)."""
