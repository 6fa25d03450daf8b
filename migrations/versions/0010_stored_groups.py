"""Groups kept as rows (``group_members``, with each image's copy count in ``copy_counts``) instead of
printed answers kept as files: the reference groups of each method at its default threshold, refreshed
at indexing time for the images that changed (``regroup``, filled by triggers on both databases).
Drops what only the kept answers needed: the catalogue's change stamp (0008) and the log of changed
images (0009), with their triggers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: ``exact`` compares the images' content hashes: their rows are its signatures.
_EXACT = (
    "INSERT INTO regroup (method, image_id) SELECT 'exact', {row}.id "
    "WHERE EXISTS (SELECT 1 FROM methods WHERE name = 'exact');"
)
_EXACT_MARKED = (
    "INSERT INTO regroup (method, image_id) SELECT 'exact', i.id FROM images i "
    "WHERE i.content_hash IN ({row}.first, {row}.second) "
    "AND EXISTS (SELECT 1 FROM methods WHERE name = 'exact');"
)
#: The same text as ``catalog.store.models.REGROUP_DDL`` (a migration keeps its own copy: the models move on).
DDL = {
    "sqlite": [
        *(
            f"CREATE TRIGGER signatures_{event.lower()}_regroup AFTER {event} ON signatures BEGIN "
            f"INSERT INTO regroup (method, image_id) VALUES ({row}.method, {row}.image_id); END"
            for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
        ),
        "CREATE TRIGGER images_update_regroup AFTER UPDATE ON images BEGIN "
        "INSERT INTO regroup (method, image_id) SELECT method, image_id FROM signatures "
        f"WHERE image_id = NEW.id; {_EXACT.format(row='NEW')} END",
        *(
            f"CREATE TRIGGER images_{event.lower()}_regroup AFTER {event} ON images BEGIN "
            f"{_EXACT.format(row=row)} END"
            for event, row in (("INSERT", "NEW"), ("DELETE", "OLD"))
        ),
        *(
            f"CREATE TRIGGER not_duplicates_{event.lower()}_regroup AFTER {event} ON not_duplicates BEGIN "
            "INSERT INTO regroup (method, image_id) SELECT s.method, s.image_id FROM signatures s "
            f"JOIN images i ON i.id = s.image_id WHERE i.content_hash IN ({row}.first, {row}.second); "
            f"{_EXACT_MARKED.format(row=row)} END"
            for event, row in (("INSERT", "NEW"), ("DELETE", "OLD"))
        ),
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION catalog_regroup_signature() RETURNS trigger AS $$ BEGIN "
        "IF TG_OP = 'DELETE' THEN INSERT INTO regroup (method, image_id) VALUES (OLD.method, OLD.image_id); "
        "ELSE INSERT INTO regroup (method, image_id) VALUES (NEW.method, NEW.image_id); END IF; "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER signatures_regroup AFTER INSERT OR UPDATE OR DELETE ON signatures "
        "FOR EACH ROW EXECUTE FUNCTION catalog_regroup_signature()",
        "CREATE OR REPLACE FUNCTION catalog_regroup_image() RETURNS trigger AS $$ BEGIN "
        "IF TG_OP = 'DELETE' THEN "
        f"{_EXACT.format(row='OLD')} "
        "ELSE "
        f"{_EXACT.format(row='NEW')} "
        "END IF; "
        "IF TG_OP = 'UPDATE' THEN INSERT INTO regroup (method, image_id) SELECT method, image_id "
        "FROM signatures WHERE image_id = NEW.id; END IF; "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER images_regroup AFTER INSERT OR UPDATE OR DELETE ON images "
        "FOR EACH ROW EXECUTE FUNCTION catalog_regroup_image()",
        "CREATE OR REPLACE FUNCTION catalog_regroup_marked() RETURNS trigger AS $$ BEGIN "
        "IF TG_OP = 'DELETE' THEN INSERT INTO regroup (method, image_id) SELECT s.method, s.image_id "
        "FROM signatures s JOIN images i ON i.id = s.image_id "
        "WHERE i.content_hash IN (OLD.first, OLD.second); "
        f"{_EXACT_MARKED.format(row='OLD')} "
        "ELSE INSERT INTO regroup (method, image_id) SELECT s.method, s.image_id "
        "FROM signatures s JOIN images i ON i.id = s.image_id "
        "WHERE i.content_hash IN (NEW.first, NEW.second); "
        f"{_EXACT_MARKED.format(row='NEW')} "
        "END IF; RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER not_duplicates_regroup AFTER INSERT OR DELETE ON not_duplicates "
        "FOR EACH ROW EXECUTE FUNCTION catalog_regroup_marked()",
    ],
}

#: Tables whose triggers 0008 made (``{table}_{event}_changed``).
_STAMPED = ("images", "signatures", "roots", "journal", "not_duplicates")


def upgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "sqlite":
        for event in ("insert", "update", "delete"):
            for table in _STAMPED:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_changed")
            for table in ("images", "signatures"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_logged")
    op.drop_table("catalogue_changes")
    op.drop_table("image_changes")
    with op.batch_alter_table("methods") as batch:
        batch.add_column(sa.Column("groups_key", sa.String(96), nullable=True))
    op.create_table(
        "group_members",
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("image_id", sa.Integer, primary_key=True),
        sa.Column("reference_id", sa.Integer, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
    )
    op.create_index("ix_group_members_method_reference", "group_members", ["method", "reference_id"])
    op.create_table(
        "copy_counts",
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("image_id", sa.Integer, primary_key=True),
        sa.Column("code", sa.BigInteger, nullable=False),
        sa.Column("copies", sa.Integer, nullable=False),
    )
    op.create_table(
        "regroup",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("image_id", sa.Integer, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_regroup_method", "regroup", ["method"])
    op.create_index("ix_signatures_method_code", "signatures", ["method", sa.text("substr(value, 1, 8)")])
    for statement in DDL.get(name, []):
        op.execute(statement)
    # No groups yet (``groups_key`` is empty): the next index makes them; ``dupes`` meanwhile answers
    # from the stored pairs.


def downgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "sqlite":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS signatures_{event}_regroup")
            op.execute(f"DROP TRIGGER IF EXISTS not_duplicates_{event}_regroup")
            op.execute(f"DROP TRIGGER IF EXISTS images_{event}_regroup")
    elif name == "postgresql":
        for trigger, table in (
            ("signatures_regroup", "signatures"),
            ("images_regroup", "images"),
            ("not_duplicates_regroup", "not_duplicates"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for function in ("signature", "image", "marked"):
            op.execute(f"DROP FUNCTION IF EXISTS catalog_regroup_{function}()")
    op.drop_index("ix_signatures_method_code", "signatures")
    op.drop_table("regroup")
    op.drop_table("copy_counts")
    op.drop_table("group_members")
    with op.batch_alter_table("methods") as batch:
        batch.drop_column("groups_key")
    # The kept answers' stamp and log come back, with their triggers (0008, 0009).
    op.create_table(
        "catalogue_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("stamp", sa.BigInteger, nullable=False, server_default="0"),
    )
    sqlite = name == "sqlite"
    op.execute(f"INSERT INTO catalogue_changes (id, stamp) VALUES (1, {'random()' if sqlite else 0})")
    op.create_table(
        "image_changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("image_id", sa.Integer, nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    if sqlite:
        for table in _STAMPED:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_{event.lower()}_changed AFTER {event} ON {table} BEGIN "
                    "UPDATE catalogue_changes SET stamp = random() WHERE id = 1; END"
                )
        for table, column in (("images", "id"), ("signatures", "image_id")):
            for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
                op.execute(
                    f"CREATE TRIGGER {table}_{event.lower()}_logged AFTER {event} ON {table} BEGIN "
                    f"INSERT INTO image_changes (image_id, token) VALUES ({row}.{column}, random()); END"
                )
        op.execute("INSERT INTO image_changes (image_id, token) VALUES (0, random())")
