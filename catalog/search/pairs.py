"""Near pairs kept at indexing time, so that ``dupes``, ``copies``, ``review`` and ``resolve`` read them
instead of searching every pair again.

What is stored is a row per distinct **code** of a hash method (the upright 64-bit hash), not per image:
the distance between two codes never changes, so a row, once written, stays true for as long as any
image has its code. A row holds the codes that had a row before it and lie within the method's stored
threshold (its default), by their ``seq``: each pair lives in the row of its later code. Images reach
their pairs through their signatures:

- a new or changed image whose code has no row yet is *pending*: the next :func:`refresh` (at the end of
  ``catalog index``, after each batch of ``catalog watch``) searches its code against every code with
  a row and writes its row; until then readers search the pending codes themselves, so an answer never
  misses a pair, whatever was interrupted where;
- a moved image keeps its code, a deleted one simply stops naming it: nothing to update (rows of codes
  no image has are dropped in bulk once they are a tenth of the rows, see ``Settled.save_if_grown``);
- a kill at any moment leaves whole rows only (each batch of rows is one transaction, written in seq
  order), and the next refresh carries on from the last one.

A threshold above the stored one, turned copies (``--transforms``) of a hash, or another method version
use the full search (``catalog.search.kinds.near_pairs``).

The vector methods (``cnn``, the pixel methods) keep a row per **image** instead (``vector_pairs``): the
neighbours the HNSW index gives for its vectors (upright and turned, as ``dupes`` asks) that match at the
method's loosest default, each with the ``seq`` its row had then. A pair holds while the neighbour's row
keeps that seq; a re-signed image gets a new row and seq, every image of one refresh gets its seq before
any is searched; a deleted or unreadable image's row goes with its signatures. Readers use the rows only
when no image of the method waits for its row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from catalog.search.bits import CodeIndex
from catalog.search.settled import Settled, cache_path

if TYPE_CHECKING:
    from catalog.methods import Method, VectorMethod
    from catalog.store import Catalog

#: Rows written per transaction (the refresh can be stopped between any two).
ROWS_PER_WRITE = 20_000
#: Stored pairs decoded per step when reading (bounds the temporaries: about 40 bytes a pair).
PAIRS_PER_STEP = 1 << 21


def stored_threshold(method: Method) -> float | None:
    """The widest threshold a method's stored pairs cover (None: it keeps none): a hash method's
    default; a vector method's loosest default (the verified one when pairs are verified)."""
    if method.kind == "bits":
        return int(method.default_threshold)
    if method.kind == "vector" and method.signature_name == method.name:
        loosest = [method.default_threshold]
        if method.verified_by:
            loosest.append(method.verified_threshold)
        return min(loosest) if method.higher_is_similar else max(loosest)
    return None


def pairs_key(method: Method) -> str:
    return f"{stored_threshold(method)}@{method.version}"


def refresh(catalog: Catalog, method: Method, cancel: threading.Event | None = None) -> int:
    """Store the pairs of every code written since the last refresh (the ``unpaired`` entries) that
    has no row yet; returns how many codes got their row (0 for methods that keep no pairs). Stops
    between two transactions when ``cancel`` is set."""
    if stored_threshold(method) is None:
        catalog.drop_unpaired(method.name)
        return 0
    with catalog.pairs_lock():
        key = pairs_key(method)
        if catalog.pairs_key(method.name) != key:
            cache_path(catalog, method.name).unlink(missing_ok=True)  # it describes the rows dropped now
            catalog.reset_pairs(method.name, key)
        if method.kind == "vector":
            return _refresh_vectors(catalog, method, key, cancel)  # type: ignore[arg-type]
        return _refresh(catalog, method, key, cancel)


def _refresh(catalog: Catalog, method: Method, key: str, cancel: threading.Event | None) -> int:
    threshold = int(stored_threshold(method) or 0)
    entries, codes = catalog.unpaired(method.name)
    if not entries:
        return 0
    settled = Settled.load(catalog, method.name, key, threshold)
    candidates = np.unique(codes)
    pending = candidates[~settled.holds(candidates)]
    if not len(pending):
        catalog.add_code_pairs(method.name, key, [], entries)
        return 0
    # The codes written since the saved index (its tail) and the pending ones, searched among
    # themselves; the saved index answers for everything before.
    recent = CodeIndex(np.concatenate([settled.tail_codes, pending]), threshold)
    first_seq = catalog.next_code_seq()
    pending_seqs = first_seq + np.arange(len(pending), dtype=np.int64)
    recent_seqs = np.concatenate([settled.tail_seqs, pending_seqs])
    tail = len(settled.tail_codes)
    written = 0
    for start in range(0, len(pending), ROWS_PER_WRITE):
        stop = min(len(pending), start + ROWS_PER_WRITE)
        found = [(q + start, settled.seqs[p], d) for q, p, d in settled.index.near(pending[start:stop])] + [
            (q - tail, recent_seqs[p], d) for q, p, d in recent.earlier(tail + start, tail + stop)
        ]
        rows = _rows(found, start, stop, pending, pending_seqs)
        last = stop == len(pending)
        if not catalog.add_code_pairs(method.name, key, rows, entries if last else ()):
            return written  # another process reset this method's pairs meanwhile: its refresh starts over
        written += len(rows)
        if cancel is not None and cancel.is_set() and not last:
            return written
    settled.extend(pending_seqs, pending)
    settled.save_if_grown(catalog, method.name, key)
    return written


#: Images whose neighbours are asked of the vector index per transaction.
VECTORS_PER_WRITE = 2_000


def _refresh_vectors(catalog: Catalog, method: VectorMethod, key: str, cancel: threading.Event | None) -> int:
    """Rows for the images signed since the last refresh: their nearest neighbours in the HNSW index
    (upright, and turned features for methods that keep them), as ``dupes`` asks, scored by the method,
    kept where they match at the stored threshold. Every image of the run gets its seq before any is
    searched, so a pair between two of them is recorded with both seqs."""
    from catalog.search.vectors import (
        NEIGHBOURS,
        NEIGHBOURS_EF,
        TURNED_EF,
        TURNED_NEIGHBOURS,
        VectorIndex,
        matching_neighbours,
    )

    entries, ids = catalog.unpaired_images(method.name)
    if not entries:
        return 0
    if not ids:
        catalog.put_vector_rows(method.name, key, [], entries)
        return 0
    threshold = float(stored_threshold(method) or 0.0)
    index = VectorIndex(catalog, method).sync()
    first_seq = catalog.next_vector_seq()
    new_seqs = dict(zip(ids, range(first_seq, first_seq + len(ids)), strict=True))
    turned = getattr(method, "turned_vectors", None)
    written = 0
    for start in range(0, len(ids), VECTORS_PER_WRITE):
        chunk = np.asarray(ids[start : start + VECTORS_PER_WRITE], dtype=np.int64)
        values = catalog.signature_values(method.signature_name, chunk.tolist())
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        searches = [(method.index_vectors(values), NEIGHBOURS, NEIGHBOURS_EF, False)]
        if callable(turned):
            searches += [(v, TURNED_NEIGHBOURS, TURNED_EF, True) for v in turned(values)]
        for vectors, k, ef, is_turned in searches:
            labels, distances = index.knn(vectors, k, ef=ef)
            a, b, scores = matching_neighbours(catalog, method, chunk, labels, distances, threshold)
            found.append((a, b, scores, np.full(len(a), is_turned)))
        neighbours = np.unique(np.concatenate([f[1] for f in found]))
        seqs = {**catalog.vector_seqs(method.name, neighbours.tolist()), **new_seqs}
        out = _vector_rows(chunk, found, seqs, new_seqs, method.higher_is_similar)
        last = start + VECTORS_PER_WRITE >= len(ids)
        if not catalog.put_vector_rows(method.name, key, out, entries if last else ()):
            return written
        written += len(out)
        if cancel is not None and cancel.is_set() and not last:
            return written
    return written


def _vector_rows(
    chunk: np.ndarray,
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    seqs: dict[int, int],
    new_seqs: dict[int, int],
    higher_is_similar: bool,
) -> list[tuple[int, int, bytes, bytes, bytes, bytes]]:
    """A row per image of ``chunk``: its matching neighbours, each once with its best score (upright
    before turned when they tie), with the neighbour's seq (a neighbour without a row is left out: it
    was deleted meanwhile)."""
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    scores = np.concatenate([f[2] for f in found])
    is_turned = np.concatenate([f[3] for f in found])
    order = np.lexsort((is_turned, -scores if higher_is_similar else scores, b, a))
    a, b, scores, is_turned = a[order], b[order], scores[order], is_turned[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])] if len(a) else np.zeros(0, dtype=bool)
    a, b, scores, is_turned = a[first], b[first], scores[first], is_turned[first]
    by_image: dict[int, list[int]] = {}
    for k, image in enumerate(a.tolist()):
        by_image.setdefault(image, []).append(k)
    rows = []
    for image in chunk.tolist():
        picks = [k for k in by_image.get(image, []) if int(b[k]) in seqs]
        rows.append(
            (
                image,
                new_seqs[image],
                b[picks].astype("<i4").tobytes(),
                np.asarray([seqs[int(b[k])] for k in picks], dtype="<i4").tobytes(),
                scores[picks].astype("<f4").tobytes(),
                is_turned[picks].astype(np.uint8).tobytes(),
            )
        )
    return rows


def vector_pairs_cover(catalog: Catalog, method: Method, threshold: float) -> bool:
    """Whether ``method``'s stored pairs answer a question at ``threshold``: this threshold and version
    are covered, and no image waits for its row."""
    limit = stored_threshold(method)
    if limit is None or catalog.pairs_key(method.name) != pairs_key(method):
        return False
    return bool(method.is_match(np.asarray([threshold]), limit)[0]) and not catalog.count_unpaired(
        method.name
    )


def stored_vector_pairs(
    catalog: Catalog,
    method: Method,
    threshold: float,
    transforms: bool,
    classes: Callable[[], tuple[np.ndarray, np.ndarray, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(lower class, higher class, score) of every stored pair of the method's images that matches at
    ``threshold`` (turned ones only with ``transforms``), both images' rows current and the two in
    different classes, in the order of the rows (a pair of classes may come more than once); None when
    the stored pairs do not cover the question (:func:`vector_pairs_cover`). One compiled pass over the
    rows' entries (:func:`catalog.search.kernels.stored_class_pairs`).

    ``classes()`` gives the images' ids (sorted), the class of each and how many classes; it is asked
    once the rows are read, so that another process can have read them meanwhile."""
    from catalog.search import kernels

    if not vector_pairs_cover(catalog, method, threshold):
        return None
    rows = catalog.vector_rows(method.name)
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    owners = np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=len(rows))
    own_seqs = np.fromiter(map(itemgetter(1), rows), dtype=np.int64, count=len(rows))
    near = list(map(itemgetter(2), rows))
    counts = np.fromiter(map(len, near), dtype=np.int64, count=len(rows)) // 4
    targets = np.frombuffer(b"".join(near), dtype="<i4")
    del near
    target_seqs = np.frombuffer(b"".join(map(itemgetter(3), rows)), dtype="<i4")
    scores = np.frombuffer(b"".join(map(itemgetter(4), rows)), dtype="<f4")
    turned = np.frombuffer(b"".join(map(itemgetter(5), rows)), dtype=np.uint8)
    del rows
    # Each neighbour's row (-1: none now), each row's class (-1: its image is gone since).
    target_row = Lookup(owners, np.arange(len(owners))).of(targets)
    ids, class_of, _ = classes()
    row_class = Lookup(ids, class_of).of(owners)
    low, high, found = kernels.stored_class_pairs(
        counts,
        row_class,
        own_seqs,
        target_row,
        target_seqs,
        scores,
        turned,
        float(threshold),
        bool(method.higher_is_similar),
        transforms,
    )
    return low, high, found.astype(np.float64)


def _rows(
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    start: int,
    stop: int,
    pending: np.ndarray,
    pending_seqs: np.ndarray,
) -> list[tuple[int, int, bytes, bytes]]:
    """The rows (seq, code, near, distances) of pending codes ``start <= k < stop`` from their pairs
    (pending number, seq of the earlier code, distance)."""
    if found:
        q = np.concatenate([f[0] for f in found])
        seqs = np.concatenate([f[1] for f in found])
        d = np.concatenate([f[2] for f in found])
        order = np.argsort(q, kind="stable")
        q, seqs, d = q[order], seqs[order], d[order]
    else:
        q, seqs, d = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    ends = np.cumsum(np.bincount(q - start, minlength=stop - start))
    near = seqs.astype("<u4").tobytes()
    distances = d.astype(np.uint8).tobytes()
    rows = []
    begin = 0
    for k, end in enumerate(ends.tolist()):
        code = int(pending[start + k])
        rows.append((int(pending_seqs[start + k]), code, near[4 * begin : 4 * end], distances[begin:end]))
        begin = end
    return rows


class Lookup:
    """The value each key (a row's seq, or an image id) has, -1 for a key no row has: a table indexed by
    key where keys are dense (a gather per pair), else a binary search. Keys and values are >= 0."""

    def __init__(self, seqs: np.ndarray, values: np.ndarray):
        top = int(seqs.max()) if len(seqs) else 0
        self.table: np.ndarray | None = None
        if top <= 4 * len(seqs) + 1_000_000:
            self.table = np.full(top + 1, -1, dtype=values.dtype)
            self.table[seqs] = values
        else:
            by_seq = np.argsort(seqs)
            self.seqs, self.values = seqs[by_seq], values[by_seq]

    def of(self, seqs: np.ndarray) -> np.ndarray:
        if self.table is not None:
            inside = seqs < len(self.table)
            return np.where(inside, self.table[np.where(inside, seqs, 0)], -1)
        if not len(self.seqs):
            return np.full(len(seqs), -1, dtype=self.values.dtype)
        at = np.searchsorted(self.seqs, seqs).clip(max=len(self.seqs) - 1)
        return np.where(self.seqs[at] == seqs, self.values[at], -1)


def stored_pairs(
    catalog: Catalog,
    method: Method,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(image ids, class of each image, left classes, right classes, distances, each class's code) of
    every pair within ``threshold`` among the classes of identical upright codes, from the stored rows
    plus a search of the pending codes; None when the stored pairs do not cover the question."""
    limit = stored_threshold(method)
    if limit is None or threshold > limit or catalog.pairs_key(method.name) != pairs_key(method):
        return None
    ids, codes = catalog.upright_codes(method.name)
    unique, inverse = np.unique(codes, return_inverse=True)
    seqs, row_codes, near, distances = catalog.code_pairs(method.name)
    # Each row's class (-1: no image has its code now), and each stored seq's class.
    position = np.searchsorted(unique, row_codes).clip(max=max(len(unique) - 1, 0))
    present = (unique[position] == row_codes) if len(unique) else np.zeros(len(row_codes), dtype=bool)
    kind = np.int32 if len(unique) < 2**31 else np.int64
    row_class = np.where(present, position, -1).astype(kind)
    lookup = Lookup(seqs, row_class)
    counts = np.fromiter((len(d) for d in distances), dtype=np.int64, count=len(distances))
    found_l, found_r, found_s = [], [], []
    # In parts of about PAIRS_PER_STEP pairs: a library with bursts stores hundreds of millions.
    ends = np.cumsum(counts)
    cuts = [
        0,
        *np.searchsorted(
            ends, np.arange(PAIRS_PER_STEP, ends[-1] if len(ends) else 0, PAIRS_PER_STEP)
        ).tolist(),
        len(counts),
    ]
    for begin, end in zip(cuts[:-1], cuts[1:], strict=True):
        if begin >= end:
            continue
        owner = np.repeat(row_class[begin:end], counts[begin:end])
        targets = np.frombuffer(b"".join(near[begin:end]), dtype="<u4").astype(np.int64)
        score = np.frombuffer(b"".join(distances[begin:end]), dtype=np.uint8)
        target = lookup.of(targets)
        del targets
        keep = (owner >= 0) & (target >= 0) & (score <= threshold)
        owner, target = owner[keep], target[keep]
        found_l.append(np.minimum(owner, target))
        found_r.append(np.maximum(owner, target))
        found_s.append(score[keep])
        del owner, target, score, keep
    del counts, near, distances
    # Codes without a row yet: searched here against every present code.
    settled = np.zeros(len(unique), dtype=bool)
    settled[position[present]] = True
    if not settled.all():
        ordered_classes = np.concatenate([np.nonzero(settled)[0], np.nonzero(~settled)[0]])
        index = CodeIndex(unique[ordered_classes], int(threshold))
        for q, p, d in index.earlier(int(settled.sum()), len(unique)):
            left, right = ordered_classes[q].astype(kind), ordered_classes[p].astype(kind)
            found_l.append(np.minimum(left, right))
            found_r.append(np.maximum(left, right))
            found_s.append(d)
    if not found_l:
        empty = np.zeros(0, dtype=kind)
        return ids, inverse, empty, empty, np.zeros(0, dtype=np.uint8), unique
    # One list at a time: where codes crowd together the pairs are most of the memory.
    low = np.concatenate(found_l)
    del found_l
    high = np.concatenate(found_r)
    del found_r
    return ids, inverse, low, high, np.concatenate(found_s), unique
