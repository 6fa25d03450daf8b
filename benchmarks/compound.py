"""Copies through a chain of edits (``catalog.evaluation.compound``): what ``dupes`` finds of them at each
method's defaults, among near-miss distractors, with recall per edit.

Builds the library from ``../shared/data`` (40 camera photos, each with 10 copies: a messenger's re-encode
alone, or after a crop, filter, caption bar, frame, straightening, screenshot bars, grayscale, quarter
turn or mirror, half of them followed by a second edit; among 500 UKBench views and 120 crops of other
photos), indexes it, and scores `catalog dupes` with default options as pairs (`near_misses.py`'s score).

    .venv/bin/python benchmarks/compound.py [--data ../shared/data] [--keep DIR] [--methods M1,M2]
        [--threshold METHOD=T ...] [--format text|markdown]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from near_misses import DATA, indexed_library, score  # noqa: E402

from catalog.evaluation.compound import EDITS, make_compound_mixture  # noqa: E402
from catalog.grouping.options import Options  # noqa: E402
from catalog.grouping.reference import find_groups  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the library and catalogue here")
    parser.add_argument("--methods", default="ahash,phash,dhash,whash,cnn")
    parser.add_argument(
        "--threshold", action="append", default=[], metavar="METHOD=T", help="other thresholds"
    )
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    args = parser.parse_args()
    methods = args.methods.split(",")
    thresholds: list[tuple[str, float | None]] = [(m, None) for m in methods]
    for given in args.threshold:
        method, _, value = given.partition("=")
        thresholds.append((method, float(value)))
    roles = list(EDITS)
    make = partial(make_compound_mixture, args.data)
    with indexed_library(args.keep, "compound", make, methods) as (_, truth, catalog):
        head = ["method", "threshold", "precision", "recall", "mixed groups", *roles]
        if args.format == "markdown":
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
        else:
            print("  ".join(head))
        for method, threshold in thresholds:
            found = find_groups(catalog, method, threshold, Options())
            result = score([[m.image.path for m in g] for g in found.groups], truth, roles)
            per = result["per_alteration"]
            assert isinstance(per, dict)
            cells = [
                method,
                f"{found.threshold:g}{', verified' if found.verified else ''}",
                f"{result['precision']:.3f}",
                f"{result['recall']:.3f}",
                str(result["mixed"]),
                *(f"{per[r]:.2f}" for r in roles),
            ]
            print(
                ("| " + " | ".join(cells) + " |") if args.format == "markdown" else "  ".join(cells),
                flush=True,
            )


if __name__ == "__main__":
    main()
