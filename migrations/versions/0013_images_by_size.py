"""Images by size: a new file's byte-identical twins anywhere in the catalogue (a backup drive indexed
beside the library) are found by an index seek per size instead of a scan of every image.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_images_size", "images", ["size"])


def downgrade() -> None:
    op.drop_index("ix_images_size", table_name="images")
