"""Choose the default `cnn` threshold: groups from `dupes --method cnn` on the photos and their altered
copies (benchmarks/hash_thresholds.py makes them), scored as pairs.

A pair is two images of one family (a photo and its 7 altered copies: 28 pairs per photo); `dupes`
groups imply the pairs it reports (every two images of one group). Recall = true pairs reported / all
true pairs; precision = true pairs reported / pairs reported.

    .venv/bin/python benchmarks/cnn_threshold.py
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from catalog.grouping.reference import find_groups  # noqa: E402
from catalog.store import Catalog  # noqa: E402
from catalog.sync.indexer import index  # noqa: E402
from hash_thresholds import ALTERATIONS, make_variants  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def family_of(path: str) -> str:
    return Path(path).stem


def scores(
    catalog: Catalog, method: str, threshold: float, truth: set[frozenset[str]]
) -> tuple[float, float, int]:
    """(recall, precision, UKBench same-object view pairs reported). Views of one UKBench object are
    different photos: neither copies nor errors, counted apart."""
    reported = set()
    for group in find_groups(catalog, method, threshold).groups:
        reported.update(frozenset(p) for p in itertools.combinations([m.image.path for m in group], 2))
    views = {
        pair
        for pair in reported
        if len({ukbench_object(p) for p in pair} - {None}) == 1
        and all(ukbench_object(p) is not None for p in pair)
    }
    hits = len(reported & truth)
    judged = len(reported) - len(views)
    return hits / len(truth), hits / judged if judged else 1.0, len(views)


def ukbench_object(path: str) -> int | None:
    name = Path(path).name
    return int(name[7:12]) // 4 if name.startswith("ukbench") else None


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_variants(DATA / "photos", Path(tmp) / "variants")
        with Catalog.open(f"sqlite:///{tmp}/t.db") as catalog:
            started = time.perf_counter()
            roots = [str(DATA / "photos"), f"{tmp}/variants", str(DATA / "ukbench-500")]
            index(catalog, roots, methods=["cnn", "phash"])
            print(f"indexed {len(pairs) + 60} images in {time.perf_counter() - started:.1f} s\n")
            families: dict[str, list[str]] = {}
            for path in catalog.paths().values():
                if ukbench_object(path) is None:
                    families.setdefault(family_of(path), []).append(path)
            truth = {
                frozenset(p) for members in families.values() for p in itertools.combinations(members, 2)
            }
            print(
                f"{len(families)} families, {len(truth)} true pairs ({len(ALTERATIONS)} alterations each)\n"
            )
            print("| method | threshold | pair recall | pair precision | UKBench view pairs joined |")
            print("|---|---|---|---|---|")
            runs = [("cnn", t) for t in (0.60, 0.65, 0.70, 0.72, 0.75, 0.78, 0.80, 0.85, 0.90)]
            for method, threshold in [*runs, ("phash", 6), ("phash", 10)]:
                recall, precision, views = scores(catalog, method, threshold, truth)
                print(f"| {method} | {threshold:g} | {recall:.1%} | {precision:.1%} | {views} |", flush=True)


if __name__ == "__main__":
    main()
