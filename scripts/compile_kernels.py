"""Compile catalog's Numba kernels into their on-disk cache now (``scripts/setup`` runs it), so that
neither the first large ``dupes`` nor every process of the first test run compiles them (a few seconds
each, all at once). The argument types are those the code passes; a kernel called with others later
is compiled then, as without this."""

from __future__ import annotations

import time

from numba import types

from catalog.grouping import kernels as grouping
from catalog.search import kernels as search


def main() -> None:
    i64, f64, boolean = types.int64, types.float64, types.boolean
    ints, floats, flags = (types.Array(t, 1, "C") for t in (i64, f64, boolean))
    facts = types.UniTuple(ints, 2)
    wanted = [
        (grouping.first_of, (ints, i64, facts)),
        (grouping.class_bests, (ints, ints, facts)),
        (grouping._collect, (i64, ints, ints, floats, flags, flags, flags, flags, ints, floats, ints, ints)),
        (grouping.reference_groups, (ints, ints, ints, floats, flags, flags, flags, flags, ints, facts)),
        (grouping.neighbours, (i64, ints, ints, floats, boolean)),
        (grouping.components, (i64, ints, ints)),
        (grouping.segment_tiers, (ints, ints)),
        (search.best_per_pair, (i64, ints, ints, floats, boolean)),
        (
            search.stored_class_pairs,
            (
                ints,
                ints,
                ints,
                ints,
                types.Array(types.int32, 1, "C", readonly=True),
                types.Array(types.float32, 1, "C", readonly=True),
                types.Array(types.uint8, 1, "C", readonly=True),
                f64,
                boolean,
                boolean,
            ),
        ),
    ]
    started = time.perf_counter()
    for kernel, signature in wanted:
        kernel.compile(signature)
    print(f"catalog's kernels compiled or found in their cache: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
