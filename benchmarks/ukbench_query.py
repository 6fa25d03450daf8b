"""UKBench P@3 through `catalog query --method cnn`: for every image of ../shared/data/ukbench-500
(125 objects x 4 views), the share of the 3 other views of its object among its top 3 results (itself
excluded). The query path is the real one: the file is decoded and embedded, then searched in the HNSW
index of the catalogue.

    .venv/bin/python benchmarks/ukbench_query.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from catalog.search.query import nearest
from catalog.store import Catalog
from catalog.sync.indexer import index

FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "ukbench-500"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Catalog.open(f"sqlite:///{tmp}/uk.db") as catalog:
        index(catalog, [str(FOLDER)], methods=["cnn"])
        files = sorted(FOLDER.glob("*.jpg"))
        hits, latencies = [], []
        for path in files:
            started = time.perf_counter()
            found = nearest(catalog, str(path), "cnn", k=4)
            latencies.append((time.perf_counter() - started) * 1000)
            others = [Path(im.path) for im, _ in found.results if Path(im.path) != path][:3]
            group = int(path.stem[7:]) // 4
            hits.append(sum(int(p.stem[7:]) // 4 == group for p in others))
        p50, p95 = np.percentile(latencies, [50, 95])
        print(
            f"{len(files)} queries: mean {np.mean(hits):.3f} of the 3 other views in the top 3 "
            f"(P@3 {np.mean(hits) / 3:.2%}); whole query (decode + embed + search) p50 {p50:.0f} ms, "
            f"p95 {p95:.0f} ms"
        )


if __name__ == "__main__":
    main()
