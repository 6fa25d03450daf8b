"""CNN indexing throughput, and the HNSW index at 100 k vectors of a real feature distribution.

1. `catalog index --methods cnn` on ../shared/data/photos: the whole process (torch import and model
   load included), and the pipeline alone (decode + model + store, model already loaded).
2. Real features of every sample image (photos, fruits360, ukbench) are mixed into 100 k vectors: each
   one a random convex combination of three real features plus a little noise, renormalised. HNSW build
   time, recall@10 against exact search (a matrix product) for 1,000 queries at several `ef`, and
   single-query latency; then `catalog dupes --method cnn` on a catalogue holding those vectors, and
   memory (RSS) at 100 k, projected to 1 M.

    .venv/bin/python benchmarks/cnn.py [--vectors 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from catalog.methods import as_matrix, get_method
from catalog.search.vectors import EF_CONSTRUCTION, M
from catalog.store import Catalog
from catalog.sync.indexer import index
from common import fill_catalogue, run_catalog

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def throughput(tmp: Path) -> np.ndarray:
    photos = DATA / "photos"
    count = len(list(photos.iterdir()))
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "catalog",
            "--db",
            str(tmp / "whole.db"),
            "index",
            str(photos),
            "--methods",
            "cnn",
        ],
        check=True,
        capture_output=True,
    )
    whole = time.perf_counter() - started
    get_method("cnn").preload()
    with Catalog.open(f"sqlite:///{tmp / 'pipeline.db'}") as catalog:
        started = time.perf_counter()
        index(catalog, [str(photos)], methods=["cnn"])
        pipeline = time.perf_counter() - started
        index(catalog, [str(DATA / "fruits360-96"), str(DATA / "ukbench-500")])
        ids, values = catalog.signatures("cnn")
    print(f"\n{count} photos, `catalog index --methods cnn`\n")
    print("| run | seconds | images/s |")
    print("|---|---|---|")
    print(f"| whole process (start-up, model load included) | {whole:.2f} | {count / whole:.1f} |")
    print(f"| pipeline: decode + model + store (model loaded) | {pipeline:.2f} | {count / pipeline:.1f} |")
    return as_matrix(values)


def synthetic(real: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(real), size=(n, 3))
    weights = rng.dirichlet([1.0, 1.0, 1.0], size=n).astype(np.float32)
    vectors = np.einsum("nk,nkd->nd", weights, real[picks])
    vectors += rng.normal(0, 0.01, size=vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float16).astype(np.float32)  # as stored


def mean_cosine(vectors: np.ndarray, pairs: int = 20_000, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(vectors), size=(2, pairs))
    keep = a != b
    return float(np.mean(np.sum(vectors[a[keep]] * vectors[b[keep]], axis=1)))


def hnsw_table(vectors: np.ndarray) -> None:
    import hnswlib

    n, dim = vectors.shape
    index_ = hnswlib.Index(space="cosine", dim=dim)
    index_.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION)
    started = time.perf_counter()
    index_.add_items(vectors, np.arange(n), num_threads=os.cpu_count() or 1)
    build = time.perf_counter() - started
    with tempfile.NamedTemporaryFile() as saved:
        index_.save_index(saved.name)
        size_mb = os.path.getsize(saved.name) / 1e6
    rng = np.random.default_rng(2)
    queries = vectors[rng.choice(n, 1000, replace=False)]
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    print(
        f"\nHNSW over {n:,} vectors ({dim} dims), M={M}, ef_construction={EF_CONSTRUCTION}: "
        f"built in {build:.1f} s on 2 threads; index {size_mb:.0f} MB "
        f"(~{size_mb * 1e6 / n * 1e6 / 1e9:.1f} GB at 1 M vectors)\n"
    )
    print("| ef | recall@10 | query p50 ms | query p95 ms |")
    print("|---|---|---|---|")
    for ef in (32, 64, 96, 128, 200):
        index_.set_ef(ef)
        labels, _ = index_.knn_query(queries, k=10, num_threads=2)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, exact, strict=True)])
        latencies = []
        for q in queries[:300]:
            started = time.perf_counter()
            index_.knn_query(q[None], k=10, num_threads=1)
            latencies.append((time.perf_counter() - started) * 1000)
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"| {ef} | {recall:.4f} | {p50:.2f} | {p95:.2f} |", flush=True)


def dupes_at_scale(vectors: np.ndarray, tmp: Path) -> None:
    fill_catalogue(f"sqlite:///{tmp / 'scale.db'}", "cnn", [v.astype(np.float16).tobytes() for v in vectors])
    print(f"\n`catalog dupes --method cnn` on a catalogue of {len(vectors):,} images\n")
    print("| run | seconds | peak RSS MB | groups | largest group |")
    print("|---|---|---|---|---|")
    for label in ("first (builds the HNSW index from SQLite)", "second (loads the saved index)"):
        seconds, rss, output = run_catalog("--db", str(tmp / "scale.db"), "dupes", "-m", "cnn", "-f", "json")
        sizes = [len(g["images"]) for g in json.loads(output)["groups"]]
        largest = max(sizes, default=0)
        print(f"| {label} | {seconds:.1f} | {rss:.0f} | {len(sizes):,} | {largest:,} |", flush=True)
    size = sum(p.stat().st_size for p in tmp.glob("scale.db*"))
    print(f"\nfiles: {size / 1e6:.0f} MB for {len(vectors):,} images (SQLite with float16 features + index)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        real = throughput(Path(tmp))
        vectors = synthetic(real, args.vectors)
        print(
            f"\n{len(real)} real features; mean cosine of random pairs: real {mean_cosine(real):.3f}, "
            f"mixed {mean_cosine(vectors):.3f}"
        )
        hnsw_table(vectors)
        dupes_at_scale(vectors, Path(tmp))


if __name__ == "__main__":
    main()
