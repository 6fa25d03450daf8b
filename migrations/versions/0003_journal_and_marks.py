"""The journal of actions on users' files, and "not a duplicate" marks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("keep", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("done_at", sa.DateTime),
        sa.Column("undone_at", sa.DateTime),
    )
    op.create_index("ix_journal_batch", "journal", ["batch"])
    op.create_index("ix_journal_state", "journal", ["state"])
    op.create_table(
        "not_duplicates",
        sa.Column("first", sa.String(64), primary_key=True),
        sa.Column("second", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("not_duplicates")
    op.drop_index("ix_journal_state", "journal")
    op.drop_index("ix_journal_batch", "journal")
    op.drop_table("journal")
