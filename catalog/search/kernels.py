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
