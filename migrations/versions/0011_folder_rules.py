"""Folder rules a person sets for settling duplicates (``catalog rules``, the review page): prefer or
avoid a folder, remembered in the catalogue.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "folder_rules",
        sa.Column("folder", sa.Text, primary_key=True),
        sa.Column("rule", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("folder_rules")
