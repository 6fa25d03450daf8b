"""All-pairs Hamming search at scale: multi-index hashing vs vectorised brute force, and `catalog dupes`
end to end on a catalogue of that many images.

Synthetic 64-bit hashes: uniformly random codes, 10 % of which get a near copy (0-8 bits flipped) and
1 % a byte-identical twin, the way a photo library holds re-encodes and copies.

    .venv/bin/python benchmarks/search.py --sizes 100000 1000000 --thresholds 6 10
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import numpy as np
from sqlalchemy import insert

from catalog.methods import get_method
from catalog.models import Image, Signature
from catalog.search import _brute_force, choose_blocks, hamming_edges
from catalog.store import Catalog


def synthetic_codes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    near, twins = n // 10, n // 100
    base = rng.integers(0, np.iinfo(np.uint64).max, size=n - near - twins, dtype=np.uint64, endpoint=True)
    sources = base[rng.integers(0, len(base), size=near)]
    flips = rng.integers(0, 9, size=near)
    chosen = rng.random((near, 64)).argsort(axis=1) < flips[:, None]
    noise = (chosen.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    codes = np.concatenate([base, sources ^ noise, base[rng.integers(0, len(base), size=twins)]])
    return codes[rng.permutation(n)]


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def fill_catalogue(url: str, codes: np.ndarray) -> None:
    with Catalog.open(url) as catalog:
        catalog.set_method("phash", get_method("phash").version)
        now = datetime(2026, 1, 1)
        with catalog.engine.begin() as conn:
            for start in range(0, len(codes), 50_000):
                chunk = range(start, min(len(codes), start + 50_000))
                conn.execute(
                    insert(Image),
                    [
                        {
                            "id": i + 1,
                            "path": f"/synthetic/{i:07d}.jpg",
                            "size": 1000,
                            "mtime_ns": 0,
                            "content_hash": f"{i:064x}",
                            "width": 8,
                            "height": 8,
                            "format": "JPEG",
                            "indexed_at": now,
                        }
                        for i in chunk
                    ],
                )
                conn.execute(
                    insert(Signature),
                    [
                        {"image_id": i + 1, "method": "phash", "value": int(codes[i]).to_bytes(8, "big")}
                        for i in chunk
                    ],
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--thresholds", type=int, nargs="+", default=[6, 10])
    parser.add_argument("--brute-limit", type=int, default=100_000, help="largest n to brute-force for real")
    args = parser.parse_args()
    print(
        "| hashes | threshold | blocks | MIH s | pairs found | brute force s | brute / MIH | "
        "`catalog dupes` s | dupes RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    brute_rate = None
    for n in args.sizes:
        codes = synthetic_codes(n)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            fill_catalogue(url, codes)
            for t in args.thresholds:
                mih_s, (left, _) = timed(hamming_edges, codes, t)
                unique = np.unique(codes)
                if n <= args.brute_limit:
                    brute_s, (bl, _) = timed(_brute_force, unique, t)
                    brute_rate = brute_s / (len(unique) ** 2)
                    brute = f"{brute_s:.1f}"
                else:
                    brute_s = (brute_rate or 5e-9) * len(unique) ** 2
                    brute = f"~{brute_s:.0f} (extrapolated)"
                start = time.perf_counter()
                run = subprocess.run(
                    [  # peak RSS by /usr/bin/time (a forked child's ru_maxrss starts at this process's)
                        "/usr/bin/time",
                        "-f",
                        "%M",
                        sys.executable,
                        "-m",
                        "catalog",
                        "--db",
                        f"{tmp}/bench.db",
                        "dupes",
                        "-m",
                        "phash",
                        "-t",
                        str(t),
                        "-f",
                        "json",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                dupes_s = time.perf_counter() - start
                rss_mb = int(run.stderr.strip().splitlines()[-1]) / 1024
                blocks = choose_blocks(len(unique), t) or "brute"
                print(
                    f"| {n:,} | {t} | {blocks} | {mih_s:.2f} | {len(left):,} | "
                    f"{brute} | {brute_s / mih_s:.0f}x | {dupes_s:.1f} | {rss_mb:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
