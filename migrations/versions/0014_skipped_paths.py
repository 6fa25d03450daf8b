"""Paths a scan skipped (a folder it cannot read, a symbolic link, a loop), kept for ``status``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "skipped_paths",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("problem", sa.Text, nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("skipped_paths")
