"""`dupes --method cnn` among N images, and whether it still finds the altered copies.

1. The mixture library (``catalog.evaluation.variants.make_mixture``: families of altered copies, turned ones
   included, among near-misses, from ../shared/data) is indexed with ``--methods cnn`` (and so ``orb``,
   its verifier) into a small catalogue; a whole ``catalog dupes --method cnn`` there gives today's
   recall of the copies: the share of the true pairs (two files of one family) in one group.
2. A copy of that catalogue gets N more images with synthetic ``cnn`` features (each view a random
   mix of 3 real features plus noise, as ``benchmarks/cnn.py``), written in chunks (20 KB each: a
   million are 20 GB). Its first ``catalog index`` builds the HNSW index and stores every image's pairs.
3. Whole ``catalog dupes --method cnn -f json`` on the large catalogue, twice (the second warm), with
   seconds and peak RSS (/usr/bin/time); the recall of the same families there, and how many synthetic
   images joined a group of the library's files.

    .venv/bin/python benchmarks/cnn_scale.py [--n 1000000] [--work DIR]
    .venv/bin/python benchmarks/cnn_scale.py --again DIR   # step 3 again, on a kept --work DIR
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).parent))
from catalog.evaluation.variants import make_mixture  # noqa: E402
from catalog.methods import as_matrix  # noqa: E402
from catalog.methods.cnn import VIEWS  # noqa: E402
from catalog.store import Catalog  # noqa: E402
from catalog.store.models import Image, Signature  # noqa: E402
from catalog.sync.indexer import index  # noqa: E402
from common import run_catalog, run_catalog_tree  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHUNK = 2_000


def recall(groups: list[dict], family: dict[str, str]) -> tuple[float, int]:  # type: ignore[type-arg]
    """(share of the true pairs found in one group, synthetic images in groups with library files)."""
    sizes: dict[str, int] = {}
    for f in family.values():
        sizes[f] = sizes.get(f, 0) + 1
    true_pairs = sum(k * (k - 1) // 2 for k in sizes.values())
    found, strangers = 0, 0
    for group in groups:
        paths = [m["path"] for m in group["images"]]
        known = [family[p] for p in paths if p in family]
        if known:
            strangers += len(paths) - len(known)
        for a, b in itertools.combinations(known, 2):
            found += a == b
    return found / true_pairs, strangers


def fill(url: str, real: np.ndarray, n: int, seed: int = 0) -> None:
    """``n`` images ``/synthetic/NNNNNNN.jpg`` with synthetic cnn signatures, after the existing ids."""
    rng = np.random.default_rng(seed)
    views = real.reshape(len(real), VIEWS, -1)
    with Catalog.open(url) as catalog, catalog.engine.begin() as conn:
        first = (conn.execute(select(func.max(Image.id))).scalar() or 0) + 1
        for start in range(0, n, CHUNK):
            count = min(CHUNK, n - start)
            picks = rng.integers(0, len(real), size=(count, 3))
            weights = rng.dirichlet([1.0, 1.0, 1.0], size=count).astype(np.float32)
            mixed = np.einsum("nk,nkvd->nvd", weights, views[picks])
            mixed += rng.normal(0, 0.01, size=mixed.shape).astype(np.float32)
            mixed /= np.linalg.norm(mixed, axis=2, keepdims=True)  # each view a unit vector, as stored
            values = mixed.astype(np.float16).reshape(count, -1)
            ids = range(first + start, first + start + count)
            conn.execute(
                insert(Image),
                [
                    {"id": i, "path": f"/synthetic/{i:07d}.jpg", "size": 1000, "mtime_ns": 0,
                     "content_hash": f"{i:064x}", "indexed_at": datetime(2026, 1, 1)}
                    for i in ids
                ],
            )  # fmt: skip
            conn.execute(
                insert(Signature),
                [
                    {"image_id": i, "method": "cnn", "value": v.tobytes()}
                    for i, v in zip(ids, values, strict=True)
                ],
            )
            print(f"  filled {start + count:,}", file=sys.stderr, flush=True)


def dupes(db: Path, family: dict[str, str], label: str) -> None:
    """The answer made, with its recall."""
    asked = ("--db", str(db), "dupes", "--method", "cnn", "-f", "json")
    seconds, peak, tree, out = run_catalog_tree(*asked)
    groups = json.loads(out)["groups"]
    share, strangers = recall(groups, family)
    print(
        f"| {label} | {seconds:.1f} | {peak:.0f} | {tree:.0f} | {len(groups):,} | {share:.4f} "
        f"| {strangers:,} |",
        flush=True,
    )


def _header() -> None:
    print(
        "| `catalog dupes --method cnn -f json` | seconds | peak RSS MB (largest process) "
        "| peak MB (all its processes, PSS) | groups | recall of the copies "
        "| synthetic images in the library's groups |"
    )
    print("|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--work", help="a folder to work in (kept); a temporary one by default")
    parser.add_argument("--again", help="a folder kept by --work: time step 3 again on its catalogues")
    args = parser.parse_args()
    if args.again:
        work = Path(args.again)
        with open(work / "mixture" / "truth.csv") as handle:
            family = {str(work / "mixture" / row["file"]): row["family"] for row in csv.DictReader(handle)}
        _header()
        dupes(work / "small.db", family, "the library alone")
        for label in ("library + the synthetic images", "the same, again"):
            dupes(work / "large.db", family, label)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="catalog-cnn-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        library = work / "mixture"
        make_mixture(DATA, library)
        with open(library / "truth.csv") as handle:
            family = {str(library / row["file"]): row["family"] for row in csv.DictReader(handle)}
        small = work / "small.db"
        with Catalog.open(f"sqlite:///{small}") as catalog:
            index(catalog, [str(library)], methods=["cnn"])
            real = as_matrix(catalog.signatures("cnn")[1])
        print(f"{len(family):,} library files, then {args.n:,} synthetic images\n")
        _header()
        dupes(small, family, "the library alone")
        large = work / "large.db"
        shutil.copyfile(small, large)
        fill(f"sqlite:///{large}", real, args.n)
        (work / "nothing").mkdir(exist_ok=True)
        seconds, peak, _ = run_catalog("--db", str(large), "index", str(work / "nothing"))
        first = "(first `catalog index` of the large catalogue: HNSW index and every pair)"
        print(f"| {first} | {seconds:.1f} | {peak:.0f} | | | | |")
        dupes(large, family, f"library + {args.n:,}")
        dupes(large, family, f"library + {args.n:,}, again (warm)")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
