"""Where the catalogue lives, what it computes by default, and the settings a command runs with.

The environment is read here and only here (``Settings.from_options``, called by the CLI); everything
below the CLI gets its settings passed in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catalog.errors import UsageError

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


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/catalog`` (``~/.cache/catalog``): exported models, caches of server catalogues."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catalog"


def resolve_db_url(db: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """Turn ``--db`` / ``CATALOG_DB`` / the default into a SQLAlchemy URL.

    A value containing ``://`` is taken as a URL (``postgresql://...``); anything else is a file path.
    """
    value = db or environ.get("CATALOG_DB") or str(default_db_path())
    if "://" in value:
        return value
    path = Path(value).expanduser().absolute()
    return f"sqlite:///{path}"


def sqlite_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL (None for other databases)."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


#: The ways the cnn model can run (``CATALOG_CNN_BACKEND``): None, the int8 graph in ONNX Runtime (the
#: default); "torch", PyTorch's float model (on a GPU where there is one). Each is a method version of
#: its own, decided by the settings and not by what a machine has installed, so that every machine (a
#: Ray worker, a second computer on a PostgreSQL catalogue) signs alike or refuses.
CNN_BACKENDS = (None, "torch")


@dataclass(frozen=True)
class CnnChoice:
    """Which model computes the cnn features, and how it runs.

    ``model`` None: the model the catalogue's features came from, else the default (see
    ``catalog.methods.resolve_cnn``). ``backend``: ``"torch"`` runs PyTorch; None runs ONNX Runtime where
    it is installed.
    """

    model: str | None = None
    weights: str | None = None
    backend: str | None = None

    @property
    def chosen(self) -> bool:
        """The user named a model or weights (the catalogue's own model is then not taken)."""
        return bool(self.model or self.weights)


#: The default model, run the default way (what a library caller gets without naming one).
DEFAULT_CNN = CnnChoice()


@dataclass(frozen=True)
class Settings:
    """Everything a command runs with, built once by the CLI and passed down."""

    db_url: str
    cnn: CnnChoice = field(default_factory=CnnChoice)

    @classmethod
    def from_options(
        cls,
        db: str | None = None,
        cnn_model: str | None = None,
        cnn_weights: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> Settings:
        """Command-line options first, then ``CATALOG_DB``, ``CATALOG_CNN_MODEL``, ``CATALOG_CNN_WEIGHTS``
        and ``CATALOG_CNN_BACKEND``, then the defaults."""
        backend = environ.get("CATALOG_CNN_BACKEND") or None
        if backend not in CNN_BACKENDS:
            raise UsageError(
                f"CATALOG_CNN_BACKEND={backend!r}: leave it unset (the int8 graph in ONNX Runtime) or set "
                "it to 'torch' (PyTorch's float model)"
            )
        cnn = CnnChoice(
            model=cnn_model or environ.get("CATALOG_CNN_MODEL") or None,
            weights=cnn_weights or environ.get("CATALOG_CNN_WEIGHTS") or None,
            backend=backend,
        )
        return cls(resolve_db_url(db, environ), cnn)
