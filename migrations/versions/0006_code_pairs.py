"""Near pairs kept at indexing time: one row per distinct code of a hash method and one per image of a
vector method (``catalog.search.pairs``), and the signatures written since the last refresh (``unpaired``,
filled by triggers).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DDL = {
    "sqlite": [
        f"CREATE TRIGGER signatures_{event.lower()}_unpaired AFTER {event} ON signatures BEGIN "
        "INSERT INTO unpaired (method, image_id) VALUES (NEW.method, NEW.image_id); END"
        for event in ("INSERT", "UPDATE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION catalog_note_unpaired() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO unpaired (method, image_id) VALUES (NEW.method, NEW.image_id); "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER signatures_unpaired AFTER INSERT OR UPDATE ON signatures "
        "FOR EACH ROW EXECUTE FUNCTION catalog_note_unpaired()",
    ],
}


def upgrade() -> None:
    with op.batch_alter_table("methods") as batch:
        batch.add_column(sa.Column("pairs_key", sa.String(96), nullable=True))
    op.create_table(
        "code_pairs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("method", sa.String(32), sa.ForeignKey("methods.name"), nullable=False),
        sa.Column("code", sa.BigInteger, nullable=False),
        sa.Column("near", sa.LargeBinary, nullable=False),
        sa.Column("distances", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_code_pairs_method_code", "code_pairs", ["method", "code"], unique=True)
    op.create_table(
        "vector_pairs",
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("image_id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("near", sa.LargeBinary, nullable=False),
        sa.Column("near_seqs", sa.LargeBinary, nullable=False),
        sa.Column("scores", sa.LargeBinary, nullable=False),
        sa.Column("turned", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "unpaired",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("image_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_unpaired_method", "unpaired", ["method"])
    for statement in DDL.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":  # "the images under this folder" from an index
        op.execute("CREATE INDEX ix_images_path_pattern ON images (path text_pattern_ops)")
    # Every signature so far waits for its pairs (the next index stores them).
    op.execute("INSERT INTO unpaired (method, image_id) SELECT method, image_id FROM signatures")


def downgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "sqlite":
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS signatures_{event}_unpaired")
    elif name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS signatures_unpaired ON signatures")
        op.execute("DROP FUNCTION IF EXISTS catalog_note_unpaired()")
    if name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_images_path_pattern")
    op.drop_index("ix_unpaired_method", table_name="unpaired")
    op.drop_table("unpaired")
    op.drop_table("vector_pairs")
    op.drop_index("ix_code_pairs_method_code", table_name="code_pairs")
    op.drop_table("code_pairs")
    with op.batch_alter_table("methods") as batch:
        batch.drop_column("pairs_key")
