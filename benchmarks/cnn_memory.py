"""Where `dupes --method cnn` spends memory: RSS after each stage (index built, loaded, all kNN queries,
grouping) in one process, then whole `dupes` commands (seconds and peak RSS by /usr/bin/time), with
and without the turned features (--transforms, the cnn default): first searching the index, then
reading the pairs the first `catalog index` stores.

The vectors are random convex combinations of 3 real features (the sample images'), view by view: the
upright features mixed like the turned ones.

    .venv/bin/python benchmarks/cnn_memory.py 100000
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from catalog.grouping.reference import find_groups  # noqa: E402
from catalog.methods import (
    as_matrix,  # noqa: E402
    get_method,  # noqa: E402
)
from catalog.methods.cnn import VIEWS  # noqa: E402
from catalog.search.vectors import VectorIndex  # noqa: E402
from catalog.store import Catalog  # noqa: E402
from catalog.sync.indexer import index  # noqa: E402
from cnn import synthetic  # noqa: E402
from common import fill_catalogue, run_catalog  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def memory(label: str) -> None:
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmHWM", "VmRSS")):
                values[line.split(":")[0]] = int(line.split()[1]) // 1024
    print(f"| {label} | {values['VmRSS']} | {values['VmHWM']} |", flush=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        with Catalog.open(f"sqlite:///{tmp}/real.db") as catalog:
            index(catalog, [str(DATA / "ukbench-500"), str(DATA / "fruits360-96")], methods=["cnn"])
            real = as_matrix(catalog.signatures("cnn")[1])
            vectors = synthetic(real, n)
        views = vectors.reshape(n, VIEWS, -1)
        views /= np.linalg.norm(views, axis=2, keepdims=True)  # each view a unit vector, as stored
        url = f"sqlite:///{tmp}/scale.db"
        fill_catalogue(url, "cnn", [v.astype(np.float16).tobytes() for v in vectors])
        del vectors
        gc.collect()
        print(f"{n:,} vectors; in one process (the peak column includes filling the test catalogue)\n")
        print("| stage | RSS MB | peak MB |")
        print("|---|---|---|")
        with Catalog.open(url) as catalog:
            memory("catalogue open")
            VectorIndex(catalog, get_method("cnn")).sync()
            memory("index built")
            vectors_index = VectorIndex(catalog, get_method("cnn")).sync()
            memory("index loaded (a second copy)")
            for _ in vectors_index.neighbour_chunks(16):
                pass
            memory("all kNN queries")
            groups = find_groups(catalog, "cnn").groups
            memory(f"find_groups ({len(groups)} groups)")
        print("\n| whole `catalog dupes --method cnn -f json` | seconds | peak RSS MB | groups |")
        print("|---|---|---|---|")
        dupes(tmp, "searching the index")
        # The catalogue was filled without `catalog index`: its first index stores every image's pairs.
        os.mkdir(f"{tmp}/nothing")
        seconds, peak, _ = run_catalog("--db", f"{tmp}/scale.db", "index", f"{tmp}/nothing")
        print(f"| (first `catalog index`: stores the pairs of every image) | {seconds:.1f} | {peak:.0f} | |")
        dupes(tmp, "stored pairs")


def dupes(tmp: str, how: str) -> None:
    for extra in ([], ["--no-transforms"], ["-t", "0.8"], ["-t", "0.8", "--no-transforms"]):
        seconds, peak, out = run_catalog(
            "--db", f"{tmp}/scale.db", "dupes", "-m", "cnn", "-f", "json", *extra
        )
        label = f"{' '.join(extra) or 'default (--transforms)'}, {how}"
        print(f"| {label} | {seconds:.1f} | {peak:.0f} | {len(json.loads(out)['groups']):,} |", flush=True)


if __name__ == "__main__":
    main()
