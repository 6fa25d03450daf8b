"""Near pairs kept at indexing time: one row per distinct code of a method (``catalog.pairs``).

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


def downgrade() -> None:
    op.drop_index("ix_code_pairs_method_code", table_name="code_pairs")
    op.drop_table("code_pairs")
    with op.batch_alter_table("methods") as batch:
        batch.drop_column("pairs_key")
