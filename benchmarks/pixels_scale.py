"""`dupes` and `query` with the pixel methods (euclidean, cosine, ssim) on large catalogues.

Signatures: blends of three real thumbnails (the sample photos, fruits360-96 and ukbench-500, indexed
first) plus noise, so their distances look like real ones. For each method:

- ``dupes`` as a whole process: the first run builds the HNSW index, the second loads it (seconds,
  peak RSS);
- ``query`` in-library: ms per query (p50, p95) over 50 real images;
- the peer, in the same run, on the first ``--exact`` signatures: every pair scored by a vectorised
  brute-force scan (matrix products for euclidean and cosine, the vectorised SSIM). Reported: the
  share of its matching pairs that ``dupes`` also joins (pair recall) and the time ratio.

    .venv/bin/python benchmarks/pixels_scale.py [--n 100000] [--exact 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from catalog.grouping.reference import find_groups  # noqa: E402
from catalog.methods import get_method  # noqa: E402
from catalog.search.query import nearest  # noqa: E402
from catalog.store import Catalog  # noqa: E402
from catalog.sync.indexer import index  # noqa: E402
from common import fill_catalogue, run_catalog  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = ["euclidean", "cosine", "ssim"]


def synthetic(real: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(real), size=(n, 3))
    weights = rng.dirichlet([0.3, 0.3, 0.3], size=n)  # mostly one image, a little of two others
    blends = np.einsum("nk,nkd->nd", weights, real[picks].astype(np.float64))
    blends += rng.normal(0, 4.0, size=blends.shape)
    return np.clip(blends + 0.5, 0, 255).astype(np.uint8)


def brute_force_pairs(method_name: str, values: list[bytes]) -> set[tuple[int, int]]:
    """Every pair i < j (positions) that matches at the default threshold, by a full scan."""
    method = get_method(method_name)
    pairs: set[tuple[int, int]] = set()
    n = len(values)
    if method_name == "ssim":
        for i in range(n - 1):
            scores = method.score_pairs([values[i]] * (n - i - 1), values[i + 1 :])
            pairs.update(
                (i, i + 1 + int(j)) for j in np.nonzero(method.is_match(scores, method.default_threshold))[0]
            )
        return pairs
    pixels = method.index_vectors(values).astype(np.float64)  # type: ignore[attr-defined]
    squares = np.einsum("ij,ij->i", pixels, pixels)
    for start in range(0, n, 2000):
        block = pixels[start : start + 2000]
        products = block @ pixels.T
        if method_name == "euclidean":
            scores = np.sqrt(
                np.maximum(squares[start : start + 2000, None] + squares[None] - 2 * products, 0)
            )
        else:
            scores = products
        rows, cols = np.nonzero(method.is_match(scores, method.default_threshold))
        rows += start
        keep = rows < cols
        pairs.update(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
    return pairs


def joined_pairs(url: str, method: str) -> set[tuple[int, int]]:
    """Pairs (positions = image id - 1) that dupes puts in one group."""
    with Catalog.open(url) as catalog:
        grouping = find_groups(catalog, method)
    pairs = set()
    for group in grouping.groups:
        members = sorted(int(Path(m.image.path).stem) for m in group)
        pairs.update((a, b) for k, a in enumerate(members) for b in members[k + 1 :])
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--exact", type=int, default=20_000)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    names = args.methods.split(",")
    queries = sorted((DATA / "ukbench-500").glob("*.jpg"))[:50]
    with tempfile.TemporaryDirectory() as tmp:
        with Catalog.open(f"sqlite:///{tmp}/real.db") as catalog:
            index(catalog, [str(DATA / f) for f in ("photos", "fruits360-96", "ukbench-500")], methods=names)
            real = {m: catalog.signatures(m)[1] for m in names}
        print(f"{args.n:,} synthetic signatures per method; brute-force peer on the first {args.exact:,}\n")
        print(
            "| method | dupes 1st run s (builds index) | dupes 2nd run s | peak RSS MB | groups | "
            "query p50 ms | query p95 ms | peer: pairs | dupes pair recall | dupes s / peer s (subset) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            rows = np.frombuffer(b"".join(real[name]), dtype=np.uint8).reshape(len(real[name]), -1)
            values = [row.tobytes() for row in synthetic(rows, args.n)]
            url = f"sqlite:///{tmp}/{name}.db"
            fill_catalogue(url, name, values)
            first, _, _ = run_catalog("--db", url, "dupes", "-m", name, "-f", "json")
            second, peak, out = run_catalog("--db", url, "dupes", "-m", name, "-f", "json")
            groups = len(json.loads(out)["groups"])
            timings = []
            with Catalog.open(url) as catalog:
                nearest(catalog, str(queries[0]), name, k=10)
                for path in queries:
                    started = time.perf_counter()
                    nearest(catalog, str(path), name, k=10)
                    timings.append((time.perf_counter() - started) * 1000)
            subset_url = f"sqlite:///{tmp}/{name}-subset.db"
            fill_catalogue(subset_url, name, values[: args.exact])
            started = time.perf_counter()
            found = joined_pairs(subset_url, name)
            ours = time.perf_counter() - started
            started = time.perf_counter()
            truth = brute_force_pairs(name, values[: args.exact])
            peer = time.perf_counter() - started
            recall = 100.0 * len(truth & found) / len(truth) if truth else 100.0
            print(
                f"| {name} | {first:.1f} | {second:.1f} | {peak:.0f} | {groups} | "
                f"{np.percentile(timings, 50):.1f} | {np.percentile(timings, 95):.1f} | {len(truth)} | "
                f"{recall:.2f} % | {ours:.1f} / {peer:.1f} = {ours / peer:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
