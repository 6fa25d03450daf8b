"""Where the catalogue lives and what it computes by default."""

from __future__ import annotations

import os
from pathlib import Path

#: Methods computed when a new catalogue is indexed without ``--methods``. ``exact`` (the content hash)
#: is always available: every image row carries its hash.
DEFAULT_METHODS: tuple[str, ...] = ("ahash", "phash", "dhash", "whash")

#: Size of the decoded working image every method computes from. JPEGs are draft-decoded (1/2, 1/4 or
#: 1/8 scale) to at least half of it on the short side; other formats are box-reduced to under twice it.
WORK_SIZE = 512

#: Images with more pixels than this are refused as decompression bombs (about 16k x 11k).
MAX_PIXELS = 180_000_000

#: Rows written per transaction while indexing.
WRITE_BATCH = 200


def default_db_path() -> Path:
    """The XDG data location: ``$XDG_DATA_HOME/catalog/catalog.db`` (``~/.local/share/...``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "catalog" / "catalog.db"


def resolve_db_url(db: str | None) -> str:
    """Turn ``--db`` / ``CATALOG_DB`` / the default into a SQLAlchemy URL.

    A value containing ``://`` is taken as a URL (``postgresql://...``); anything else is a file path.
    """
    value = db or os.environ.get("CATALOG_DB") or str(default_db_path())
    if "://" in value:
        return value
    path = Path(value).expanduser().absolute()
    return f"sqlite:///{path}"


def sqlite_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL (None for other databases)."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
