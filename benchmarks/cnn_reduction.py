"""Can the CNN features be made smaller for a million-image index without losing copies?

The mixture library (``catalog.evaluation.variants.make_mixture``: families of altered copies among
near-misses,
from ../shared/data) is indexed with ``--methods cnn``. Every two files of one family are a true pair;
every other pair is false. For the stored 1280-dimension features (float16 in the catalogue, float32 in
the HNSW index) and for PCA projections to fewer dimensions (learned on the library's own features,
re-normalised), the pairs at the default threshold are scored exactly (all pairs, cosine):

- recall (true pairs at or above the threshold / true pairs) and precision, at the default 0.94;
- recall at the threshold that gives each projection the precision the full features have there;
- the size of an hnswlib index of ``--index-size`` vectors of each width (built, saved, file size), and
  the memory a million would take.

    .venv/bin/python benchmarks/cnn_reduction.py [--dims 512 256 128] [--index-size 20000]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from catalog.evaluation.variants import make_mixture
from catalog.methods import get_method
from catalog.methods.cnn import upright
from catalog.store import Catalog
from catalog.sync.indexer import index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def features(work: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(paths, family number of each, upright features) of the mixture library."""
    library = work / "mixture"
    make_mixture(DATA, library, transforms=False)
    with open(library / "truth.csv") as handle:
        family = {str(library / row["file"]): row["family"] for row in csv.DictReader(handle)}
    with Catalog.open(f"sqlite:///{work / 'c.db'}") as catalog:
        index(catalog, [str(library)], methods=["cnn"])
        paths = catalog.paths()
        ids, values = catalog.signatures("cnn")
    names = [paths[i] for i in ids]
    known = [k for k, p in enumerate(names) if p in family]
    codes = {f: n for n, f in enumerate(sorted(set(family.values())))}
    vectors = upright([values[k] for k in known])
    return [names[k] for k in known], np.asarray([codes[family[names[k]]] for k in known]), vectors


def pair_scores(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    return similarity[np.triu_indices(len(unit), 1)]


def pca(vectors: np.ndarray, dims: int) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, basis = np.linalg.svd(centred, full_matrices=False)
    return centred @ basis[:dims].T


def index_megabytes(dims: int, n: int) -> float:
    import hnswlib

    rng = np.random.default_rng(1)
    data = rng.standard_normal((n, dims)).astype(np.float32)
    built = hnswlib.Index(space="cosine", dim=dims)
    built.init_index(max_elements=n, M=16, ef_construction=200)
    built.add_items(data, np.arange(n), num_threads=os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "i.hnsw")
        built.save_index(path)
        return os.path.getsize(path) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 256, 128])
    parser.add_argument("--index-size", type=int, default=20_000)
    args = parser.parse_args()
    threshold = get_method("cnn").default_threshold
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        _, family, vectors = features(Path(folder))
        print(
            f"{len(family)} files indexed with cnn in {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
    rows, cols = np.triu_indices(len(family), 1)
    true = family[rows] == family[cols]
    full = pair_scores(vectors)
    full_recall = float((full[true] >= threshold).mean())
    full_precision = float(true[full >= threshold].mean())
    print(f"{len(family)} files, {int(true.sum())} true pairs, {len(true) - int(true.sum())} false pairs")
    print(f"| features | recall at {threshold} | precision at {threshold} | threshold for the full "
          "features' precision | recall there | index MB per 1,000 | index at 1 M, GB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for dims in [vectors.shape[1], *args.dims]:
        scored = full if dims == vectors.shape[1] else pair_scores(pca(vectors, dims))
        recall = float((scored[true] >= threshold).mean())
        precision = float(true[scored >= threshold].mean())
        # The lowest threshold at which this projection's precision reaches the full features'.
        order = np.argsort(-scored)
        hits = np.cumsum(true[order])
        precisions = hits / np.arange(1, len(order) + 1)
        ok = np.nonzero(precisions >= full_precision)[0]
        cut = ok[-1] if len(ok) else 0
        matched = float(scored[order][cut])
        recall_there = float(hits[cut] / true.sum())
        megabytes = index_megabytes(dims, args.index_size)
        per_thousand = megabytes / args.index_size * 1000
        name = f"{dims} (stored)" if dims == vectors.shape[1] else f"PCA {dims}"
        print(
            f"| {name} | {recall:.4f} | {precision:.4f} | {matched:.3f} | {recall_there:.4f} | "
            f"{per_thousand:.1f} | {per_thousand:.2f} |"
        )
    print(f"full features: recall {full_recall:.4f}, precision {full_precision:.4f}")


if __name__ == "__main__":
    main()
