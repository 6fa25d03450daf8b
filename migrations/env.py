"""Alembic environment.

catalog runs migrations itself (``catalog.store.catalog``), handing over an open connection in
``config.attributes["connection"]``. From the command line (``alembic upgrade head``) the database is
``CATALOG_DB`` or ``sqlalchemy.url`` from alembic.ini.
"""

from alembic import context
from sqlalchemy import engine_from_config, pool

from catalog.config import resolve_db_url
from catalog.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_with_connection(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with_connection(connection)
        return
    import os

    url = resolve_db_url(os.environ["CATALOG_DB"]) if os.environ.get("CATALOG_DB") else None
    section = config.get_section(config.config_ini_section, {})
    if url:
        section["sqlalchemy.url"] = url
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        run_with_connection(conn)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
