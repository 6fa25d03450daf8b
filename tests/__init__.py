"""The tests, one folder per layer of ``catalog`` (``conftest.py`` and ``helpers.py`` shared)."""
