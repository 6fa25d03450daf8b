"""A counter of the catalogue's changes beside the signatures' (images, roots, journal, marks), kept by
SQLite triggers: an answer kept from an unchanged catalogue is given again (``catalog.answers``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("images", "roots", "journal", "not_duplicates")

DDL = {
    "sqlite": [
        f"CREATE TRIGGER {table}_{event.lower()}_changed AFTER {event} ON {table} BEGIN "
        "UPDATE catalogue_changes SET changes = changes + 1 WHERE id = 1; END"
        for table in TABLES
        for event in ("INSERT", "UPDATE", "DELETE")
    ],
}


def upgrade() -> None:
    op.create_table(
        "catalogue_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("changes", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO catalogue_changes (id, changes) VALUES (1, 0)")
    for statement in DDL.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_changed")
    op.drop_table("catalogue_changes")
