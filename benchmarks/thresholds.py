"""Default thresholds from data, for every method: altered copies of the sample photos among distractors.

The set: each of the 60 photos in ../shared/data/photos with its altered copies (benchmarks/
hash_thresholds.py's alterations: re-encoded, resized, brightened, cropped 5 %, bordered, overlaid), plus the
500 UKBench images as distractors, each its own group (four views of one object are not copies). For each
method, over all pairs: precision and recall at its default threshold, and the best recall with at least
99 % pair precision with the threshold that gives it (catalog.evaluation.bench.pair_quality).

    .venv/bin/python benchmarks/thresholds.py [--methods euclidean,cosine,ssim] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from catalog.evaluation.bench import default_methods, pair_quality
from catalog.methods import get_method
from catalog.store import Catalog
from catalog.sync.indexer import index
from hash_thresholds import make_variants


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--methods", default=",".join(default_methods()))
    args = parser.parse_args()
    names = args.methods.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        copies = make_variants(args.data / "photos", Path(tmp) / "variants")
        group_of = {original: Path(original).stem for original, _, _ in copies}
        group_of.update({copy: Path(original).stem for original, copy, _ in copies})
        for n, path in enumerate(sorted((args.data / "ukbench-500").glob("*.jpg"))):
            group_of[str(path)] = f"ukbench-{n}"
        paths = sorted(group_of)
        with Catalog.open(f"sqlite:///{tmp}/t.db") as catalog:
            index(
                catalog,
                [str(args.data / "photos"), str(Path(tmp) / "variants"), str(args.data / "ukbench-500")],
                names,
            )
            ids_of = {p: i for i, p in catalog.paths().items()}
            ids = [ids_of[p] for p in paths]
            groups = np.asarray([group_of[p] for p in paths])
            same = groups[:, None] == groups[None, :]
            positives = (int(same.sum()) - len(paths)) // 2
            pairs = len(paths) * (len(paths) - 1) // 2
            print(f"{len(paths)} images, {positives} copy pairs among {pairs} pairs\n")
            print("| method | threshold | precision % | recall % | recall@P99 % | threshold@P99 | seconds |")
            print("|---|---|---|---|---|---|---|")
            for name in names:
                method = get_method(name)
                started = time.perf_counter()
                values = catalog.signature_values(method.signature_name, ids)
                precision, recall, best, threshold = pair_quality(method, values, groups)
                seconds = time.perf_counter() - started
                print(
                    f"| {name} | {method.default_threshold:g} | {precision} | {recall:.2f} | {best:.2f} | "
                    f"{threshold:.4g} | {seconds:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
