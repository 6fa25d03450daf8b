"""Vector signatures (CNN features, pixel thumbnails) searched through a persistent hnswlib index.

The index is a cache beside the catalogue (``catalog.db.cnn.hnsw`` with ``.ids.npy`` and ``.json``),
never the truth: every use first brings it in step with SQLite - features of new or re-signed images are
added, those of vanished images marked deleted - and a missing, stale or unreadable index is rebuilt from
the stored features. Files are replaced atomically, the metadata last, so a crash leaves either the old
index or a detectably incomplete one (rebuilt).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog.config import default_db_path, sqlite_file
from catalog.errors import CatalogError
from catalog.store import Catalog, now

if TYPE_CHECKING:
    import hnswlib

    from catalog.methods import VectorMethod

#: Graph degree and search breadth; chosen by recall@10 on real features (BENCHMARKS.md).
M = 16
EF_CONSTRUCTION = 200
EF_SEARCH = 96
CHUNK = 10_000


def as_matrix(values: list[bytes]) -> np.ndarray:
    """float16 signatures -> float32 matrix (one row each)."""
    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(values), dtype=np.float16).reshape(len(values), -1).astype(np.float32)


def index_base(catalog: Catalog, method: str) -> Path:
    """Where the index files of a method live: beside a SQLite catalogue, else in the XDG cache."""
    db_file = sqlite_file(catalog.url)
    if db_file is not None:
        return db_file.with_name(f"{db_file.name}.{method}")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catalog"
    digest = hashlib.sha256(catalog.url.encode()).hexdigest()[:16]
    return (cache if cache.parent.exists() else default_db_path().parent) / f"{digest}.{method}"


class VectorIndex:
    """The index of one vector method's stored signatures (``cnn`` and ``cnn-euclidean`` share one)."""

    def __init__(self, catalog: Catalog, method: VectorMethod):
        self.catalog = catalog
        self.method = method.signature_name
        self.to_vectors = method.index_vectors
        self.space = method.index_space
        self.version = f"{method.version}/{method.index_space}"
        base = index_base(catalog, self.method)
        self.paths = {kind: Path(f"{base}.{kind}") for kind in ("hnsw", "ids.npy", "json")}
        self.index: hnswlib.Index | None = None
        self.ids = np.zeros(0, dtype=np.int64)  # live labels (image ids)
        self.changed = False  # built or updated since loaded: to be saved
        self.stamp = ""  # the catalogue's signature stamp the saved index reflects

    # -- keeping in step ---------------------------------------------------------------------------

    def sync(self) -> VectorIndex:
        """Bring the index in line with the catalogue; build it when there is none (or it is unusable)."""
        started = now()
        stamp = self.catalog.signature_stamp(self.method)
        synced_at = self._load()
        if synced_at is not None and self.stamp == stamp:
            return self  # nothing changed since the index was saved: no need to compare every id
        self.stamp = stamp
        stored_ids = np.asarray(self.catalog.signature_ids(self.method), dtype=np.int64)
        if self.index is None or synced_at is None:
            self._build(stored_ids)
        else:
            changed = np.asarray(self.catalog.signature_ids(self.method, since=synced_at), dtype=np.int64)
            added = np.union1d(np.setdiff1d(stored_ids, self.ids), changed)
            removed = np.setdiff1d(self.ids, stored_ids)
            if len(added) or len(removed):
                self._update(added, removed)
                self.ids = stored_ids
        if self.changed:
            self._save(started)
        return self

    def _load(self) -> datetime | None:
        hnswlib = _hnswlib()

        try:
            stamp = _stamp(self.paths["json"])
            meta = json.loads(self.paths["json"].read_text())
            if meta.get("version") != self.version:
                return None
            cached = _loaded.get(self.paths["json"])
            if cached is not None and cached[0] == stamp:
                index, ids = cached[1], cached[2]
            else:
                ids = np.load(self.paths["ids.npy"])
                index = hnswlib.Index(space=self.space, dim=int(meta["dim"]))
                index.load_index(str(self.paths["hnsw"]), max_elements=int(meta["capacity"]))
            if meta["count"] != len(ids) or index.get_current_count() < len(ids):
                return None
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError):
            return None
        index.set_ef(EF_SEARCH)
        self.index, self.ids, self.stamp = index, ids, meta.get("stamp", "")
        _loaded[self.paths["json"]] = (stamp, index, ids)
        return datetime.fromisoformat(meta["synced_at"])

    def _build(self, ids: np.ndarray) -> None:
        hnswlib = _hnswlib()

        index = None
        for start in range(0, max(len(ids), 1), CHUNK):  # chunks: never every vector in memory at once
            chunk = ids[start : start + CHUNK]
            vectors = self._vectors(chunk)
            if index is None:
                index = hnswlib.Index(space=self.space, dim=vectors.shape[1] if len(chunk) else 1)
                capacity = max(1024, int(len(ids) * 1.25))
                index.init_index(max_elements=capacity, M=M, ef_construction=EF_CONSTRUCTION)
            if len(chunk):
                index.add_items(vectors, chunk, num_threads=os.cpu_count() or 1)
        assert index is not None
        index.set_ef(EF_SEARCH)
        self.index, self.ids, self.changed = index, ids, True

    def _update(self, added: np.ndarray, removed: np.ndarray) -> None:
        """Mark vanished images deleted; add new ones (an existing label, deleted or not, is replaced)."""
        assert self.index is not None
        _loaded.pop(self.paths["json"], None)  # changed in place: not the saved index any more
        for label in removed.tolist():
            self.index.mark_deleted(label)
        if len(added):
            needed = self.index.get_current_count() + len(added)
            if needed > self.index.get_max_elements():
                self.index.resize_index(int(needed * 1.25))
            self.index.add_items(self._vectors(added), added, num_threads=os.cpu_count() or 1)
        self.changed = True

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        chunks = [
            self.to_vectors(self.catalog.signature_values(self.method, ids[s : s + CHUNK].tolist()))
            for s in range(0, len(ids), CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)

    def _save(self, synced_at: datetime) -> None:
        assert self.index is not None
        self.paths["hnsw"].parent.mkdir(parents=True, exist_ok=True)
        for kind in ("hnsw", "ids.npy"):
            tmp = self.paths[kind].with_name(self.paths[kind].name + ".tmp")
            if kind == "hnsw":
                self.index.save_index(str(tmp))
            else:
                with open(tmp, "wb") as handle:
                    np.save(handle, self.ids)
            os.replace(tmp, self.paths[kind])
        meta = {
            "version": self.version,
            "dim": self.index.dim,
            "count": len(self.ids),
            "capacity": self.index.get_max_elements(),
            "synced_at": synced_at.isoformat(),
            "stamp": self.stamp,
        }
        tmp = self.paths["json"].with_name(self.paths["json"].name + ".tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.paths["json"])
        _loaded[self.paths["json"]] = (_stamp(self.paths["json"]), self.index, self.ids)

    def release(self) -> None:
        """Drop this index from the process's cache of loaded indexes (a daemon keeps no memory)."""
        _loaded.pop(self.paths["json"], None)
        self.index = None

    # -- searching ---------------------------------------------------------------------------------

    def knn(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, index distances) of the ``k`` nearest, nearest first, for each query row."""
        assert self.index is not None
        k = min(k, len(self.ids))
        if k == 0:
            return np.zeros((len(vectors), 0), dtype=np.int64), np.zeros((len(vectors), 0), dtype=np.float32)
        self.index.set_ef(max(EF_SEARCH, k))
        labels, distances = self.index.knn_query(vectors, k=k, num_threads=os.cpu_count() or 1)
        return labels.astype(np.int64), distances

    def neighbour_chunks(self, k: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For every indexed image, in chunks: (its id, ids of its k nearest, their index distances)."""
        for start in range(0, len(self.ids), CHUNK):
            ids = self.ids[start : start + CHUNK]
            labels, similarity = self.knn(self._vectors(ids), k)
            yield ids, labels, similarity


#: Indexes this process has loaded, by metadata file: (its mtime, the index, its ids). A process that
#: queries many times (a library user, a server) loads each index once; the metadata file is replaced
#: on every save, so another process's update is seen.
_loaded: dict[Path, tuple[tuple[int, int], hnswlib.Index, np.ndarray]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _hnswlib():  # type: ignore[no-untyped-def]
    try:
        import hnswlib
    except ImportError:
        raise CatalogError("vector search needs hnswlib: pip install hnswlib") from None
    return hnswlib
