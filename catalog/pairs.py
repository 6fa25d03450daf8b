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
- a moved image keeps its code, a deleted one simply stops naming it: nothing to update;
- a kill at any moment leaves whole rows only (each batch of rows is one transaction, written in seq
  order), and the next refresh carries on from the last one.

A threshold above the stored one, turned copies (``--transforms``), another method version or the
vector methods use the full search (``catalog.groups.near_pairs``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from catalog.search import EarlierIndex

if TYPE_CHECKING:
    from catalog.methods import Method
    from catalog.store import Catalog

#: Rows written per transaction (the refresh can be stopped between any two).
ROWS_PER_WRITE = 20_000
#: Stored pairs decoded per step when reading (bounds the temporaries).
PAIRS_PER_STEP = 1 << 23


def stored_threshold(method: Method) -> int | None:
    """The widest threshold a method's stored pairs cover (None: it keeps none)."""
    if method.kind != "bits":
        return None
    return int(method.default_threshold)


def pairs_key(method: Method) -> str:
    return f"{stored_threshold(method)}@{method.version}"


def refresh(catalog: Catalog, method: Method, cancel: threading.Event | None = None) -> int:
    """Store the pairs of every code of ``method``'s signatures that has none yet; returns how many
    codes got their row (0 for methods that keep no pairs). Stops between two transactions when
    ``cancel`` is set."""
    if stored_threshold(method) is None:
        return 0
    with catalog.pairs_lock():
        return _refresh(catalog, method, cancel)


def _refresh(catalog: Catalog, method: Method, cancel: threading.Event | None) -> int:
    threshold = int(stored_threshold(method) or 0)
    key = pairs_key(method)
    if catalog.pairs_key(method.name) != key:
        catalog.reset_code_pairs(method.name, key)
    seqs, settled = catalog.settled_codes(method.name)
    _, codes = catalog.upright_codes(method.name)
    pending = np.setdiff1d(np.unique(codes), settled, assume_unique=True)
    if not len(pending):
        return 0
    ordered = np.concatenate([settled, pending])
    index = EarlierIndex(ordered, threshold)
    first_seq = catalog.next_code_seq()
    seq_of = np.concatenate([seqs, first_seq + np.arange(len(pending), dtype=np.int64)])
    written = 0
    for start in range(len(settled), len(ordered), ROWS_PER_WRITE):
        stop = min(len(ordered), start + ROWS_PER_WRITE)
        rows = _rows(index, start, stop, ordered, seq_of)
        if not catalog.add_code_pairs(method.name, key, rows):
            break  # another process reset this method's pairs meanwhile: its refresh starts over
        written += len(rows)
        if cancel is not None and cancel.is_set():
            break
    return written


def _rows(
    index: EarlierIndex, start: int, stop: int, ordered: np.ndarray, seq_of: np.ndarray
) -> list[tuple[int, int, bytes, bytes]]:
    """The rows (seq, code, near, distances) of the positions ``start <= q < stop``."""
    found_q, found_p, found_d = [], [], []
    for q, p, d in index.earlier(start, stop):
        found_q.append(q)
        found_p.append(p)
        found_d.append(d)
    if found_q:
        q, p, d = np.concatenate(found_q), np.concatenate(found_p), np.concatenate(found_d)
        order = np.argsort(q, kind="stable")
        q, p, d = q[order], p[order], d[order]
    else:
        q, p, d = (np.zeros(0, dtype=np.int64),) * 2 + (np.zeros(0, dtype=np.uint8),)
    ends = np.cumsum(np.bincount(q - start, minlength=stop - start))
    near = seq_of[p].astype("<u4").tobytes()
    distances = d.astype(np.uint8).tobytes()
    rows = []
    begin = 0
    for k, end in enumerate(ends.tolist()):
        rows.append(
            (
                int(seq_of[start + k]),
                int(ordered[start + k]),
                near[4 * begin : 4 * end],
                distances[begin:end],
            )
        )
        begin = end
    return rows


def stored_pairs(
    catalog: Catalog, method: Method, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(image ids, class of each image, left classes, right classes, distances) of every pair within
    ``threshold`` among the classes of identical upright codes, from the stored rows plus a search of
    the pending codes; None when the stored pairs do not cover the question."""
    limit = stored_threshold(method)
    if limit is None or threshold > limit or catalog.pairs_key(method.name) != pairs_key(method):
        return None
    ids, codes = catalog.upright_codes(method.name)
    unique, inverse = np.unique(codes, return_inverse=True)
    seqs, row_codes, near, distances = catalog.code_pairs(method.name)
    # Each row's class (-1: no image has its code now), and each stored seq's class.
    position = np.searchsorted(unique, row_codes).clip(max=max(len(unique) - 1, 0))
    present = (unique[position] == row_codes) if len(unique) else np.zeros(len(row_codes), dtype=bool)
    row_class = np.where(present, position, -1)
    by_seq = np.argsort(seqs)
    sorted_seqs = seqs[by_seq]
    class_by_seq = row_class[by_seq]
    del by_seq
    counts = np.fromiter((len(d) for d in distances), dtype=np.int64, count=len(distances))
    kind = np.int32 if len(unique) < 2**31 else np.int64
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
        at = np.searchsorted(sorted_seqs, targets).clip(max=max(len(sorted_seqs) - 1, 0))
        target = np.where(sorted_seqs[at] == targets, class_by_seq[at], -1)
        keep = (owner >= 0) & (target >= 0) & (score <= threshold)
        found_l.append(owner[keep].astype(kind))
        found_r.append(target[keep].astype(kind))
        found_s.append(score[keep])
    del counts
    # Codes without a row yet: searched here against every present code.
    settled = np.zeros(len(unique), dtype=bool)
    settled[position[present]] = True
    if not settled.all():
        ordered_classes = np.concatenate([np.nonzero(settled)[0], np.nonzero(~settled)[0]])
        index = EarlierIndex(unique[ordered_classes], int(threshold))
        for q, p, d in index.earlier(int(settled.sum()), len(unique)):
            found_l.append(ordered_classes[q].astype(kind))
            found_r.append(ordered_classes[p].astype(kind))
            found_s.append(d)
    if not found_l:
        empty = np.zeros(0, dtype=kind)
        return ids, inverse, empty, empty, np.zeros(0, dtype=np.uint8)
    left, right = np.concatenate(found_l), np.concatenate(found_r)
    del found_l, found_r
    low, high = np.minimum(left, right), np.maximum(left, right)
    return ids, inverse, low, high, np.concatenate(found_s)
