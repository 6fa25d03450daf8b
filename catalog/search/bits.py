"""Finding near signatures without an N x N matrix.

``hamming_edges`` finds the pairs of 64-bit codes within a Hamming distance by multi-index hashing
(Norouzi et al., "Fast search in Hamming space with multi-index hashing", CVPR 2012): split the 64 bits
into ``m`` blocks; two codes within ``t`` bits agree to within ``t // m`` bits on at least one block
(pigeonhole), so candidates come from probing each block's table at that small radius, and only the
candidates are checked in full. The block count is chosen from a cost model of the data size; tiny inputs
use a vectorised brute force. Identical codes are collapsed first, so a thousand byte-identical copies
cost one code, not a million pairs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from functools import cache
from itertools import combinations

import numpy as np

from catalog.methods.hashes import all_codes, codes_from_bytes, popcount  # noqa: F401 - the codes as search reads them

BITS = 64
_CHUNK = 1 << 22  # elements per vectorised step (keeps temporaries around 32-64 MB)


def hamming_edges(codes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges (i, j) whose connected components are those of "within ``max_distance`` bits".

    Every pair of distinct codes within the distance is an edge; items with identical codes are joined
    by a star (first occurrence to each other one) rather than by all their pairs.
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    unique, first_index, inverse = np.unique(codes, return_index=True, return_inverse=True)
    same_left = first_index[inverse]
    is_copy = same_left != np.arange(len(codes))
    star_i, star_j = same_left[is_copy], np.nonzero(is_copy)[0]
    ui, uj = hamming_pairs(unique, max_distance)
    return (
        np.concatenate([star_i, first_index[ui]]).astype(np.int64),
        np.concatenate([star_j, first_index[uj]]).astype(np.int64),
    )


def hamming_pairs(codes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j of (distinct) codes with popcount(codes[i] ^ codes[j]) <= max_distance."""
    n = len(codes)
    if n < 2 or max_distance < 0:
        return _empty()
    blocks = choose_blocks(n, max_distance)
    if blocks is None:
        return _brute_force(codes, max_distance)
    return _multi_index(codes, max_distance, blocks)


def choose_blocks(n: int, t: int) -> int | None:
    """The block count with the lowest estimated cost, or None when brute force is cheaper."""
    brute = n * n / 2 * 5.0  # ~5 ns per pair, vectorised numpy
    best, best_cost = None, brute
    for m in range(2, 9):
        radius = t // m
        width = BITS // m  # the narrowest block
        probes = _ball_size(width, radius)
        if probes > 5000 or width > 32:
            continue
        candidates = n * probes * m * max(n / 2.0**width, 1e-3)
        cost = n * probes * m * 8.0 + candidates * 15.0
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _ball_size(bits: int, radius: int) -> int:
    return sum(math.comb(bits, k) for k in range(radius + 1))


@cache
def _flip_masks(bits: int, radius: int) -> np.ndarray:
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in chosen) for chosen in combinations(range(bits), k))
    return np.asarray(masks, dtype=np.int64)


def _block_bounds(m: int) -> list[tuple[int, int]]:
    widths = [BITS // m + (1 if k < BITS % m else 0) for k in range(m)]
    bounds, low = [], 0
    for width in widths:
        bounds.append((low, width))
        low += width
    return bounds


def _multi_index(codes: np.ndarray, t: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(codes)
    bounds = _block_bounds(m)
    radius = t // m
    blocks = [_block_values(codes, low, width) for low, width in bounds]
    found_i, found_j = [], []
    for k, (_, width) in enumerate(bounds):
        values = blocks[k]
        order = np.argsort(values, kind="stable")
        bucket_range = _bucket_lookup(values, order, width)
        masks = _flip_masks(width, radius)
        rows_per_step = max(1, _CHUNK // len(masks))
        for start in range(0, n, rows_per_step):
            # Real codes fill their buckets unevenly (bursts of near-identical frames): the rows of a
            # step are split again so that each part expands to about _CHUNK candidates, whatever the
            # skew, and the temporaries stay bounded.
            chunk = np.arange(start, min(n, start + rows_per_step))
            for rows in _by_candidates(chunk, values[chunk], masks, bucket_range):
                i, j = _block_candidates(rows, values[rows], masks, bucket_range, order)
                diff = codes[i] ^ codes[j]
                keep = popcount(diff) <= t
                # A pair is reported by the first block where it lies within the radius, not again later.
                for earlier in range(k):
                    keep &= popcount(_block_values(diff, *bounds[earlier])) > radius
                found_i.append(i[keep].astype(np.int32 if n < 2**31 else np.int64))
                found_j.append(j[keep].astype(np.int32 if n < 2**31 else np.int64))
    return np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)


def _by_candidates(rows, own, masks, bucket_range):  # type: ignore[no-untyped-def]
    """``rows`` in consecutive parts that each expand to at most about _CHUNK candidates (a row whose
    own buckets hold more forms a part alone)."""
    _, counts = bucket_range(own)
    probes = own[:, None] ^ masks[None, 1:]
    _, probe_counts = bucket_range(probes.ravel())
    upward = (probes > own[:, None]).ravel()
    per_row = counts + np.where(upward, probe_counts, 0).reshape(probes.shape).sum(axis=1)
    yield from _split(rows, np.cumsum(per_row))


def _block_candidates(rows, own, masks, bucket_range, order):  # type: ignore[no-untyped-def]
    """Candidate pairs (i < j) whose block values differ by one of ``masks`` (``masks[0]`` is 0).

    Equal blocks pair up within their bucket. Blocks that differ by a non-zero mask would find each
    other from both sides, so only the side with the smaller value probes: half the candidates.
    """
    first, counts = bucket_range(own)
    i, j = _expand(rows, first, counts, order)
    keep = i < j
    pairs_i, pairs_j = [i[keep]], [j[keep]]
    probes = own[:, None] ^ masks[None, 1:]
    upward = probes > own[:, None]
    first, counts = bucket_range(probes[upward])
    i, j = _expand(np.broadcast_to(rows[:, None], probes.shape)[upward], first, counts, order)
    pairs_i.append(np.minimum(i, j))
    pairs_j.append(np.maximum(i, j))
    return np.concatenate(pairs_i), np.concatenate(pairs_j)


def _bucket_lookup(values: np.ndarray, order: np.ndarray, width: int):  # type: ignore[no-untyped-def]
    """A function: probe values -> (start in ``order``, count) of the items holding each value.

    Narrow blocks use a dense offsets table (2**width entries); wide ones binary-search the sorted values.
    """
    if width <= 24:
        offsets = np.zeros((1 << width) + 1, dtype=np.int64)
        np.cumsum(np.bincount(values, minlength=1 << width), out=offsets[1:])

        def dense(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            probes = probes.astype(np.intp, copy=False)  # 16-bit block values would wrap at + 1
            first = offsets[probes]
            return first, offsets[probes + 1] - first

        return dense
    ordered = values[order]

    def lookup(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.searchsorted(ordered, probes, side="left")
        return first, np.searchsorted(ordered, probes, side="right") - first

    return lookup


def _expand(rows: np.ndarray, first: np.ndarray, counts: np.ndarray, order: np.ndarray):  # type: ignore[no-untyped-def]
    """For each probe, pair its row with every entry of its bucket (a CSR expansion)."""
    has = counts > 0
    rows, first, counts = rows[has], first[has], counts[has]
    total = int(counts.sum())
    if total == 0:
        return _empty()
    ends = np.cumsum(counts)
    positions = np.arange(total) - np.repeat(ends - counts, counts) + np.repeat(first, counts)
    return np.repeat(rows, counts), order[positions]


def _brute_force(codes: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(codes)
    found_i, found_j = [], []
    rows_per_step = max(1, _CHUNK // n)
    for start in range(0, n, rows_per_step):
        stop = min(n, start + rows_per_step)
        distance = popcount(codes[start:stop, None] ^ codes[None, start:])
        i, j = np.nonzero(distance <= t)
        i += start
        j += start
        keep = i < j
        found_i.append(i[keep])
        found_j.append(j[keep])
    return np.concatenate(found_i), np.concatenate(found_j)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


def hamming_nearest(codes: np.ndarray, query: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes nearest to ``query`` (indices, distances), nearest first, and every code as near
    as the k-th (ties are not cut at random: the caller orders them): one linear pass."""
    distance = popcount(codes ^ np.uint64(query)).astype(np.int64)
    k = min(k, len(codes))
    if k == 0:
        return _empty()
    kth = distance[np.argpartition(distance, k - 1)[k - 1]]
    nearest = np.flatnonzero(distance <= kth)
    nearest = nearest[np.lexsort((nearest, distance[nearest]))][: k + NEAREST_TIES]
    return nearest, distance[nearest]


#: Codes as near as the k-th that :func:`hamming_nearest` gives beyond k, at most (a library of blank
#: pictures has thousands at one distance).
NEAREST_TIES = 64


class CodeIndex:
    """Multi-index tables over a sequence of distinct codes, searched two ways: for positions of the
    sequence, the *earlier* positions within ``max_distance`` bits (what each new code of a catalogue
    is paired with, ``catalog.search.pairs``); and for outside codes, every position within the distance. The
    tables are built once (or restored from ``orders``, the per-block sort orders a saved index kept;
    ``blocks`` fixes their number instead of the cost model's choice for a self-join);
    each step of a search is split by the candidates it expands to, so memory stays bounded however the
    codes crowd together."""

    def __init__(
        self,
        codes: np.ndarray,
        max_distance: int,
        orders: list[np.ndarray] | None = None,
        blocks: int | None = None,
    ):
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.t = max_distance
        n = len(self.codes)
        self.blocks = (blocks or choose_blocks(max(n, 2), max_distance)) if n else None
        if orders is not None and (self.blocks is None or len(orders) != self.blocks):
            orders = None
        self.tables = []
        if self.blocks is not None:
            self.bounds = _block_bounds(self.blocks)
            self.radius = max_distance // self.blocks
            for k, (low, width) in enumerate(self.bounds):
                values = _block_values(self.codes, low, width)
                order = orders[k] if orders is not None else np.argsort(values, kind="stable")
                lookup = _bucket_lookup(values, order, width)
                self.tables.append((values, order, lookup, _flip_masks(width, self.radius)))

    def orders(self) -> list[np.ndarray]:
        """What a saved index keeps to be restored without sorting again."""
        return [order for _, order, _, _ in self.tables]

    def earlier(self, start: int, stop: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(query positions, earlier positions, distances) for the queries ``start <= q < stop``, in
        parts of bounded size; each pair once."""
        if stop <= start or self.t < 0:
            return
        if self.blocks is None:
            for q, p, d in self._brute(self.codes[start:stop], stop):
                q += start
                keep = p < q
                yield q[keep], p[keep], d[keep]
            return
        positions = np.arange(start, stop)
        for q, p, d in self._search(self.codes[start:stop], [v[start:stop] for v, *_ in self.tables]):
            q = positions[q]
            keep = p < q
            if keep.any():
                yield q[keep], p[keep], d[keep]

    def near(self, queries: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(query numbers, positions, distances) of every position within the distance of each of the
        outside codes ``queries``; each pair once."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if not len(queries) or not len(self.codes) or self.t < 0:
            return
        if self.blocks is None:
            yield from self._brute(queries, len(self.codes))
            return
        values = [_block_values(queries, low, width) for low, width in self.bounds]
        yield from self._search(queries, values)

    def _search(
        self, queries: np.ndarray, query_values: list[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for k, (_, order, lookup, masks) in enumerate(self.tables):
            own_values = query_values[k]
            rows_per_step = max(1, _CHUNK // len(masks))
            for first in range(0, len(queries), rows_per_step):
                chunk = np.arange(first, min(len(queries), first + rows_per_step))
                probes = own_values[chunk][:, None] ^ masks[None, :]
                _, counts = lookup(probes.ravel())
                total = np.cumsum(counts.reshape(probes.shape).sum(axis=1))
                for rows in _split(chunk, total):
                    own = own_values[rows][:, None] ^ masks[None, :]
                    begin, counts = lookup(own.ravel())
                    q, p = _expand(np.repeat(rows, len(masks)), begin, counts, order)
                    diff = queries[q] ^ self.codes[p]
                    distance = popcount(diff)
                    keep = distance <= self.t
                    for earlier in range(k):  # reported by the first block within the radius only
                        e_low, e_width = self.bounds[earlier]
                        keep &= popcount(_block_values(diff, e_low, e_width)) > self.radius
                    if keep.any():
                        yield q[keep], p[keep], distance[keep].astype(np.uint8)

    def _brute(self, queries: np.ndarray, stop: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Queries against positions before ``stop``, every pair within the distance."""
        rows_per_step = max(1, _CHUNK // max(stop, 1))
        for first in range(0, len(queries), rows_per_step):
            last = min(len(queries), first + rows_per_step)
            distance = popcount(queries[first:last, None] ^ self.codes[None, :stop])
            q, p = np.nonzero(distance <= self.t)
            if len(q):
                yield q + first, p, distance[q, p].astype(np.uint8)


def _block_values(codes: np.ndarray, low: int, width: int) -> np.ndarray:
    """Bits ``low`` .. ``low + width`` of each code, as numbers. A block of 16 bits on a 16-bit boundary
    is a strided view of the codes (no arithmetic, no copy: a saved index of a million codes is ready
    at once); any other as int64."""
    if width == 16 and low % 16 == 0 and codes.ndim == 1 and codes.dtype == np.uint64:
        words = np.ascontiguousarray(codes).view(np.uint16)
        return words[(low // 16 if sys.byteorder == "little" else 3 - low // 16) :: 4]
    return ((codes >> np.uint64(low)) & np.uint64((1 << width) - 1)).astype(np.int64)


def _split(rows: np.ndarray, total: np.ndarray) -> Iterator[np.ndarray]:
    """``rows`` in consecutive parts whose candidates (cumulative ``total``) stay near _CHUNK each."""
    if not len(total) or total[-1] <= _CHUNK:
        yield rows
        return
    cuts = np.searchsorted(total, np.arange(_CHUNK, total[-1], _CHUNK), side="right")
    begin = 0
    for cut in [*np.unique(cuts).tolist(), len(rows)]:
        end = max(cut, begin + 1)
        if begin < len(rows):
            yield rows[begin:end]
        begin = end
