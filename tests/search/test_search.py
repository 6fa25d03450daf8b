"""Hamming search: multi-index hashing agrees with brute force, identical codes collapse, nearest."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.grouping.table import components
from catalog.search.bits import (
    _ball_size,
    _brute_force,
    _multi_index,
    choose_blocks,
    codes_from_bytes,
    hamming_edges,
    hamming_nearest,
    hamming_pairs,
)


def planted(n: int, max_flips: int, seed: int = 0) -> np.ndarray:
    """n/2 random codes and a copy of each with 0..max_flips distinct bits flipped."""
    rng = np.random.default_rng(seed)
    half = n // 2
    base = rng.integers(0, np.iinfo(np.uint64).max, size=half, dtype=np.uint64, endpoint=True)
    flips = rng.integers(0, max_flips + 1, size=half)
    chosen = rng.random((half, 64)).argsort(axis=1) < flips[:, None]
    noise = (chosen.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    return np.unique(np.concatenate([base, base ^ noise]))


def as_set(i: np.ndarray, j: np.ndarray) -> set[tuple[int, int]]:
    pairs = list(zip(i.tolist(), j.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)), "a pair was reported twice"
    return set(pairs)


#: Every (threshold, blocks) the cost model can pick: more than 5,000 probes per block it never does.
CASES = [
    (threshold, blocks)
    for threshold in (0, 1, 3, 6, 8, 10, 13)
    for blocks in (2, 3, 4, 5, 8)
    if _ball_size(64 // blocks, threshold // blocks) <= 5000
]


@pytest.mark.parametrize(("threshold", "blocks"), CASES)
def test_multi_index_matches_brute_force(threshold, blocks):
    codes = planted(3000, max_flips=14, seed=threshold)
    expected = as_set(*_brute_force(codes, threshold))
    assert as_set(*_multi_index(codes, threshold, blocks)) == expected
    if threshold >= 3:
        assert expected  # the planted pairs make the check meaningful


def test_cost_model_prefers_multi_index_at_scale():
    assert choose_blocks(100, 10) is None  # brute force for tiny inputs
    assert choose_blocks(100_000, 8) is not None
    assert choose_blocks(1_000_000, 10) is not None


def test_identical_codes_become_a_star_not_all_pairs():
    codes = np.array([5] * 1000 + [5 ^ 0b111, 2**64 - 1], dtype=np.uint64)
    left, right = hamming_edges(codes, 3)
    assert len(left) == 1000  # 999 star edges + one edge to the 3-bit neighbour
    labels = components(len(codes), left, right)
    assert len(set(labels[:1001].tolist())) == 1 and labels[1001] != labels[0]


def test_codes_round_trip_and_nearest():
    values = [int(v).to_bytes(8, "big") for v in (0, 0b1, 0b1111, 2**63)]
    codes = codes_from_bytes(values)
    assert codes.tolist() == [0, 1, 15, 2**63]
    order, distance = hamming_nearest(codes, 0b11, 3)
    assert order.tolist() == [1, 0, 2] and distance.tolist() == [1, 2, 2]
    assert hamming_pairs(codes, 0)[0].size == 0


def test_16_bit_blocks_at_their_highest_values_find_every_pair():
    """Four 16-bit blocks are read as views of the codes (uint16): a block of 0xFFFF must not wrap
    when its bucket's end is looked up. Codes with every block near its top, searched both ways."""
    from catalog.search.bits import CodeIndex

    rng = np.random.default_rng(7)
    top = np.uint64(2**64 - 1)
    flips = rng.integers(0, 64, size=(400, 3))
    noise = (np.uint64(1) << flips.astype(np.uint64)).astype(np.uint64)
    near_top = top ^ np.bitwise_or.reduce(noise, axis=1)
    codes = np.unique(np.concatenate([[top, top ^ np.uint64(1)], near_top, planted(600, 8, seed=3)]))
    for threshold in (4, 6, 8):
        expected = as_set(*_brute_force(codes, threshold))
        assert (top_pairs := {p for p in expected if codes[p[1]] >= np.uint64(2**63)})
        assert as_set(*_multi_index(codes, threshold, 4)) == expected
        index = CodeIndex(codes, threshold, blocks=4)
        earlier = {
            (int(p), int(q)) for q, p, _ in index.earlier(0, len(codes)) for q, p in zip(q, p, strict=True)
        }
        assert earlier == expected and top_pairs <= earlier
        found = {
            (min(int(q), int(p)), max(int(q), int(p)))
            for q, p, _ in index.near(codes)
            for q, p in zip(q, p, strict=True)
            if q != p
        }
        assert found == expected
