"""PostgreSQL counts signature changes once per statement, not once per row.

The per-row trigger of 0005 updated the one ``methods`` row of a method for every signature written. In
PostgreSQL each update of a row within a transaction adds a version of it that the next update must
walk to, so writing N signatures in one transaction cost O(N^2): 100,000 signatures written at once
took over 5 minutes of the server's time. A statement-level trigger reads the statement's rows from a
transition table and adds their count per method: the same totals. SQLite keeps its row triggers (an
update there is in place).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: 0005's PostgreSQL trigger, as it was (for the downgrade).
PER_ROW = [
    "CREATE OR REPLACE FUNCTION catalog_count_signature_change() RETURNS trigger AS $$ BEGIN "
    "UPDATE methods SET changes = changes + 1 WHERE name = COALESCE(NEW.method, OLD.method); "
    "RETURN NULL; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER signatures_counted AFTER INSERT OR UPDATE OR DELETE ON signatures "
    "FOR EACH ROW EXECUTE FUNCTION catalog_count_signature_change()",
]


#: The statement triggers (the same text as ``catalog.store.models.CHANGE_COUNTER_DDL``).
PER_STATEMENT = [
    "CREATE OR REPLACE FUNCTION catalog_count_signature_changes() RETURNS trigger AS $$ BEGIN "
    "UPDATE methods SET changes = methods.changes + counted.n "
    "FROM (SELECT method, count(*) AS n FROM changed GROUP BY method) AS counted "
    "WHERE methods.name = counted.method; "
    "RETURN NULL; END $$ LANGUAGE plpgsql",
    *(
        f"CREATE TRIGGER signatures_{event.lower()}_counted AFTER {event} ON signatures "
        f"REFERENCING {table} TABLE AS changed "
        "FOR EACH STATEMENT EXECUTE FUNCTION catalog_count_signature_changes()"
        for event, table in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS signatures_counted ON signatures")
    op.execute("DROP FUNCTION IF EXISTS catalog_count_signature_change()")
    for statement in PER_STATEMENT:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS signatures_{event}_counted ON signatures")
    op.execute("DROP FUNCTION IF EXISTS catalog_count_signature_changes()")
    for statement in PER_ROW:
        op.execute(statement)
