"""Initial schema: images, signatures, methods, roots.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "methods",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
    )
    op.create_table(
        "roots",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("added_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("format", sa.String(16)),
        sa.Column("indexed_at", sa.DateTime, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_images_content_hash", "images", ["content_hash"])
    op.create_table(
        "signatures",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("method", sa.String(32), sa.ForeignKey("methods.name"), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_signatures_method", "signatures", ["method"])


def downgrade() -> None:
    op.drop_index("ix_signatures_method", "signatures")
    op.drop_table("signatures")
    op.drop_index("ix_images_content_hash", "images")
    op.drop_table("images")
    op.drop_table("roots")
    op.drop_table("methods")
