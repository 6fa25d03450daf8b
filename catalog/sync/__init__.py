"""Keeping the store equal to the disk: the indexer, the watcher, the Ray engine and the hand-off
between them; each change refreshes the stored pairs and groups."""
