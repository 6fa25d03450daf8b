"""A stamp of the catalogue's changes (images, signatures, roots, journal, marks): SQLite triggers draw
it anew at random at every change, and an answer kept from an unchanged catalogue
is given again (``catalog.answers``).

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

TABLES = ("images", "signatures", "roots", "journal", "not_duplicates")

DDL = {
    "sqlite": [
        f"CREATE TRIGGER {table}_{event.lower()}_changed AFTER {event} ON {table} BEGIN "
        "UPDATE catalogue_changes SET stamp = random() WHERE id = 1; END"
        for table in TABLES
        for event in ("INSERT", "UPDATE", "DELETE")
    ],
}


def upgrade() -> None:
    op.create_table(
        "catalogue_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("stamp", sa.BigInteger, nullable=False, server_default="0"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(f"INSERT INTO catalogue_changes (id, stamp) VALUES (1, {'random()' if sqlite else 0})")
    for statement in DDL.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_changed")
    op.drop_table("catalogue_changes")
