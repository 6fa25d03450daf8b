"""SQL helpers shared by the store's modules: chunked ``IN`` lists, reads on the driver's cursor, the
portable "under this folder" condition, connection settings. Only the store imports the private ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Delete, and_, delete, func, insert, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from catalog.store.models import Image, MethodRecord, Signature, VectorPairs, encode_path

if TYPE_CHECKING:
    import numpy as np


T = TypeVar("T")


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


def under(prefix_path: str, column=None):  # type: ignore[no-untyped-def]
    """SQL condition: the image path (or another path ``column``) lies below the folder ``prefix_path``
    (no LIKE escaping)."""
    return _Under(encode_path(prefix_path.rstrip("/") + "/"), Image.path if column is None else column)


class _Under(ColumnElement[bool]):
    """``Image.path`` starts with ``prefix``, as each database can answer from an index: in SQLite, where
    text compares byte by byte, a range of the path index (``prefix <= path < prefix with "/" raised to
    "0"``: milliseconds in a million rows); in PostgreSQL, whose collations need not order text by bytes,
    an escaped ``LIKE 'prefix%'``, which its ``text_pattern_ops`` index on the path serves
    (``PATH_PATTERN_DDL``); elsewhere a portable ``substr`` comparison."""

    inherit_cache = True
    type = NullType()  # type: ignore[assignment]  # not Boolean: SQLite would compare the whole condition with 1, past its index

    def __init__(self, prefix: str, column) -> None:  # type: ignore[no-untyped-def]
        self.prefix = prefix
        self.column = column


@compiles(_Under)
def _under_portable(element: _Under, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    prefix = element.prefix
    return f"({compiler.process(func.substr(element.column, 1, len(prefix)) == prefix, **kw)})"


@compiles(_Under, "postgresql")
def _under_postgresql(element: _Under, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"({compiler.process(element.column.startswith(element.prefix, autoescape=True), **kw)})"


@compiles(_Under, "sqlite")
def _under_sqlite(element: _Under, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    prefix = element.prefix
    upper = prefix[:-1] + "0"
    column = element.column
    return f"({compiler.process(and_(column >= prefix, column < upper), **kw)})"


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


def _insert_rows(session: Session, model: type, rows: list[dict[str, object]]) -> None:
    """Insert ``rows`` into ``model``'s table as one Core ``executemany``: the ORM's bulk insert spends
    about twice as long per row on its own bookkeeping (the stored groups, copy counts and pairs of a
    first index are millions of rows)."""
    if rows:
        session.connection().execute(insert(model.__table__), rows)  # type: ignore[attr-defined]


def _raw_in(
    session: Session, sql: str, method: str, column: str, values: Sequence[int] | Sequence[bytes] | None
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


def _read_only_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """A read-only catalogue's connection: the journal mode is the file's own (WAL), never set."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
