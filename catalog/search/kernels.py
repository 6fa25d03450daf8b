"""Search loops compiled with Numba: the stored vector rows' entries turned into pairs of classes
(``catalog.search.pairs.stored_vector_pairs``), a few dozen nanoseconds an entry where Python takes
microseconds. Cached on disk by Numba (``cache=True``): the first call of a new install compiles it."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def stored_class_pairs(
    counts: np.ndarray,
    row_class: np.ndarray,
    row_seq: np.ndarray,
    target_row: np.ndarray,
    target_seq: np.ndarray,
    scores: np.ndarray,
    turned: np.ndarray,
    threshold: float,
    higher: bool,
    transforms: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of classes that stored vector rows give (:func:`catalog.search.pairs.stored_vector_pairs`).
    Row ``r`` holds ``counts[r]`` entries, one after another: a neighbour (its row ``target_row[k]``,
    the seq that row had ``target_seq[k]``), a score, whether it came from a turned feature. An entry
    counts when the neighbour's row is still the one it had, the score matches at ``threshold``
    (``higher``: higher is similar), it is upright or ``transforms`` asks for turned ones, and both
    images are in (different) classes. Returns (lower class, higher class, score) in entry order."""
    n = len(target_row)
    low = np.empty(n, dtype=np.int64)
    high = np.empty(n, dtype=np.int64)
    found = np.empty(n, dtype=scores.dtype)
    kept = 0
    k = 0
    for r in range(len(counts)):
        a = row_class[r]
        for _ in range(counts[r]):
            t = target_row[k]
            s = scores[k]
            if (
                a >= 0
                and t >= 0
                and row_seq[t] == target_seq[k]
                and (transforms or turned[k] == 0)
                and (s >= threshold if higher else s <= threshold)
            ):
                b = row_class[t]
                if b >= 0 and b != a:
                    low[kept] = min(a, b)
                    high[kept] = max(a, b)
                    found[kept] = s
                    kept += 1
            k += 1
    return low[:kept], high[:kept], found[:kept]


@njit(cache=True, nogil=True)
def best_per_pair(
    n: int, low: np.ndarray, high: np.ndarray, scores: np.ndarray, higher: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One entry per pair (``low[k]``, ``high[k]``; classes below ``n``), the one with the best
    ``scores[k]`` (``higher``: the highest; the first of equals), ordered by pair: the answer of a
    three-key sort, with a counting sort by ``low`` and small sorts within. Returns (low, high, score)
    of each."""
    starts = np.zeros(n + 1, dtype=np.int64)
    for k in range(len(low)):
        starts[low[k] + 1] += 1
    for c in range(n):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    order = np.empty(len(low), dtype=np.int64)
    for k in range(len(low)):
        order[fill[low[k]]] = k
        fill[low[k]] += 1
    out_low = np.empty(len(low), dtype=low.dtype)
    out_high = np.empty(len(low), dtype=high.dtype)
    out_scores = np.empty(len(low), dtype=scores.dtype)
    kept = 0
    for c in range(n):
        segment = order[starts[c] : starts[c + 1]]
        if len(segment) == 0:
            continue
        within = segment[np.argsort(high[segment], kind="mergesort")]
        best = within[0]
        for j in range(1, len(within) + 1):
            if j < len(within):
                k = within[j]
                if high[k] == high[best]:
                    if scores[k] > scores[best] if higher else scores[k] < scores[best]:
                        best = k
                    continue
            out_low[kept] = c
            out_high[kept] = high[best]
            out_scores[kept] = scores[best]
            kept += 1
            if j < len(within):
                best = within[j]
    return out_low[:kept], out_high[:kept], out_scores[:kept]
