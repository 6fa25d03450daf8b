"""What a photo's EXIF says: date taken, camera, orientation, GPS and EXIF presence.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("taken", sa.String(32)))
        batch.add_column(sa.Column("camera_make", sa.String(64)))
        batch.add_column(sa.Column("camera_model", sa.String(64)))
        batch.add_column(sa.Column("orientation", sa.Integer))
        batch.add_column(sa.Column("has_gps", sa.Boolean))
        batch.add_column(sa.Column("has_exif", sa.Boolean))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        for column in ("has_exif", "has_gps", "orientation", "camera_model", "camera_make", "taken"):
            batch.drop_column(column)
