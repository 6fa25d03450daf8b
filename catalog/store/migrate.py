"""Run the Alembic migrations shipped in the package (``catalog.migrations``) on an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

import catalog.migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(catalog.migrations.__file__).parent))
    return config


def upgrade_to_head(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
