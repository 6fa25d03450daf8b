"""All-pairs Hamming search at scale: multi-index hashing vs vectorised brute force, and `catalog dupes`
end to end on a catalogue of that many images.

Synthetic 64-bit hashes: uniformly random codes, 10 % of which get a near copy (0-8 bits flipped) and
1 % a byte-identical twin, the way a photo library holds re-encodes and copies. Each stored signature
holds 8 codes, as catalog's do (the upright code, then 7 codes of the picture's turns: random here).

    .venv/bin/python benchmarks/search.py --sizes 100000 1000000 --thresholds 6 10
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from catalog.search.bits import _brute_force, choose_blocks, hamming_edges
from common import fill_catalogue, run_catalog


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--thresholds", type=int, nargs="+", default=[6, 10])
    parser.add_argument("--brute-limit", type=int, default=100_000, help="largest n to brute-force for real")
    args = parser.parse_args()
    print(
        "| hashes | threshold | blocks | MIH s | pairs found | brute force s | brute / MIH | "
        "`catalog dupes` s | dupes RSS MB | `dupes --transforms` s | RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    brute_rate = None
    for n in args.sizes:
        codes = synthetic_codes(n)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            turns = np.random.default_rng(1).integers(0, 256, size=(n, 56), dtype=np.uint8)
            fill_catalogue(
                url, "phash", [int(c).to_bytes(8, "big") + turns[k].tobytes() for k, c in enumerate(codes)]
            )
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
                dupes_s, rss_mb, _ = run_catalog(
                    "--db", f"{tmp}/bench.db", "dupes", "-m", "phash", "-t", str(t), "-f", "json"
                )
                turned_s, turned_mb, _ = run_catalog(
                    "--db",
                    f"{tmp}/bench.db",
                    "dupes",
                    "-m",
                    "phash",
                    "-t",
                    str(t),
                    "--transforms",
                    "-f",
                    "json",
                )
                blocks = choose_blocks(len(unique), t) or "brute"
                print(
                    f"| {n:,} | {t} | {blocks} | {mih_s:.2f} | {len(left):,} | "
                    f"{brute} | {brute_s / mih_s:.0f}x | {dupes_s:.1f} | {rss_mb:.0f} | "
                    f"{turned_s:.1f} | {turned_mb:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
