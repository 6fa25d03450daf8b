"""Reference grouping compiled with Numba: the loop of
:func:`catalog.grouping.reference._reference_groups` over arrays, for reference grouping without "not a
duplicate" marks or ``--against`` (verification included: the loop names the pairs still to verify that
it used, and runs again once they are).

A library of a million images with bursts has about a million classes in some pair; the loop takes
each in keep order and looks at its neighbours, a few microseconds per class in Python (12.8 s at a
million) and a few dozen nanoseconds compiled. Both loops are kept: the Python one takes callbacks
(marks, reference folders) that compiled code cannot call, and answers small catalogues before Numba
would have loaded; property tests hold the two to the same groups.

The facts the keep order reads travel as one tuple of arrays by image position, ``facts``: (pixels,
rank in the fixed part of the keep order), as :func:`catalog.grouping.keep.keep_facts` makes them.

Compiled functions are cached on disk by Numba (``cache=True``): the first call of a new install pays
the compilation (a few seconds), later processes load it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: As :data:`catalog.grouping.keep.SAME` (not imported: compiled code reads it as a constant).
SAME = 1.05


@njit(cache=True, nogil=True)
def first_of(circle: np.ndarray, count: int, facts: tuple[np.ndarray, ...]) -> int:
    """The image of ``circle[:count]`` (positions) a person keeps first, as
    :func:`catalog.grouping.keep.first_to_keep` picks it: of the largest pictures (within SAME), the
    first in the fixed part of the keep order (its rank)."""
    pixels, rank = facts
    top = 0
    for k in range(count):
        top = max(top, pixels[circle[k]])
    best = -1
    for k in range(count):
        p = circle[k]
        if pixels[p] * SAME >= top and (best < 0 or rank[p] < rank[best]):
            best = p
    return best


@njit(cache=True, nogil=True)
def class_bests(starts: np.ndarray, members: np.ndarray, facts: tuple[np.ndarray, ...]) -> np.ndarray:
    """The first image to keep of each class (``members[starts[c]:starts[c + 1]]``; -1 when empty)."""
    n = len(starts) - 1
    out = np.full(n, -1, dtype=np.int64)
    for c in range(n):
        count = starts[c + 1] - starts[c]
        if count == 1:
            out[c] = members[starts[c]]
        elif count > 1:
            circle = members[starts[c] : starts[c + 1]]
            out[c] = first_of(circle, count, facts)
    return out


@njit(cache=True, nogil=True)
def _collect(
    c: int,
    starts: np.ndarray,
    targets: np.ndarray,
    scores: np.ndarray,
    usable: np.ndarray,
    pending: np.ndarray,
    taken: np.ndarray,
    eligible: np.ndarray,
    out: np.ndarray,
    out_scores: np.ndarray,
    asked: np.ndarray,
    count: np.ndarray,
) -> int:
    """Class ``c``'s neighbours that are eligible and not taken, each once, through usable edges, into
    ``out``: how many. A pending edge (not verified yet) is used as if confirmed and noted in
    ``asked`` (``count[0]`` of them so far)."""
    k = 0
    for e in range(starts[c], starts[c + 1]):
        t = targets[e]
        if usable[e] and not taken[t] and eligible[t]:
            taken[t] = True  # for now: a pair listed twice gives one member
            out[k] = t
            out_scores[k] = scores[e]
            k += 1
            if pending[e] and count[0] < len(asked):
                asked[count[0]] = e
                count[0] += 1
    for j in range(k):
        taken[out[j]] = False
    return k


@njit(cache=True, nogil=True)
def reference_groups(
    order: np.ndarray,
    starts: np.ndarray,
    targets: np.ndarray,
    scores: np.ndarray,
    usable: np.ndarray,
    pending: np.ndarray,
    eligible: np.ndarray,
    several: np.ndarray,
    best: np.ndarray,
    facts: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Groups around references, classes taken in keep ``order``: (reference class of each group, the
    start of each group's members in the next two arrays (one more than the groups), member classes,
    their scores against the reference, the pending edges the loop used).

    Classes are joined by compressed rows (class ``c``'s neighbours ``targets[starts[c]:starts[c+1]]``
    with ``scores``); only ``usable`` edges count, and ``pending`` ones (still to be verified) are
    used as if confirmed and returned: the groups hold when none was. ``eligible``: the classes that
    take part, ``several``: those with more than one image (a group by themselves), ``best``: each
    class's first image to keep, whose ``facts`` decide the order within a circle."""
    n = len(starts) - 1
    taken = np.zeros(n, dtype=np.bool_)
    widest = 0
    for c in range(n):
        widest = max(widest, starts[c + 1] - starts[c])
    found = np.empty(widest + 1, dtype=np.int64)
    found_scores = np.empty(widest + 1, dtype=scores.dtype)
    circle = np.empty(widest + 1, dtype=np.int64)
    refs = np.empty(n, dtype=np.int64)
    bounds = np.zeros(n + 1, dtype=np.int64)
    members = np.empty(n, dtype=np.int64)
    member_scores = np.empty(n, dtype=scores.dtype)
    asked = np.empty(len(targets) if pending.any() else 0, dtype=np.int64)
    count = np.zeros(1, dtype=np.int64)
    groups = 0
    filled = 0
    rows = (starts, targets, scores, usable, pending, taken, eligible)
    for c in order:
        if taken[c]:
            continue
        k = _collect(c, *rows, found, found_scores, asked, count)
        circle[0] = best[c]
        for j in range(k):
            circle[j + 1] = best[found[j]]
        first = first_of(circle, k + 1, facts)
        if first != best[c]:
            for j in range(k):
                if best[found[j]] == first:
                    c = found[j]
                    break
            k = _collect(c, *rows, found, found_scores, asked, count)
        if k > 0 or several[c]:
            taken[c] = True
            refs[groups] = c
            for j in range(k):
                taken[found[j]] = True
                members[filled + j] = found[j]
                member_scores[filled + j] = found_scores[j]
            filled += k
            groups += 1
            bounds[groups] = filled
    return refs[:groups], bounds[: groups + 1], members[:filled], member_scores[:filled], asked[: count[0]]


@njit(cache=True, nogil=True)
def neighbours(
    n: int, left: np.ndarray, right: np.ndarray, scores: np.ndarray, with_pairs: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Compressed rows of the pairs (``left[k]``, ``right[k]``) both ways, by a counting sort: each
    of ``n`` classes' neighbours ``targets[starts[c]:starts[c + 1]]`` with their ``scores``; with
    ``with_pairs`` (what verification needs) also the pair each edge comes from and the two edges of
    each pair (``slots[k]``), else those two are empty: 32 bytes a pair, most of the grouping's memory
    where codes crowd together."""
    starts = np.zeros(n + 1, dtype=np.int64)
    for k in range(len(left)):
        starts[left[k] + 1] += 1
        starts[right[k] + 1] += 1
    for c in range(n):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    targets = np.empty(2 * len(left), dtype=left.dtype)
    out = np.empty(2 * len(left), dtype=scores.dtype)
    kept = len(left) if with_pairs else 0
    pair = np.empty(2 * kept, dtype=np.int64)
    slots = np.empty((kept, 2), dtype=np.int64)
    for k in range(len(left)):
        a, b = left[k], right[k]
        targets[fill[a]] = b
        out[fill[a]] = scores[k]
        targets[fill[b]] = a
        out[fill[b]] = scores[k]
        if with_pairs:
            pair[fill[a]] = k
            slots[k, 0] = fill[a]
            pair[fill[b]] = k
            slots[k, 1] = fill[b]
        fill[a] += 1
        fill[b] += 1
    return starts, targets, out, pair, slots


@njit(cache=True, nogil=True)
def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The component of each of ``n`` nodes joined by the edges (left[k], right[k]): its smallest node
    (union-find with path halving), as :func:`catalog.grouping.table.components`."""
    parent = np.arange(n)
    for k in range(len(left)):
        a = left[k]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        b = right[k]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for x in range(n):
        parent[x] = parent[parent[x]]
    return parent


@njit(cache=True, nogil=True)
def segment_tiers(segment: np.ndarray, descending: np.ndarray) -> np.ndarray:
    """Tier numbers of values sorted by segment, then largest first (``descending``), as
    :func:`catalog.grouping.keep._tier_ids` cuts them within each segment: a tier starts at its largest
    value and holds every value within SAME of it; a new segment starts a new tier. Numbers run on
    across segments."""
    n = len(descending)
    ids = np.empty(n, dtype=np.int64)
    tier = -1
    start = 0.0
    for k in range(n):
        if k == 0 or segment[k] != segment[k - 1] or descending[k] * SAME < start:
            tier += 1
            start = descending[k] * 1.0
        ids[k] = tier
    return ids
