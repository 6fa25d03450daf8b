"""A counter of signature changes per method, kept by database triggers (a cheap stamp for caches).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DDL = {
    "sqlite": [
        f"CREATE TRIGGER signatures_{event.lower()}_counted AFTER {event} ON signatures BEGIN "
        f"UPDATE methods SET changes = changes + 1 WHERE name = {row}.method; END"
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION catalog_count_signature_change() RETURNS trigger AS $$ BEGIN "
        "UPDATE methods SET changes = changes + 1 WHERE name = COALESCE(NEW.method, OLD.method); "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER signatures_counted AFTER INSERT OR UPDATE OR DELETE ON signatures "
        "FOR EACH ROW EXECUTE FUNCTION catalog_count_signature_change()",
    ],
}


def upgrade() -> None:
    with op.batch_alter_table("methods") as batch:
        batch.add_column(sa.Column("changes", sa.Integer, nullable=False, server_default="0"))
    for statement in DDL.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "sqlite":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS signatures_{event}_counted")
    elif name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS signatures_counted ON signatures")
        op.execute("DROP FUNCTION IF EXISTS catalog_count_signature_change()")
    with op.batch_alter_table("methods") as batch:
        batch.drop_column("changes")
