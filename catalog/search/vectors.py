"""Vector signatures (CNN features, pixel thumbnails) searched through a persistent hnswlib index.

The index is a cache beside the catalogue (``catalog.db.cnn.json`` naming ``catalog.db.cnn.<generation>.hnsw``
and ``.ids.npy``), never the truth: every use first brings it in step with SQLite - features of new or
re-signed images are added, those of vanished images marked deleted - and a missing, stale or unreadable
index is rebuilt from the stored features. The writer (``index``, ``watch``) keeps saved indexes in step;
a reader that finds one missing or stale builds it in memory and saves it only if it gets the cache's
lock. A save is a new generation of files switched in by one atomic rename, so a crash or a concurrent
reader sees either the old index or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog.config import CnnChoice, default_db_path, sqlite_file, user_cache_dir
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


def index_base(catalog: Catalog, method: str) -> Path:
    """Where the index files of a method live: beside a SQLite catalogue, else in the XDG cache."""
    db_file = sqlite_file(catalog.url)
    if db_file is not None:
        return db_file.with_name(f"{db_file.name}.{method}")
    cache = user_cache_dir()
    digest = hashlib.sha256(catalog.url.encode()).hexdigest()[:16]
    return (cache if cache.parent.exists() else default_db_path().parent) / f"{digest}.{method}"


class VectorIndex:
    """The index of one vector method's stored signatures (``cnn`` and ``cnn-euclidean`` share one).

    On disk: ``<catalogue>.<method>.json`` names the current generation's ``.hnsw`` and ``.ids.npy``
    files (``<catalogue>.<method>.<generation>.hnsw``). A save writes a new generation under the cache's
    lock (``<catalogue>.<method>.lock``), switches the metadata file by an atomic rename, then deletes the
    old generation; a process that finds the lock taken keeps its index in memory and leaves saving to
    the holder. Readers never take the lock: a reader that loses a race with a save (its files deleted
    under it) reads the metadata again.
    """

    def __init__(self, catalog: Catalog, method: VectorMethod):
        self.catalog = catalog
        self.method = method.signature_name
        self.to_vectors = method.index_vectors
        self.space = method.index_space
        self.version = f"{method.version}/{method.index_space}"
        self.base = index_base(catalog, self.method)
        self.meta_path = Path(f"{self.base}.json")
        self.lock_path = Path(f"{self.base}.lock")
        self.index: hnswlib.Index | None = None
        self.ids = np.zeros(0, dtype=np.int64)  # live labels (image ids)
        self.changed = False  # built or updated since loaded: to be saved
        self.stamp = ""  # the catalogue's signature stamp the saved index reflects

    def files(self) -> dict[str, Path]:
        """The files of the saved generation (``hnsw``, ``ids``), as the metadata file names them."""
        try:
            return self._named(json.loads(self.meta_path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _named(self, meta: dict) -> dict[str, Path]:  # type: ignore[type-arg]
        return {kind: self.meta_path.with_name(meta["files"][kind]) for kind in ("hnsw", "ids")}

    # -- keeping in step ---------------------------------------------------------------------------

    def sync(self, save: bool = True) -> VectorIndex:
        """Bring the index in line with the catalogue; build it when there is none (or it is unusable).
        ``save``: write it back when it changed (under the lock; skipped when another process holds it)."""
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
        if self.changed and save:
            self.save(started)
        return self

    def _load(self) -> datetime | None:
        for _attempt in range(3):  # a save elsewhere may delete the files named by what we just read
            try:
                return self._load_once()
            except FileNotFoundError:
                continue
        return None

    def _load_once(self) -> datetime | None:
        hnswlib = _hnswlib()
        cache = self.catalog.caches.setdefault("vectors", {})
        try:
            stamp = _stamp(self.meta_path)
            meta = json.loads(self.meta_path.read_text())
            if meta.get("version") != self.version or "files" not in meta:
                return None
            cached = cache.get(self.meta_path)
            if cached is not None and cached[0] == stamp:
                index, ids = cached[1], cached[2]
            else:
                files = self._named(meta)
                ids = np.load(files["ids"])
                index = hnswlib.Index(space=self.space, dim=int(meta["dim"]))
                index.load_index(str(files["hnsw"]), max_elements=int(meta["capacity"]))
            if meta["count"] != len(ids) or index.get_current_count() < len(ids):
                return None
        except FileNotFoundError:
            if self.meta_path.exists():
                raise  # replaced meanwhile: read it again
            return None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError):
            return None
        index.set_ef(EF_SEARCH)
        self.index, self.ids, self.stamp = index, ids, meta.get("stamp", "")
        cache[self.meta_path] = (stamp, index, ids)
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
        self.catalog.caches.get("vectors", {}).pop(self.meta_path, None)  # not the saved index any more
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

    def save(self, synced_at: datetime) -> bool:
        """Write this index as the new generation, if no other process is saving (False then)."""
        from catalog.lock import try_lock

        assert self.index is not None
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        with try_lock(self.lock_path) as locked:
            if not locked:
                return False
            generation = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            stem = f"{self.base.name}.{generation}"
            files = {"hnsw": f"{stem}.hnsw", "ids": f"{stem}.ids.npy"}
            try:
                self.index.save_index(str(self.meta_path.with_name(files["hnsw"])))
                with open(self.meta_path.with_name(files["ids"]), "wb") as handle:
                    np.save(handle, self.ids)
                meta = {
                    "version": self.version,
                    "dim": self.index.dim,
                    "count": len(self.ids),
                    "capacity": self.index.get_max_elements(),
                    "synced_at": synced_at.isoformat(),
                    "stamp": self.stamp,
                    "files": files,
                }
                tmp = self.meta_path.with_name(f"{self.meta_path.name}.{generation}.tmp")
                tmp.write_text(json.dumps(meta))
                os.replace(tmp, self.meta_path)
            finally:
                self._remove_other_generations(keep=set(self.files().values()))
        self.changed = False
        self.catalog.caches.setdefault("vectors", {})[self.meta_path] = (
            _stamp(self.meta_path),
            self.index,
            self.ids,
        )
        return True

    def _remove_other_generations(self, keep: set[Path]) -> None:
        """Under the lock: every data file but the current generation's (older generations, a save that
        was interrupted, the single-generation files of earlier versions) is removed."""
        prefix = self.base.name + "."
        for path in self.meta_path.parent.iterdir():
            name = path.name
            if name.startswith(prefix) and name.endswith((".hnsw", ".ids.npy", ".tmp")) and path not in keep:
                path.unlink(missing_ok=True)

    def release(self) -> None:
        """Drop this index from the catalogue's cache of loaded indexes (a daemon keeps no memory)."""
        self.catalog.caches.get("vectors", {}).pop(self.meta_path, None)
        self.index = None

    # -- searching ---------------------------------------------------------------------------------

    def knn(self, vectors: np.ndarray, k: int, ef: int = EF_SEARCH) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, index distances) of the ``k`` nearest, nearest first, for each query row
        (``ef``: hnswlib's search breadth; smaller is faster and may miss far neighbours)."""
        assert self.index is not None
        k = min(k, len(self.ids))
        if k == 0:
            return np.zeros((len(vectors), 0), dtype=np.int64), np.zeros((len(vectors), 0), dtype=np.float32)
        self.index.set_ef(max(ef, k))
        labels, distances = self.index.knn_query(vectors, k=k, num_threads=os.cpu_count() or 1)
        return labels.astype(np.int64), distances

    def neighbour_chunks(
        self, k: int, ef: int = EF_SEARCH
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For every indexed image, in chunks: (its id, ids of its k nearest, their index distances)."""
        for start in range(0, len(self.ids), CHUNK):
            ids = self.ids[start : start + CHUNK]
            labels, similarity = self.knn(self._vectors(ids), k, ef)
            yield ids, labels, similarity


def sync_saved_indexes(catalog: Catalog, cnn: CnnChoice) -> list[tuple[str, float]]:
    """For the writer: bring every index that a search has saved beside the catalogue up to date with
    it, then release it (an index nobody built yet is left for the first search). -> (method, seconds)."""
    import time

    from catalog.methods import VectorMethod, get_method, resolve_cnn

    synced = []
    stored = catalog.methods()
    for name in stored:
        method = get_method(name, resolve_cnn(cnn, stored))
        if not isinstance(method, VectorMethod):
            continue
        vectors = VectorIndex(catalog, method)
        if vectors.meta_path.exists():
            started = time.monotonic()
            vectors.sync()
            vectors.release()
            synced.append((name, time.monotonic() - started))
    return synced


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _hnswlib():  # type: ignore[no-untyped-def]
    try:
        import hnswlib
    except ImportError:
        raise CatalogError("vector search needs hnswlib: pip install hnswlib") from None
    return hnswlib


#: Neighbours asked of the vector index per image: a group larger than this still forms around its
#: reference when the pairs are found from the other members' side.
NEIGHBOURS = 16
#: hnswlib's search breadth for them: matches are the nearest of neighbours, and 48 keeps 99.98 % of
#: the matches that 96 (``query``'s) finds, in 64 % of the time (BENCHMARKS.md).
NEIGHBOURS_EF = 48
#: Neighbours (and search breadth) asked for each turned feature: a turned copy is the nearest or next
#: to it, so a narrow search finds it at a fraction of the cost (BENCHMARKS.md).
TURNED_NEIGHBOURS = 4
TURNED_EF = 16


def matching_neighbours(
    catalog: Catalog,
    method: VectorMethod,
    ids: np.ndarray,
    labels: np.ndarray,
    distances: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, neighbour, score) of the vector index's answers for ``ids`` (``labels[k]`` and
    ``distances[k]``: the neighbours of ``ids[k]``) that match at ``threshold``, each image's own entry
    left out; scored by the method itself where the index only proposes."""
    rows, cols = np.nonzero(labels != ids[:, None])
    a, b = ids[rows], labels[rows, cols]
    if method.index_is_exact:
        scores = method.from_index(distances[rows, cols]).astype(np.float64)
    else:
        scores = pair_scores(catalog, method, a, b)
    near = method.is_match(scores, threshold)
    return a[near], b[near], scores[near]


def pair_scores(catalog: Catalog, method: VectorMethod, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The method's scores of the pairs (a[k], b[k]) of image ids, each signature read once."""
    unique = np.unique(np.concatenate([a, b])).tolist()
    values = dict(zip(unique, catalog.signature_values(method.signature_name, unique), strict=True))
    return method.score_pairs([values[i] for i in a.tolist()], [values[i] for i in b.tolist()])
