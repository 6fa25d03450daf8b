"""A log of the images changed (``image_changes``): SQLite triggers note the id of every image whose
row or signatures are written, with a random token (a catalogue restored from a backup and changed
again reuses the numbers, never the tokens), so that a kept answer is brought up to date from the
images changed since it was made (``catalog.patch``) instead of being made again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DDL = {
    "sqlite": [
        f"CREATE TRIGGER {table}_{event.lower()}_logged AFTER {event} ON {table} BEGIN "
        f"INSERT INTO image_changes (image_id, token) VALUES ({row}.{column}, random()); END"
        for table, column in (("images", "id"), ("signatures", "image_id"))
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ]
    # A first row (no image has id 0): a catalogue upgraded has a mark before its next change.
    + ["INSERT INTO image_changes (image_id, token) VALUES (0, random())"],
}


def upgrade() -> None:
    op.create_table(
        "image_changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("image_id", sa.Integer, nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    for statement in DDL.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in ("images", "signatures"):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_logged")
    op.drop_table("image_changes")
