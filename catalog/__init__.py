"""catalog: a persistent catalogue of images that finds duplicates and counts copies."""

__version__ = "0.1.0"
