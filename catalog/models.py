"""The catalogue's tables (SQLAlchemy 2.0 typed ORM). The schema itself is created by Alembic migrations."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

#: A file name that is not valid UTF-8 reaches Python with each stray byte as a lone surrogate
#: (U+DC80..U+DCFF, PEP 383), which no database text column accepts. Paths are stored with those bytes
#: mapped to U+EF80..U+EFFF (private use; MirBSD's OPTU-8 convention) and mapped back when read, so
#: every file name round-trips. (A real name using those private-use characters would read back as the
#: raw bytes: no file system or camera writes them.)
_TO_STORED = {code: 0xEF00 + (code - 0xDC00) for code in range(0xDC80, 0xDD00)}
_FROM_STORED = {stored: code for code, stored in _TO_STORED.items()}


def encode_path(path: str) -> str:
    """A path as the catalogue stores it (see ``PathText``)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.translate(_TO_STORED)
    return path


_STORED_BYTES = re.compile("[\uef80-\uefff]")


def decode_path(stored: str) -> str:
    if stored.isascii() or _STORED_BYTES.search(stored) is None:
        return stored
    return stored.translate(_FROM_STORED)


class PathText(TypeDecorator[str]):
    """A file path: text, with the bytes of names that are not UTF-8 kept (see ``encode_path``)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else encode_path(value)

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else decode_path(value)


class Base(DeclarativeBase):
    pass


class Image(Base):
    """One file under an indexed root. ``error`` is set (and there are no signatures) if it is unreadable."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(PathText, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    #: The picture inside any uniform border someone added (equal to width x height without one).
    content_width: Mapped[int | None] = mapped_column(Integer)
    content_height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    #: From the photo's EXIF (``catalog.formats.PhotoFacts``): date taken (ISO 8601, with its UTC offset
    #: where recorded), camera, orientation tag, GPS presence, EXIF presence. ``has_exif`` is None for a
    #: row indexed before these columns existed (the next index reads it again).
    taken: Mapped[str | None] = mapped_column(String(32))
    camera_make: Mapped[str | None] = mapped_column(String(64))
    camera_model: Mapped[str | None] = mapped_column(String(64))
    orientation: Mapped[int | None] = mapped_column(Integer)
    has_gps: Mapped[bool | None] = mapped_column(Boolean)
    has_exif: Mapped[bool | None] = mapped_column(Boolean)
    indexed_at: Mapped[datetime] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)

    signatures: Mapped[list[Signature]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )


class Signature(Base):
    """The signature of one image by one method (bytes whose layout the method defines)."""

    __tablename__ = "signatures"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(32), ForeignKey("methods.name"), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="signatures")

    __table_args__ = (Index("ix_signatures_method_image", "method", "image_id"),)


class MethodRecord(Base):
    """A method this catalogue computes, with the version (and parameters) its signatures came from."""

    __tablename__ = "methods"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    #: Counts every insert, update and delete of this method's signatures (database triggers: see
    #: ``CHANGE_COUNTER_DDL``), whoever writes: a cheap "has anything changed?" for caches.
    changes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: What this method's stored near pairs (``code_pairs``) cover, as "THRESHOLD@VERSION"; None when
    #: it keeps none. Rows made for another key are dropped by the next refresh and ignored until then.
    pairs_key: Mapped[str | None] = mapped_column(String(96))


class CodePairs(Base):
    """The near pairs of one signature code, kept at indexing time (``catalog.pairs``).

    A row is made once for each distinct code of a method (the upright 64-bit hash) and never changes:
    the distance of two codes is fixed. ``near`` holds the ``seq`` of every code that had a row before
    this one and lies within the method's stored threshold (little-endian uint32), ``distances`` their
    distances (uint8). So every pair is in the row of its later code, and a code that comes back after
    its images left finds its rows still right. Images join their code's pairs through their
    signatures: adding, changing, moving or deleting an image writes nothing here but its new code.
    """

    __tablename__ = "code_pairs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    method: Mapped[str] = mapped_column(String(32), ForeignKey("methods.name"))
    code: Mapped[int] = mapped_column(BigInteger)
    near: Mapped[bytes] = mapped_column(LargeBinary)
    distances: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_code_pairs_method_code", "method", "code", unique=True),)


class VectorPairs(Base):
    """The near pairs of one image by a vector method (``catalog.pairs``): its nearest neighbours in the
    HNSW index when it was signed, those that match at the method's stored threshold. ``near`` holds
    their image ids and ``near_seqs`` the ``seq`` of their row at that time (little-endian int32),
    ``scores`` the method's scores (float32), ``turned`` 1 where only a turned feature matched. A
    neighbour's pair holds while its row keeps that seq: a re-signed image gets a new row and seq."""

    __tablename__ = "vector_pairs"

    method: Mapped[str] = mapped_column(String(32), primary_key=True)
    image_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    near: Mapped[bytes] = mapped_column(LargeBinary)
    near_seqs: Mapped[bytes] = mapped_column(LargeBinary)
    scores: Mapped[bytes] = mapped_column(LargeBinary)
    turned: Mapped[bytes] = mapped_column(LargeBinary)


class Unpaired(Base):
    """A signature written since its method's pairs were last refreshed: a database trigger adds one row
    per insert or update of a signature (``UNPAIRED_DDL``), whoever writes, and a refresh removes the rows
    it read in the transaction that stores their codes' pairs. So a refresh looks at what changed, not at
    every signature of a million images."""

    __tablename__ = "unpaired"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(32))
    image_id: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_unpaired_method", "method"),)


class Root(Base):
    """A folder given to ``catalog index`` (or ``watch``); files that vanish under it leave the catalogue."""

    __tablename__ = "roots"

    path: Mapped[str] = mapped_column(PathText, primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)


class JournalEntry(Base):
    """One action on a user's file (``catalog resolve --apply``, the review page), written before it
    happens and marked after: ``pending`` -> ``done`` (or ``rolled-back`` when a crash stopped it before
    the file was touched), ``done`` -> ``undoing`` -> ``undone``. ``target`` is where the file went (the
    trash file, the moved-to path) or what the link points to."""

    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The run (one ``resolve --apply``, one decision on the review page) the action belongs to.
    batch: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(PathText)
    keep: Mapped[str] = mapped_column(PathText)
    target: Mapped[str | None] = mapped_column(PathText)
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime)


class NotDuplicate(Base):
    """Two pictures a person said are not duplicates, by content hash (the smaller first): the mark
    survives renames, moves and re-indexing, and holds for every method."""

    __tablename__ = "not_duplicates"

    first: Mapped[str] = mapped_column(String(64), primary_key=True)
    second: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class CatalogueChanges(Base):
    """One row (id 1) whose ``stamp`` is drawn anew, at random, at every insert, update and delete of
    images, signatures, roots, journal entries and not-duplicate marks: whether anything an answer is
    made from changed. Kept by SQLite triggers
    (``CATALOGUE_CHANGES_DDL``), whoever writes: kept answers (``catalog.answers``) are given again while
    it stands still. Random, not a count: a catalogue restored from a backup and changed again would
    count its way back to a later catalogue's number. A server catalogue has the table but no triggers:
    several machines write it at once, and a row every writer updates would make them wait for each
    other."""

    __tablename__ = "catalogue_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ImageChange(Base):
    """The id of an image whose row or signatures were written (inserted, updated, deleted), in order
    (``seq``, never reused), with a random ``token``: a kept answer made at ``seq`` is brought up to
    date from the rows after it (``catalog.patch``), if the row at ``seq`` still holds its token (a
    catalogue restored from a backup and changed again reuses the numbers, not the tokens). Kept by
    SQLite triggers (``IMAGE_CHANGES_DDL``); the writers drop all but the newest ``KEEP_CHANGES``
    rows (``Catalog.prune_changes``). A server catalogue has the table, no triggers and no rows (it
    keeps no answers)."""

    __tablename__ = "image_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[int] = mapped_column(BigInteger)


#: The triggers that fill ``image_changes`` (the same text as migration 0009).
IMAGE_CHANGES_DDL = {
    "sqlite": [
        f"CREATE TRIGGER {table}_{event.lower()}_logged AFTER {event} ON {table} BEGIN "
        f"INSERT INTO image_changes (image_id, token) VALUES ({row}.{column}, random()); END"
        for table, column in (("images", "id"), ("signatures", "image_id"))
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ]
    # A first row (no image has id 0): the log has a mark from the start, so that the first answer a
    # catalogue keeps can be brought up to date.
    + ["INSERT INTO image_changes (image_id, token) VALUES (0, random())"],
}


#: The tables whose writes move ``catalogue_changes``.
COUNTED_TABLES = ("images", "signatures", "roots", "journal", "not_duplicates")

#: The triggers that keep ``catalogue_changes`` moving, and its row (the same text as migration 0008).
CATALOGUE_CHANGES_DDL = {
    "sqlite": [
        f"CREATE TRIGGER {table}_{event.lower()}_changed AFTER {event} ON {table} BEGIN "
        "UPDATE catalogue_changes SET stamp = random() WHERE id = 1; END"
        for table in COUNTED_TABLES
        for event in ("INSERT", "UPDATE", "DELETE")
    ]
    + ["INSERT INTO catalogue_changes (id, stamp) VALUES (1, random())"],
}
#: Its row where no triggers move it.
CATALOGUE_CHANGES_ROW = "INSERT INTO catalogue_changes (id, stamp) VALUES (1, 0)"


#: The triggers that keep ``methods.changes`` counting, per database (the same text as migration 0005).
CHANGE_COUNTER_DDL = {
    "sqlite": [
        f"CREATE TRIGGER signatures_{event.lower()}_counted AFTER {event} ON signatures BEGIN "
        f"UPDATE methods SET changes = changes + 1 WHERE name = {row}.method; END"
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION catalog_count_signature_change() RETURNS trigger AS $$ BEGIN "
        "UPDATE methods SET changes = changes + 1 WHERE name = COALESCE(NEW.method, OLD.method); "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER signatures_counted AFTER INSERT OR UPDATE OR DELETE ON signatures "
        "FOR EACH ROW EXECUTE FUNCTION catalog_count_signature_change()",
    ],
}


#: The triggers that fill ``unpaired``, per database (the same text as migration 0006).
UNPAIRED_DDL = {
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


#: PostgreSQL: an index of the paths by bytes, for "the images under this folder" (``path LIKE 'dir/%'``)
#: whatever the database's collation (the same text as migration 0006).
PATH_PATTERN_DDL = {"postgresql": ["CREATE INDEX ix_images_path_pattern ON images (path text_pattern_ops)"]}
