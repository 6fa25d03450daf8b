"""Copies among near-misses: what `dupes` finds per method, alteration and grouping, and at what precision.

Builds the mixture of ``catalog.evaluation.variants.make_mixture`` from ``../shared/data`` (189 families of a
reference and 11 altered copies - resize+JPEG, crop, brightness+contrast, mirror, 90/180/270 degree
turns, mirror+turn, text, border, grayscale - among 375 other views of the UKBench objects, 120 other
shots of 20 camera scenes and 24 Fruits-360 groups of look-alike fruit), indexes it with every method,
and scores `catalog dupes` as pairs: two images of one group are a reported pair; it is right when both
come from one family. Recall per alteration: the share of references whose copy shares its group.
"Mixed" counts groups holding images of two families (two different pictures); "largest excess" is
the largest group's size beyond its reference's family.

    .venv/bin/python benchmarks/near_misses.py [--data ../shared/data] [--keep DIR] [--methods M1,M2]
        [--format text|json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from catalog.evaluation.variants import ALTERATIONS, TRANSFORMS, make_mixture
from catalog.grouping.options import Options
from catalog.grouping.reference import find_groups
from catalog.store import Catalog
from catalog.sync.indexer import index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SWEEPS = {
    "ahash": [0, 1, 2, 3, 4, 5, 6],
    "phash": [2, 4, 6, 8, 10, 12],
    "dhash": [2, 3, 4, 5, 6, 8, 10],
    "whash": [0, 1, 2, 3, 4, 6],
    "cnn": [0.70, 0.75, 0.80, 0.84, 0.88, 0.90, 0.92, 0.94],
}
ROLES = [*ALTERATIONS, *TRANSFORMS]


def load_truth(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "truth.csv") as handle:
        return {str(root / row["file"]): row for row in csv.DictReader(handle)}


def score(
    groups: list[list[str]], truth: dict[str, dict[str, str]], roles: list[str] = ROLES
) -> dict[str, object]:
    family_size = Counter(row["family"] for row in truth.values())
    true_pairs = sum(n * (n - 1) // 2 for n in family_size.values())
    hits = reported = mixed = excess = 0
    group_of: dict[str, int] = {}
    for g, paths in enumerate(groups):
        families = Counter(truth[p]["family"] for p in paths)
        hits += sum(n * (n - 1) // 2 for n in families.values())
        reported += len(paths) * (len(paths) - 1) // 2
        mixed += len(families) > 1
        excess = max(excess, len(paths) - family_size[truth[paths[0]]["family"]])
        for p in paths:
            group_of[p] = g
    reference = {row["family"]: p for p, row in truth.items() if row["role"] == "reference"}
    per_role = {}
    for role in roles:
        copies = [p for p, row in truth.items() if row["role"] == role]
        found = sum(
            1 for p in copies if p in group_of and group_of.get(reference[truth[p]["family"]]) == group_of[p]
        )
        per_role[role] = round(found / len(copies), 3) if copies else None
    return {
        "recall": round(hits / true_pairs, 4),
        "precision": round(hits / reported, 4) if reported else 1.0,
        "groups": len(groups),
        "mixed": mixed,
        "largest_excess": excess,
        "per_alteration": per_role,
    }


@contextmanager
def indexed_library(
    keep: Path | None, name: str, make: Callable[[Path], object], methods: list[str]
) -> Iterator[tuple[Path, dict[str, dict[str, str]], Catalog]]:
    """The library ``name`` (made by ``make`` unless ``keep`` holds it already), indexed with
    ``methods`` into its catalogue beside it: (its folder, its truth, the open catalogue)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or Path(tmp)
        root = work / name
        if not (root / "truth.csv").exists():
            make(root)
        truth = load_truth(root)
        with Catalog.open(f"sqlite:///{work}/{name}.db") as catalog:
            started = time.perf_counter()
            report = index(catalog, [str(root)], methods=methods)
            print(
                f"{len(truth)} files, {report.added} indexed in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
            yield root, truth, catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the mixture and catalogue here")
    parser.add_argument("--methods", default=",".join(SWEEPS))
    parser.add_argument("--groupings", default="reference,components")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args()
    methods = args.methods.split(",")
    rows = []
    make = partial(make_mixture, args.data)
    with indexed_library(args.keep, "mixture", make, methods) as (_, truth, catalog):
        for method in methods:
            for threshold in SWEEPS[method]:
                for grouping, transforms, verify in itertools.product(
                    args.groupings.split(","),
                    (False, True),
                    (False, True) if method == "cnn" else (False,),
                ):
                    started = time.perf_counter()
                    options = Options(grouping=grouping, transforms=transforms, verify=verify)
                    found = find_groups(catalog, method, threshold, options)
                    seconds = time.perf_counter() - started
                    groups = [[m.image.path for m in g] for g in found.groups]
                    row = {
                        "method": method,
                        "threshold": threshold,
                        "grouping": grouping,
                        "transforms": transforms,
                        "verified": verify,
                        "seconds": round(seconds, 3),
                        **score(groups, truth),
                    }
                    rows.append(row)
                    if args.format == "text":
                        print(_line(row), flush=True)
    if args.format == "json":
        print(json.dumps(rows, indent=2))


def _line(row: dict) -> str:  # type: ignore[type-arg]
    per = " ".join(f"{k}={v:.2f}" for k, v in row["per_alteration"].items())
    return (
        f"{row['method']:6s} t={row['threshold']:<5g} {row['grouping']:10s} "
        f"{'T' if row['transforms'] else '-'}{'V' if row['verified'] else '-'} "
        f"R={row['recall']:.3f} P={row['precision']:.4f} "
        f"mixed={row['mixed']} excess={row['largest_excess']} | {per}"
    )


if __name__ == "__main__":
    main()
