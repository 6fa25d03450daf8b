"""Alembic environment of catalog (shipped inside the package as ``catalog.migrations``)."""
