"""The catalogue store: engine and sessions, Alembic upgrade on open, and the queries the rest needs.

SQLite is tuned for one writer and many readers (WAL, a busy timeout, foreign keys on). Any SQLAlchemy
URL works through the same code; the SQL stays portable (no SQLite-only statements outside the pragmas).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import (
    Connection,
    Delete,
    Engine,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from catalog.errors import StoreError
from catalog.models import (
    CHANGE_COUNTER_DDL,
    PATH_PATTERN_DDL,
    REGROUP_DDL,
    UNPAIRED_DDL,
    Base,
    CodePairs,
    CopyCount,
    GroupMember,
    Image,
    JournalEntry,
    MethodRecord,
    NotDuplicate,
    Regroup,
    Root,
    Signature,
    Unpaired,
    VectorPairs,
    decode_path,
    encode_path,
)

if TYPE_CHECKING:
    import numpy as np

    from catalog.columns import ImageTable

T = TypeVar("T")

#: Seconds a process waits for a catalogue that another process is creating (it takes milliseconds).
CREATION_WAIT = 10.0

#: The newest migration. Opening a catalogue at this revision skips Alembic altogether (fast start-up);
#: tests check that it matches the head of migrations/versions.
HEAD_REVISION = "0010"


#: Values per ``IN (...)`` list: well under every database's limit on bound parameters.
IN_CHUNK = 1000
#: The PostgreSQL advisory lock that serialises refreshes of stored pairs ("catalog pairs").
PAIRS_LOCK_KEY = 0x636174616C6F67

#: Past this many ids, reading a whole table and dropping the other rows beats ``IN`` lists.
WHOLE_TABLE = 20_000


def chunked(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size`` (for ``IN (...)`` lists)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def under(prefix_path: str):  # type: ignore[no-untyped-def]
    """SQL condition: the image path lies below the folder ``prefix_path`` (no LIKE escaping)."""
    return _Under(encode_path(prefix_path.rstrip("/") + "/"))


class _Under(ColumnElement[bool]):
    """``Image.path`` starts with ``prefix``, as each database can answer from an index: in SQLite, where
    text compares byte by byte, a range of the path index (``prefix <= path < prefix with "/" raised to
    "0"``: milliseconds in a million rows); in PostgreSQL, whose collations need not order text by bytes,
    an escaped ``LIKE 'prefix%'``, which its ``text_pattern_ops`` index on the path serves
    (``PATH_PATTERN_DDL``); elsewhere a portable ``substr`` comparison."""

    inherit_cache = True
    type = NullType()  # type: ignore[assignment]  # not Boolean: SQLite would compare the whole condition with 1, past its index

    def __init__(self, prefix: str):
        self.prefix = prefix


@compiles(_Under)
def _under_portable(element: _Under, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    prefix = element.prefix
    return f"({compiler.process(func.substr(Image.path, 1, len(prefix)) == prefix, **kw)})"


@compiles(_Under, "postgresql")
def _under_postgresql(element: _Under, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"({compiler.process(Image.path.startswith(element.prefix, autoescape=True), **kw)})"


@compiles(_Under, "sqlite")
def _under_sqlite(element: _Under, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    prefix = element.prefix
    upper = prefix[:-1] + "0"
    return f"({compiler.process(and_(Image.path >= prefix, Image.path < upper), **kw)})"


@dataclass(frozen=True)
class Scope:
    """Where an indexing run looks: whole folders (recursively) and single files. A path that no longer
    exists may have been either, so it goes in both."""

    folders: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def conditions(self):  # type: ignore[no-untyped-def]
        """SQL conditions whose union selects the scope's images (file lists in chunks)."""
        conditions = [under(folder) for folder in self.folders]
        conditions += [Image.path.in_(chunk) for chunk in chunked(sorted(self.files))]
        return conditions


@dataclass
class ImageSummary:
    """Readable images (by format, and how many carry EXIF, a date taken, GPS) and unreadable ones."""

    images: int = 0
    errors: int = 0
    formats: dict[str, int] = field(default_factory=dict)  # most first
    with_exif: int = 0
    with_date_taken: int = 0
    with_gps: int = 0


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What commands print about an image."""

    id: int
    path: str
    size: int
    width: int | None
    height: int | None
    format: str | None
    content_hash: str | None
    mtime_ns: int = 0
    content_width: int | None = None
    content_height: int | None = None
    taken: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    has_gps: bool | None = None
    has_exif: bool | None = None

    @property
    def camera(self) -> str | None:
        """Make and model, without the make twice ("Canon Canon EOS 20D")."""
        return camera_name(self.camera_make, self.camera_model)

    @property
    def pixels(self) -> int:
        """Pixels of the picture itself: inside any uniform border someone added, where known."""
        if self.content_width and self.content_height:
            return self.content_width * self.content_height
        return (self.width or 0) * (self.height or 0)


def camera_name(make: str | None, model: str | None) -> str | None:
    """Make and model, without the make twice ("Canon Canon EOS 20D")."""
    make, model = make or "", model or ""
    if model.lower().startswith(make.lower()):
        return model or None
    return f"{make} {model}".strip() or None


@dataclass(frozen=True)
class KnownFile:
    id: int
    size: int
    mtime_ns: int
    content_hash: str | None
    error: str | None
    has_exif: bool | None = False  # None: indexed before photo facts were read


class Catalog:
    """An open catalogue. Use :meth:`open`; close with :meth:`close` or as a context manager."""

    def __init__(
        self, engine: Engine, url: str, shield: Callable[[], AbstractContextManager[object]] = nullcontext
    ):
        self.engine = engine
        self.url = url
        #: Wraps every transaction and the closing of connections: the CLI passes its interrupts'
        #: ``deferred``, so that a Ctrl-C is raised between transactions, never inside SQLAlchemy.
        self.shield = shield
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        #: What this open catalogue's users keep in memory between calls, by owner (the HNSW indexes
        #: loaded by ``catalog.vectors``): a process that searches many times loads each index once.
        self.caches: dict[str, dict] = {}  # type: ignore[type-arg]

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        create: bool = True,
        shield: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> Catalog:
        """Open (and create or upgrade) the catalogue at a SQLAlchemy URL. ``shield``: see ``shield``."""
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists() and not create:
                raise StoreError(f"no catalogue at {path} (run `catalog index PATH` first)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the catalogue folder {path.parent}: {exc.strerror}"
                ) from None
        try:
            engine = create_engine(url, connect_args=_connect_args(url))
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot open catalogue {url}: {exc}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        catalog = cls(engine, url, shield)
        try:
            catalog._upgrade(create)
        except OperationalError as exc:
            raise StoreError(f"cannot open catalogue {url}: {exc.orig}") from None
        return catalog

    def _upgrade(self, create: bool = True) -> None:
        """Bring the schema to the head revision.

        An empty database gets the current schema from the models and is stamped at head (Alembic's
        recipe for new databases; tests check that models and migrations agree). An older catalogue
        is upgraded by the migrations; one at head costs a single query. A catalogue that another
        process is creating at this very moment (tables but no stamp yet; or, for a reader, no tables
        yet) is waited for, not created a second time.
        """
        deadline = time.monotonic() + CREATION_WAIT
        while True:
            with self.shield(), self.engine.begin() as conn:
                tables = set(inspect(conn).get_table_names())
                if "alembic_version" in tables:
                    current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                    if current == HEAD_REVISION:
                        return
                    break
                if not tables and create:
                    self._create_schema(conn)
                    return
            if time.monotonic() > deadline:
                if not tables:
                    raise StoreError(f"{self.url} holds no catalogue (run `catalog index PATH` first)")
                break
            time.sleep(0.05)
        from catalog.migrate import upgrade_to_head

        with self.shield():
            upgrade_to_head(self.engine)

    @staticmethod
    def _create_schema(conn: Connection) -> None:
        Base.metadata.create_all(conn)
        for statement in [
            *CHANGE_COUNTER_DDL.get(conn.dialect.name, []),
            *UNPAIRED_DDL.get(conn.dialect.name, []),
            *PATH_PATTERN_DDL.get(conn.dialect.name, []),
            *REGROUP_DDL.get(conn.dialect.name, []),
        ]:
            conn.execute(text(statement))
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION})

    def close(self) -> None:
        with self.shield():
            self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        with self.shield(), self._sessions() as session, session.begin():
            yield session

    # -- methods and roots -----------------------------------------------------------------------

    def methods(self) -> dict[str, str]:
        """Methods this catalogue computes, with the version their signatures came from."""
        with self.session() as s:
            return {r.name: r.version for r in s.scalars(select(MethodRecord))}

    def set_method(self, name: str, version: str) -> bool:
        """Record a method; when its version changed, drop its old signatures. True if anything changed.
        Another indexer recording it at the same moment (a server catalogue) is not an error."""
        try:
            return self._set_method(name, version)
        except IntegrityError:
            return self._set_method(name, version)

    def _set_method(self, name: str, version: str) -> bool:
        with self.session() as s:
            record = s.get(MethodRecord, name)
            if record is None:
                s.add(MethodRecord(name=name, version=version))
                return True
            if record.version != version:
                s.execute(delete(Signature).where(Signature.method == name))
                record.version = version
                return True
            return False

    def roots(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Root.path).order_by(Root.path)))

    def count_under(self, folder: str) -> int:
        """Catalogued files (readable or not) at or below ``folder``."""
        condition = (Image.path == folder) | under(folder)
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Image).where(condition)) or 0)

    def root_stats(self) -> list[tuple[str, int, int]]:
        """(root, readable images, unreadable files) of every root."""
        stats = []
        for root in self.roots():
            condition = (Image.path == root) | under(root)
            with self.session() as s:
                rows = dict(
                    s.execute(
                        select(Image.error.is_(None), func.count())
                        .where(condition)
                        .group_by(Image.error.is_(None))
                    ).all()
                )
            stats.append((root, int(rows.get(True, 0)), int(rows.get(False, 0))))
        return stats

    def forget_root(self, root: str) -> int:
        """Drop a root and every catalogued file below it, in one transaction; returns how many."""
        with self.session() as s:
            ids = list(s.scalars(select(Image.id).where((Image.path == root) | under(root))))
            _delete_images(s, ids)
            s.execute(delete(Root).where(Root.path == root))
        return len(ids)

    def add_root(self, path: str) -> None:
        with self.session() as s:
            if s.get(Root, path) is None:
                s.add(Root(path=path, added_at=now()))

    # -- reading ---------------------------------------------------------------------------------

    def known_files(self, scope: Scope) -> dict[str, KnownFile]:
        """Every catalogued file in ``scope``, by path."""
        columns = (
            Image.path,
            Image.id,
            Image.size,
            Image.mtime_ns,
            Image.content_hash,
            Image.error,
            Image.has_exif,
        )
        known = {}
        with self.session() as s:
            for condition in scope.conditions():
                known.update(
                    {row[0]: KnownFile(*row[1:]) for row in s.execute(select(*columns).where(condition))}
                )
        return known

    def ids_lacking(self, scope: Scope, methods: Iterable[str]) -> dict[int, list[str]]:
        """Readable images in ``scope`` that lack a signature of some of ``methods`` -> the missing ones.

        One grouped query per condition finds them (usually none), so an unchanged catalogue costs no
        per-signature rows.
        """
        wanted = sorted(set(methods))
        if not wanted:
            return {}
        present = func.count(Signature.method)
        ids: list[int] = []
        with self.session() as s:
            for condition in scope.conditions():
                short = (
                    select(Image.id)
                    .outerjoin(Signature, (Signature.image_id == Image.id) & Signature.method.in_(wanted))
                    .where(condition, Image.error.is_(None))
                    .group_by(Image.id)
                    .having(present < len(wanted))
                )
                ids.extend(s.scalars(short))
            have: dict[int, set[str]] = {i: set() for i in ids}
            for chunk in chunked(ids):
                rows = s.execute(
                    select(Signature.image_id, Signature.method).where(
                        Signature.image_id.in_(chunk), Signature.method.in_(wanted)
                    )
                )
                for image_id, method in rows:
                    have[image_id].add(method)
        return {i: [m for m in wanted if m not in have[i]] for i in ids}

    def signatures(self, method: str) -> tuple[list[int], list[bytes]]:
        """(image ids, signatures) of every readable image that has one for ``method``."""
        with self.session() as s:
            if method == "exact":
                query = select(Image.id, Image.content_hash).where(Image.error.is_(None))
                rows = [(i, bytes.fromhex(h)) for i, h in s.execute(query) if h]
            else:
                rows = list(
                    s.execute(select(Signature.image_id, Signature.value).where(Signature.method == method))
                )
        return [r[0] for r in rows], [r[1] for r in rows]

    def signature_stamp(self, method: str) -> str:
        """Changes whenever a ``method`` signature is added, replaced or removed: the method's change
        counter, which database triggers keep (one row read, whatever the catalogue's size), with its
        version."""
        with self.session() as s:
            row = s.execute(
                select(MethodRecord.changes, MethodRecord.version).where(MethodRecord.name == method)
            ).first()
        return "-" if row is None else f"{row[0]}@{row[1]}"

    def signature_ids(self, method: str, since: datetime | None = None) -> list[int]:
        """Ids of readable images with a ``method`` signature (written after ``since``, if given)."""
        if since is None:  # a million ids: on the driver's cursor
            with self.session() as s:
                sql = "SELECT image_id FROM signatures WHERE method = {} ORDER BY image_id"
                return list(map(itemgetter(0), _raw(s, sql, method)))
        query = select(Signature.image_id).where(Signature.method == method).order_by(Signature.image_id)
        query = query.join(Image, Image.id == Signature.image_id).where(Image.indexed_at >= since)
        with self.session() as s:
            return list(s.scalars(query))

    def signature_values(self, method: str, ids: list[int]) -> list[bytes]:
        """The ``method`` signatures of ``ids``, in that order (every id must have one)."""
        rows = self.signature_map(method, ids)
        return [rows[i] for i in ids]

    def signature_map(self, method: str, ids: list[int]) -> dict[int, bytes]:
        """The ``method`` signatures of those of ``ids`` that have one, by id."""
        rows: dict[int, bytes] = {}
        with self.session() as s:
            for chunk in chunked(ids):
                query = select(Signature.image_id, Signature.value).where(
                    Signature.method == method, Signature.image_id.in_(chunk)
                )
                rows.update({image_id: value for image_id, value in s.execute(query)})
        return rows

    def image_info(self, ids: Iterable[int] | None = None) -> dict[int, ImageInfo]:
        """Readable images by id (all of them when ``ids`` is None), as light rows, not ORM objects.

        Read on the driver's cursor: a library of a million images has most of them in some group.
        When many ids are asked for, every row is read and the others dropped (cheaper than thousands of
        ``IN`` lists)."""
        wanted = None if ids is None else set(ids)
        sql = (
            "SELECT id, path, size, width, height, format, content_hash, mtime_ns, content_width, "
            "content_height, taken, camera_make, camera_model, has_gps, has_exif FROM images "
            "WHERE error IS NULL"
        )
        rows: list[tuple] = []  # type: ignore[type-arg]
        with self.session() as s:
            if wanted is None or len(wanted) > WHOLE_TABLE:
                rows = _raw(s, sql)
            else:
                for chunk in chunked(sorted(wanted)):
                    rows.extend(
                        _raw(s, sql + " AND id IN ({})".format(", ".join(["{}"] * len(chunk))), *chunk)
                    )
        result: dict[int, ImageInfo] = {}
        for row in rows:
            if wanted is not None and row[0] not in wanted:
                continue
            gps, exif = row[13], row[14]
            result[row[0]] = ImageInfo(  # type: ignore[call-arg]
                row[0],
                decode_path(row[1]),
                *row[2:13],
                None if gps is None else bool(gps),
                None if exif is None else bool(exif),
            )
        return result

    def highest_image_id(self) -> int:
        """The highest image id (0 for none): about how many images the catalogue has held, in one
        index lookup."""
        with self.session() as s:
            return int(s.scalar(select(func.max(Image.id))) or 0)

    def image_table(self, ids: Sequence[int] | None = None) -> ImageTable:
        """Every readable image as columns (or those of ``ids``), in path order (code point order, as
        Python sorts)."""
        from catalog.columns import ImageTable

        flags = "CASE WHEN {0} IS NULL THEN -1 WHEN {0} THEN 1 ELSE 0 END"
        sql = (
            "SELECT id, path, size, coalesce(width, -1), coalesce(height, -1), format, content_hash, "
            "mtime_ns, coalesce(content_width, -1), coalesce(content_height, -1), taken, camera_make, "
            f"camera_model, {flags.format('has_gps')}, {flags.format('has_exif')} FROM images "
            "WHERE error IS NULL"
        )
        with self.session() as s:
            if ids is not None:
                rows = []
                for chunk in chunked(sorted(ids)):
                    rows.extend(
                        _raw(s, sql + " AND id IN ({})".format(", ".join(["{}"] * len(chunk))), *chunk)
                    )
                rows.sort(key=itemgetter(1))
            else:
                byte_order = ' COLLATE "C"' if s.get_bind().dialect.name == "postgresql" else ""
                rows = _raw(s, f"{sql} ORDER BY path{byte_order}")
        # UTF-8 byte order is code point order; names that are not UTF-8 are stored with private-use
        # characters and read back with lone surrogates, which sort elsewhere.
        mapped = False
        for k, row in enumerate(rows):
            if not row[1].isascii() and (path := decode_path(row[1])) != row[1]:
                rows[k] = (row[0], path, *row[2:])
                mapped = True
        return ImageTable.from_rows(rows, in_path_order=not mapped)

    # -- stored groups (catalog.stored) ----------------------------------------------------------

    def groups_key(self, method: str) -> str | None:
        """What ``method``'s stored groups answer ("THRESHOLD@VERSION"), None when it keeps none."""
        with self.session() as s:
            return s.scalar(select(MethodRecord.groups_key).where(MethodRecord.name == method))

    def regroup_entries(self, method: str) -> tuple[list[int], list[int]]:
        """(the ``regroup`` entries of ``method``, the ids of the images they name, each once)."""
        with self.session() as s:
            rows = _raw(s, "SELECT id, image_id FROM regroup WHERE method = {}", method)
        return [r[0] for r in rows], sorted({r[1] for r in rows})

    def count_regroup(self, method: str) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).where(Regroup.method == method)) or 0)

    def drop_regroup(self, method: str) -> None:
        """Forget ``method``'s entries (a method that keeps no groups)."""
        with self.session() as s:
            s.execute(delete(Regroup).where(Regroup.method == method))

    def group_references(self, method: str, ids: Sequence[int]) -> list[int]:
        """The references of the stored groups of ``method`` that hold any of ``ids``."""
        sql = "SELECT DISTINCT reference_id FROM group_members WHERE method = {}"
        with self.session() as s:
            return sorted({r[0] for r in _raw_in(s, sql, method, "image_id", ids)})

    def group_rows(
        self, method: str, references: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(image id, reference id, rank, score: NaN for none) of every member of ``method``'s stored
        groups (or of the groups of ``references``), as NumPy arrays, read on the driver's cursor."""
        import numpy as np

        sql = "SELECT image_id, reference_id, rank, score FROM group_members WHERE method = {}"
        with self.session() as s:
            rows = _raw_in(s, sql, method, "reference_id", references)
        n = len(rows)
        image = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        reference = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        rank = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        score = np.fromiter((np.nan if r[3] is None else r[3] for r in rows), dtype=np.float64, count=n)
        return image, reference, rank, score

    def group_counts(self) -> dict[str, dict[str, int]]:
        """For each method that keeps groups: how many groups and images they hold, and how many
        ``regroup`` entries wait for the next refresh."""
        with self.session() as s:
            keys = dict(s.execute(select(MethodRecord.name, MethodRecord.groups_key)).all())
            held = {
                m: (int(g), int(n))
                for m, g, n in s.execute(
                    select(
                        GroupMember.method,
                        func.count(func.distinct(GroupMember.reference_id)),
                        func.count(),
                    ).group_by(GroupMember.method)
                ).all()
            }
            waiting = dict(s.execute(select(Regroup.method, func.count()).group_by(Regroup.method)).all())
        return {
            name: {
                "groups": held.get(name, (0, 0))[0],
                "images": held.get(name, (0, 0))[1],
                "waiting": int(waiting.get(name, 0)),
            }
            for name in sorted(keys)
            if keys[name] is not None
        }

    def copy_rows(
        self, method: str, ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image id, upright code, copies) of ``method``'s stored copy counts (of ``ids``, or all)."""
        import numpy as np

        sql = "SELECT image_id, code, copies FROM copy_counts WHERE method = {}"
        with self.session() as s:
            rows = _raw_in(s, sql, method, "image_id", ids)
        n = len(rows)
        image = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        code = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n).view(np.uint64)
        copies = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        return image, code, copies

    def replace_groups(
        self,
        method: str,
        key: str,
        drop: Sequence[int] | None,
        rows: Sequence[tuple[int, int, int, float | None]],
        entries: Sequence[int],
        recounted: Sequence[int] | None = (),
        counts: Sequence[tuple[int, int, int]] = (),
    ) -> bool:
        """In one transaction: drop the stored groups of ``method`` whose references are ``drop`` (all of
        them for None), add ``rows`` (image id, reference id, rank, score); drop the copy counts of the
        images ``recounted`` (all for None) and add ``counts`` (image id, upright code, copies); remove
        the ``regroup`` entries read and record that the groups answer ``key``. False (nothing written)
        when the groups no longer answer the key they were read at, or another refresh took the
        entries: another process made them meanwhile."""
        with self.session() as s:
            current = s.scalar(select(MethodRecord.groups_key).where(MethodRecord.name == method))
            if drop is not None and current != key:
                return False
            for chunk in chunked(sorted(entries)):
                held = s.scalar(select(func.count()).where(Regroup.id.in_(chunk)))
                if held != len(chunk):
                    return False
            if recounted is None:
                s.execute(delete(CopyCount).where(CopyCount.method == method))
            else:
                for chunk in chunked(sorted(recounted)):
                    s.execute(
                        delete(CopyCount).where(CopyCount.method == method, CopyCount.image_id.in_(chunk))
                    )
            if counts:
                s.execute(
                    insert(CopyCount),
                    [
                        {"method": method, "image_id": i, "code": _signed(c), "copies": n}
                        for i, c, n in counts
                    ],
                )
            if drop is None:
                s.execute(delete(GroupMember).where(GroupMember.method == method))
            else:
                for chunk in chunked(sorted(drop)):
                    s.execute(
                        delete(GroupMember).where(
                            GroupMember.method == method, GroupMember.reference_id.in_(chunk)
                        )
                    )
            if rows:
                s.execute(
                    insert(GroupMember),
                    [
                        {"method": method, "image_id": i, "reference_id": r, "rank": k, "score": v}
                        for i, r, k, v in rows
                    ],
                )
            for chunk in chunked(sorted(entries)):
                s.execute(delete(Regroup).where(Regroup.id.in_(chunk)))
            s.execute(update(MethodRecord).where(MethodRecord.name == method).values(groups_key=key))
        return True

    def codes_of(self, method: str, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, first 64-bit code) of those of ``ids`` that have a ``method`` signature."""
        import numpy as np

        rows: list[tuple] = []  # type: ignore[type-arg]
        with self.session() as s:
            for chunk in chunked(sorted(ids)):
                marks = ", ".join(["{}"] * len(chunk))
                sql = (
                    "SELECT image_id, substr(value, 1, 8) FROM signatures "
                    f"WHERE method = {{}} AND image_id IN ({marks})"
                )
                rows.extend(_raw(s, sql, method, *chunk))
        found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=">u8").astype(np.uint64)
        return found, codes

    # -- near pairs kept at indexing time (catalog.pairs) ----------------------------------------

    def upright_codes(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, first 64-bit code of each signature) of ``method``, as NumPy arrays: read without
        ORM rows, a million in well under a second."""
        import numpy as np

        with self.session() as s:
            rows = _raw(s, "SELECT image_id, substr(value, 1, 8) FROM signatures WHERE method = {}", method)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=">u8").astype(np.uint64)
        return ids, codes

    @contextmanager
    def root_locks(self, roots: Iterable[str]) -> Iterator[None]:
        """Hold a lock per root for a run that indexes them: PostgreSQL advisory locks, taken at once or
        refused with :class:`BusyError` naming the root (another indexer, maybe on another machine, has
        it). Released when the block ends, or by the server when the process dies. SQLite catalogues
        have their one-writer lock file instead: nothing is held here."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        import hashlib

        from catalog.errors import BusyError

        with self.shield(), self.engine.connect() as conn:
            held = []
            try:
                for root in sorted(set(roots)):
                    key = int.from_bytes(
                        hashlib.sha256(f"root:{root}".encode()).digest()[:8], "big", signed=True
                    )
                    if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                        raise BusyError(
                            f"{root} is being indexed by another process (a lock in the catalogue's "
                            "database); wait for it to finish, or index other roots meanwhile"
                        )
                    held.append(key)
                conn.commit()
                yield
            finally:
                for key in held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    @contextmanager
    def pairs_lock(self) -> Iterator[None]:
        """Held while stored pairs are refreshed: their order (``seq``) must follow what each refresh
        read. SQLite catalogues have one writer already (the catalogue's lock file); on PostgreSQL, where
        several machines may index into one catalogue, it is an advisory lock on the server."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        with self.shield(), self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PAIRS_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PAIRS_LOCK_KEY})
                conn.commit()

    def pairs_key(self, method: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(MethodRecord.pairs_key).where(MethodRecord.name == method))

    def reset_pairs(self, method: str, key: str) -> None:
        """Drop ``method``'s stored pairs and record that new ones will cover ``key``: every signature
        of the method waits for its pairs again."""
        with self.session() as s:
            s.execute(delete(CodePairs).where(CodePairs.method == method))
            s.execute(delete(VectorPairs).where(VectorPairs.method == method))
            s.execute(delete(Unpaired).where(Unpaired.method == method))
            s.execute(
                insert(Unpaired).from_select(
                    ["method", "image_id"],
                    select(Signature.method, Signature.image_id).where(Signature.method == method),
                )
            )
            s.execute(update(MethodRecord).where(MethodRecord.name == method).values(pairs_key=key))

    def unpaired(self, method: str) -> tuple[list[int], np.ndarray]:
        """(the ``unpaired`` entries of ``method``, the upright codes of their signatures that still
        exist)."""
        import numpy as np

        with self.session() as s:
            rows = _raw(
                s,
                "SELECT u.id, substr(s.value, 1, 8) FROM unpaired u LEFT JOIN signatures s "
                "ON s.image_id = u.image_id AND s.method = u.method WHERE u.method = {}",
                method,
            )
        values = b"".join(r[1] for r in rows if r[1] is not None)
        return [r[0] for r in rows], np.frombuffer(values, dtype=">u8").astype(np.uint64)

    def pair_counts(self) -> dict[str, dict[str, object]]:
        """Per method that keeps near pairs: what they cover (``pairs_key``), its rows (distinct codes of
        a hash method, images of a vector method), and the signatures written since the last refresh."""
        with self.session() as s:
            keys = dict(s.execute(select(MethodRecord.name, MethodRecord.pairs_key)).all())
            rows = dict(s.execute(select(CodePairs.method, func.count()).group_by(CodePairs.method)).all())
            images = s.execute(select(VectorPairs.method, func.count()).group_by(VectorPairs.method)).all()
            rows.update(dict(images))
            waiting = dict(s.execute(select(Unpaired.method, func.count()).group_by(Unpaired.method)).all())
        return {
            name: {"covers": key, "rows": rows.get(name, 0), "waiting": waiting.get(name, 0)}
            for name, key in keys.items()
            if key
        }

    def unpaired_images(self, method: str) -> tuple[list[int], list[int]]:
        """(the ``unpaired`` entries of ``method``, the distinct images among them that still have a
        signature of it)."""
        with self.session() as s:
            rows = _raw(
                s,
                "SELECT u.id, s.image_id FROM unpaired u LEFT JOIN signatures s "
                "ON s.image_id = u.image_id AND s.method = u.method WHERE u.method = {}",
                method,
            )
        return [r[0] for r in rows], sorted({r[1] for r in rows if r[1] is not None})

    def count_unpaired(self, method: str) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).where(Unpaired.method == method)) or 0)

    def vector_rows(self, method: str) -> list[tuple[int, int, bytes, bytes, bytes, bytes]]:
        """(image id, seq, near, near_seqs, scores, turned) of every stored row of ``method``."""
        with self.session() as s:
            return _raw(
                s,
                "SELECT image_id, seq, near, near_seqs, scores, turned FROM vector_pairs WHERE method = {}",
                method,
            )

    def vector_seqs(self, method: str, ids: Sequence[int]) -> dict[int, int]:
        """The seq of the rows of those of ``ids`` that have one."""
        found: dict[int, int] = {}
        with self.session() as s:
            for chunk in chunked(list(ids)):
                query = select(VectorPairs.image_id, VectorPairs.seq).where(
                    VectorPairs.method == method, VectorPairs.image_id.in_(chunk)
                )
                found.update(dict(s.execute(query).all()))
        return found

    def next_vector_seq(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.max(VectorPairs.seq))) or 0) + 1

    def put_vector_rows(
        self,
        method: str,
        key: str,
        rows: Sequence[tuple[int, int, bytes, bytes, bytes, bytes]],
        done: Sequence[int] = (),
    ) -> bool:
        """Replace the rows of these images and remove the ``unpaired`` entries ``done``, in one
        transaction, unless ``method``'s pairs no longer cover ``key`` (then False, nothing written)."""
        with self.session() as s:
            if not _covers(s, method, key):
                return False
            for chunk in chunked([r[0] for r in rows]):
                s.execute(
                    delete(VectorPairs).where(VectorPairs.method == method, VectorPairs.image_id.in_(chunk))
                )
            if rows:
                s.execute(
                    insert(VectorPairs),
                    [
                        {
                            "method": method,
                            "image_id": i,
                            "seq": q,
                            "near": n,
                            "near_seqs": ns,
                            "scores": sc,
                            "turned": t,
                        }
                        for i, q, n, ns, sc, t in rows
                    ],  # fmt: skip
                )
            for chunk in chunked(list(done)):
                s.execute(delete(Unpaired).where(Unpaired.id.in_(chunk)))
        return True

    def drop_unpaired(self, method: str) -> None:
        """Forget ``method``'s entries (a method that keeps no pairs)."""
        with self.session() as s:
            s.execute(delete(Unpaired).where(Unpaired.method == method))

    def settled_codes(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """(seq, code) of every code of ``method`` with stored pairs, in seq order."""
        with self.session() as s:
            rows = _raw(s, "SELECT seq, code FROM code_pairs WHERE method = {} ORDER BY seq", method)
        return _seqs_and_codes(rows)

    def code_at(self, method: str, seq: int) -> int | None:
        """The code of ``method``'s row ``seq`` (None: no such row)."""
        with self.session() as s:
            code = s.scalar(select(CodePairs.code).where(CodePairs.seq == seq, CodePairs.method == method))
        return None if code is None else code & ((1 << 64) - 1)

    def settled_codes_after(self, method: str, seq: int) -> tuple[np.ndarray, np.ndarray]:
        """(seq, code) of ``method``'s rows with a seq above ``seq``, in seq order (a range of the
        primary key: the rows a refresh has not seen yet)."""
        with self.session() as s:
            rows = _raw(s, "SELECT seq, code, method FROM code_pairs WHERE seq > {} ORDER BY seq", seq)
        return _seqs_and_codes([r for r in rows if r[2] == method])

    def code_pairs(self, method: str) -> tuple[np.ndarray, np.ndarray, list[bytes], list[bytes]]:
        """(seq, code, near, distances) of every stored row of ``method`` (see ``models.CodePairs``)."""
        with self.session() as s:
            rows = _raw(s, "SELECT seq, code, near, distances FROM code_pairs WHERE method = {}", method)
        seqs, codes = _seqs_and_codes(rows)
        return seqs, codes, [r[2] for r in rows], [r[3] for r in rows]

    def add_code_pairs(
        self,
        method: str,
        key: str,
        rows: Sequence[tuple[int, int, bytes, bytes]],
        done: Sequence[int] = (),
    ) -> bool:
        """Store rows (seq, code, near, distances) and remove the ``unpaired`` entries ``done`` in one
        transaction, unless ``method``'s pairs no longer cover ``key`` (another process reset them):
        then nothing is written and False returned."""
        with self.session() as s:
            if not _covers(s, method, key):
                return False
            if rows:
                s.execute(
                    insert(CodePairs),
                    [
                        {"seq": q, "method": method, "code": _signed(c), "near": n, "distances": d}
                        for q, c, n, d in rows
                    ],
                )
            for chunk in chunked(list(done)):
                s.execute(delete(Unpaired).where(Unpaired.id.in_(chunk)))
        return True

    def drop_code_rows(self, method: str, key: str, seqs: Sequence[int]) -> bool:
        """Delete ``method``'s rows ``seqs`` in one transaction, unless its pairs no longer cover ``key``."""
        with self.session() as s:
            if not _covers(s, method, key):
                return False
            for chunk in chunked(list(seqs)):
                s.execute(delete(CodePairs).where(CodePairs.method == method, CodePairs.seq.in_(chunk)))
        return True

    def next_code_seq(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.max(CodePairs.seq))) or 0) + 1

    def shared_content_hashes(self) -> list[tuple[int, str]]:
        """(image id, content hash) of every image whose content hash another image has too (byte-
        identical files): found through the hash index, without reading every row."""
        with self.session() as s:
            return _raw(
                s,
                "SELECT id, content_hash FROM images WHERE content_hash IN (SELECT content_hash FROM "
                "images WHERE content_hash IS NOT NULL GROUP BY content_hash HAVING count(*) > 1)",
            )

    def content_hashes(self, ids: Sequence[int]) -> dict[int, str]:
        """The content hashes of those of ``ids`` that have one, by id."""
        found: dict[int, str] = {}
        with self.session() as s:
            for chunk in chunked(ids):
                query = select(Image.id, Image.content_hash).where(
                    Image.id.in_(chunk), Image.content_hash.is_not(None)
                )
                found.update({i: h for i, h in s.execute(query) if h is not None})
        return found

    def paths(self) -> dict[int, str]:
        """Path of every readable image, by id."""
        with self.session() as s:
            rows = _raw(s, "SELECT id, path FROM images WHERE error IS NULL")
        return {i: decode_path(p) for i, p in rows}

    def errors(self) -> list[tuple[str, str]]:
        with self.session() as s:
            query = select(Image.path, Image.error).where(Image.error.is_not(None)).order_by(Image.path)
            return [(p, e or "") for p, e in s.execute(query)]

    def summary(self) -> ImageSummary:
        """What ``status`` tells of the images, in one pass over them (a million rows take a few tenths
        of a second a pass)."""

        def share(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((condition, 1), else_=0))

        readable = Image.error.is_(None)
        query = select(
            Image.format,
            readable,
            func.count(),
            share(Image.has_exif.is_(True)),
            share(Image.taken.is_not(None)),
            share(Image.has_gps.is_(True)),
        ).group_by(Image.format, readable)
        summary = ImageSummary()
        formats: dict[str, int] = {}
        with self.session() as s:
            for fmt, ok, count, exif, taken, gps in s.execute(query):
                if not ok:
                    summary.errors += count
                    continue
                summary.images += count
                formats[fmt or "unknown"] = formats.get(fmt or "unknown", 0) + count
                summary.with_exif += int(exif or 0)
                summary.with_date_taken += int(taken or 0)
                summary.with_gps += int(gps or 0)
        summary.formats = dict(sorted(formats.items(), key=lambda r: (-r[1], r[0])))
        return summary

    def signature_counts(self) -> dict[str, int]:
        """Signatures by method."""
        with self.session() as s:
            return dict(s.execute(select(Signature.method, func.count()).group_by(Signature.method)).all())  # type: ignore[arg-type]

    def signature_count(self, method: str) -> int:
        """How many readable images have a ``method`` signature (``exact``: a content hash)."""
        with self.session() as s:
            if method == "exact":
                query = select(func.count()).where(Image.error.is_(None), Image.content_hash.is_not(None))
            else:
                query = select(func.count()).where(Signature.method == method)
            return int(s.scalar(query) or 0)

    def counts(self) -> dict[str, int]:
        summary = self.summary()
        per_method = self.signature_counts()
        return {
            "images": summary.images,
            "errors": summary.errors,
            **{f"signatures:{k}": v for k, v in per_method.items()},
        }

    # -- writing ---------------------------------------------------------------------------------

    def remove(self, ids: Iterable[int]) -> int:
        ids = list(ids)
        with self.session() as s:
            _delete_images(s, ids)
        return len(ids)

    def rename(self, source: str, target: str) -> int:
        """A file or folder moved from ``source`` to ``target``: its images follow, signatures kept, in one
        transaction. Returns how many images moved (0 when nothing was catalogued there)."""
        prefix = source.rstrip("/") + "/"
        with self.session() as s:
            rows = list(s.execute(select(Image.id, Image.path).where((Image.path == source) | under(source))))
            if not rows:
                return 0
            targets = {
                i: target if path == source else target.rstrip("/") + "/" + path[len(prefix) :]
                for i, path in rows
            }
            # Whatever the catalogue still holds at the target paths was replaced on disk by the move.
            stale: list[int] = []
            for chunk in chunked(list(targets.values())):
                stale.extend(s.scalars(select(Image.id).where(Image.path.in_(chunk))))
            _delete_images(s, stale)
            for image_id, path in targets.items():
                s.execute(update(Image).where(Image.id == image_id).values(path=path))
        return len(rows)

    # -- "not a duplicate" marks -----------------------------------------------------------------

    def add_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Mark pairs of pictures (content hashes) as not duplicates; returns how many were new."""
        wanted = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
        added = 0
        with self.session() as s:
            for first, second in sorted(wanted):
                if s.get(NotDuplicate, (first, second)) is None:
                    s.add(NotDuplicate(first=first, second=second, created_at=now()))
                    added += 1
        return added

    def remove_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        removed = 0
        with self.session() as s:
            for a, b in pairs:
                result = s.execute(
                    delete(NotDuplicate).where(
                        NotDuplicate.first == min(a, b), NotDuplicate.second == max(a, b)
                    )
                )
                removed += result.rowcount or 0  # type: ignore[attr-defined]
        return removed

    def marks(self) -> list[tuple[str, str, datetime]]:
        """Every "not a duplicate" mark: (content hash, content hash, when), oldest first."""
        query = select(NotDuplicate.first, NotDuplicate.second, NotDuplicate.created_at).order_by(
            NotDuplicate.created_at, NotDuplicate.first, NotDuplicate.second
        )
        with self.session() as s:
            return [(a, b, t) for a, b, t in s.execute(query)]

    def paths_by_hash(self, hashes: Iterable[str]) -> dict[str, list[str]]:
        """The catalogued paths of each content hash (readable images only)."""
        found: dict[str, list[str]] = {}
        with self.session() as s:
            for chunk in chunked(sorted(set(hashes))):
                query = select(Image.content_hash, Image.path).where(
                    Image.content_hash.in_(chunk), Image.error.is_(None)
                )
                for h, path in s.execute(query.order_by(Image.path)):
                    found.setdefault(h or "", []).append(path)
        return found

    def image_at(self, path: str) -> ImageInfo | None:
        """The readable image catalogued at ``path``, if any."""
        with self.session() as s:
            image_id = s.scalar(select(Image.id).where(Image.path == path, Image.error.is_(None)))
        return None if image_id is None else self.image_info([image_id]).get(image_id)

    # -- the journal of actions on files ----------------------------------------------------------

    def new_batch(self) -> int:
        """A number for a new run of actions (callers hold the actions lock)."""
        with self.session() as s:
            return int(s.scalar(select(func.max(JournalEntry.batch))) or 0) + 1

    def journal_add(self, entry: JournalEntry) -> int:
        """Write an action before it happens (state ``pending``); returns its id."""
        with self.session() as s:
            s.add(entry)
            s.flush()
            return entry.id

    def journal(
        self, states: Iterable[str] | None = None, ids: Iterable[int] | None = None
    ) -> list[JournalEntry]:
        """Journal entries (all, or those in ``states``, or with ``ids``), oldest first."""
        query = select(JournalEntry).order_by(JournalEntry.id)
        if states is not None:
            query = query.where(JournalEntry.state.in_(list(states)))
        if ids is not None:
            query = query.where(JournalEntry.id.in_(list(ids)))
        with self.session() as s:
            entries = list(s.scalars(query))
            s.expunge_all()
        return entries

    def journal_counts(self) -> dict[str, int]:
        """Journal entries by state."""
        query = select(JournalEntry.state, func.count()).group_by(JournalEntry.state)
        with self.session() as s:
            return {state: n for state, n in s.execute(query)}

    def journal_state(self, entry_id: int, state: str, target: str | None = None) -> None:
        """Move an entry to ``state`` (``target``: where the file went, when that is known now)."""
        values: dict[str, object] = {"state": state}
        if target is not None:
            values["target"] = target
        if state == "done":
            values["done_at"] = now()
        if state == "undone":
            values["undone_at"] = now()
        with self.session() as s:
            s.execute(update(JournalEntry).where(JournalEntry.id == entry_id).values(**values))

    def action_done(
        self,
        entry_id: int,
        path: str,
        moved_to: str | None,
        target: str | None,
        state: str = "done",
        restat: tuple[int, int] | None = None,
    ) -> None:
        """In one transaction: the entry is ``state`` and the catalogue follows the file: its row moves
        to ``moved_to`` when that is still catalogued ground, takes a new (size, mtime) with ``restat``
        (a hard link to identical bytes), else it leaves."""
        values: dict[str, object] = {"state": state}
        if target is not None:
            values["target"] = target
        values["done_at" if state == "done" else "undone_at"] = now()
        with self.session() as s:
            s.execute(update(JournalEntry).where(JournalEntry.id == entry_id).values(**values))
            ids = list(s.scalars(select(Image.id).where(Image.path == path)))
            if restat is not None:
                size, mtime_ns = restat
                s.execute(update(Image).where(Image.id.in_(ids)).values(size=size, mtime_ns=mtime_ns))
            elif moved_to is not None and ids:
                stale = list(s.scalars(select(Image.id).where(Image.path == moved_to)))
                _delete_images(s, stale)
                s.execute(update(Image).where(Image.id.in_(ids)).values(path=moved_to))
            else:
                _delete_images(s, ids)

    @contextmanager
    def writing(self) -> Iterator[Writes]:
        """One transaction of indexing results (see :class:`Writes`): committed at the end of the block,
        rolled back if it raises."""
        with self.session() as s:
            yield Writes(s)


@dataclass(frozen=True)
class ImageRow:
    """The columns an indexing result sets (an unreadable file keeps its error and no dimensions)."""

    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error: str | None = None
    content_width: int | None = None
    content_height: int | None = None
    taken: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    orientation: int | None = None
    has_gps: bool | None = None
    has_exif: bool | None = None

    def values(self) -> dict[str, object]:
        return {**asdict(self), "indexed_at": now()}


class Writes:
    """The statements of one indexing transaction (``Catalog.writing``)."""

    def __init__(self, session: Session):
        self.session = session

    @cached_property
    def _methods(self) -> list[str]:
        """The catalogue's method names, read once per transaction (``fail`` deletes pair rows by them)."""
        return _method_names(self.session)

    def add(self, path: str, row: ImageRow, signatures: Mapping[str, bytes]) -> None:
        """A new image, with its signatures."""
        image = Image(path=path, **row.values())
        image.signatures = [Signature(method=m, value=v) for m, v in signatures.items()]
        self.session.add(image)

    def replace(self, image_id: int, row: ImageRow, signatures: Mapping[str, bytes]) -> None:
        """New content (or new methods) for a known image: its row, and these methods' signatures."""
        self.session.execute(update(Image).where(Image.id == image_id).values(**row.values()))
        self.session.execute(
            delete(Signature).where(Signature.image_id == image_id, Signature.method.in_(list(signatures)))
        )
        self.session.add_all(Signature(image_id=image_id, method=m, value=v) for m, v in signatures.items())

    def fail(self, image_id: int | None, path: str, row: ImageRow) -> None:
        """The file at ``path`` cannot be read: its row keeps the error, and no signatures."""
        if image_id is None:
            self.session.add(Image(path=path, **row.values()))
            return
        self.session.execute(delete(Signature).where(Signature.image_id == image_id))
        self.session.execute(_pair_rows_of(self._methods, [image_id]))
        self.session.execute(update(Image).where(Image.id == image_id).values(**row.values()))

    def touch(self, image_id: int, size: int, mtime_ns: int) -> None:
        """Same content, new size or modification time (rewritten with the same bytes)."""
        self.session.execute(
            update(Image).where(Image.id == image_id).values(size=size, mtime_ns=mtime_ns, indexed_at=now())
        )

    def move(self, image_id: int, path: str, size: int, mtime_ns: int) -> None:
        """The image's file is now at ``path`` (its signatures stay)."""
        self.session.execute(
            update(Image).where(Image.id == image_id).values(path=path, size=size, mtime_ns=mtime_ns)
        )

    def copy(self, path: str, row: ImageRow) -> bool:
        """A new file byte-identical to a catalogued image: a row with that image's dimensions and
        signatures (nothing decoded). False when no readable image has ``row.content_hash``."""
        source = self.session.scalars(
            select(Image).where(Image.content_hash == row.content_hash, Image.error.is_(None)).limit(1)
        ).first()
        if source is None:
            return False
        copied = replace(
            row,
            width=source.width,
            height=source.height,
            format=source.format,
            content_width=source.content_width,
            content_height=source.content_height,
            taken=source.taken,
            camera_make=source.camera_make,
            camera_model=source.camera_model,
            orientation=source.orientation,
            has_gps=source.has_gps,
            has_exif=source.has_exif,
        )
        image = Image(path=path, **copied.values())
        image.signatures = [Signature(method=s.method, value=s.value) for s in source.signatures]
        self.session.add(image)
        return True


def _raw(session: Session, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    """Rows of a query run on the driver's own cursor (``{}`` marks each parameter): plain tuples, at
    the driver's speed, for the reads of millions of rows. Only for SQL written here."""
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql.format(*[mark] * len(params)), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _raw_in(
    session: Session, sql: str, method: str, column: str, values: Sequence[int] | None
) -> list[tuple]:  # type: ignore[type-arg]
    """Rows of ``sql`` (which selects one method's rows: ``method = {}``), all of them for ``values``
    None, else those whose ``column`` is one of ``values`` (in chunks)."""
    if values is None:
        return _raw(session, sql, method)
    rows: list[tuple] = []  # type: ignore[type-arg]
    for chunk in chunked(sorted(values)):
        marks = ", ".join(["{}"] * len(chunk))
        rows.extend(_raw(session, f"{sql} AND {column} IN ({marks})", method, *chunk))
    return rows


def _seqs_and_codes(rows: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """(seq, code) rows -> a seq array and a uint64 code array."""
    import numpy as np

    seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    codes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)).view(np.uint64)
    return seqs, codes


def _covers(session: Session, method: str, key: str) -> bool:
    """Whether ``method``'s stored pairs still cover ``key``, read inside each write of pairs (another
    process may have reset them)."""
    return bool(session.scalar(select(MethodRecord.pairs_key).where(MethodRecord.name == method)) == key)


def _signed(code: int) -> int:
    """A 64-bit code as the signed integer a BIGINT column holds."""
    return code - (1 << 64) if code >= 1 << 63 else code


def _delete_images(session: Session, ids: Sequence[int]) -> None:
    """Images gone, with their signatures and their vector methods' pair rows (a neighbour's row that
    names one of them keeps the entry; readers drop it, as the image has no class)."""
    methods = _method_names(session)
    for chunk in chunked(ids):
        session.execute(delete(Signature).where(Signature.image_id.in_(chunk)))
        session.execute(_pair_rows_of(methods, chunk))
        session.execute(delete(Image).where(Image.id.in_(chunk)))


def _method_names(session: Session) -> list[str]:
    return list(session.scalars(select(MethodRecord.name)))


def _pair_rows_of(methods: list[str], ids: Sequence[int]) -> Delete:
    """Deletes the vector pair rows of ``ids``, found through the (method, image id) key: by image id
    alone, every row would be read."""
    return delete(VectorPairs).where(VectorPairs.method.in_(methods), VectorPairs.image_id.in_(ids))


def _connect_args(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        return {"timeout": 30}
    return {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
