"""The index of signatures by method also holds the image id: the ids of a method's signatures (a
million of them for ``dupes`` at a million) are read from the index alone, not row by row from a table
of large values (2.75 s -> a fraction at a million CNN signatures).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_signatures_method_image", "signatures", ["method", "image_id"])
    op.drop_index("ix_signatures_method", table_name="signatures")


def downgrade() -> None:
    op.create_index("ix_signatures_method", "signatures", ["method"])
    op.drop_index("ix_signatures_method_image", table_name="signatures")
