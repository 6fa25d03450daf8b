"""Indexing throughput of the two engines on this machine: local worker processes against a Ray cluster.

The sample photos of ../shared/data (the camera photos, UKBench 500, Fruits-360) are copied to one
folder and indexed with the default methods into a new SQLite catalogue by `catalog index` as a whole
process, once with `--engine local` and once with `--engine ray` (a local Ray cluster on this machine's
cores, started by the run itself, and once against a cluster started beforehand with `ray start`, so its
start-up is not counted). Best of ``--repeat`` runs each; the signatures of both engines are compared.

    .venv/bin/python benchmarks/engines.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog.store import Catalog

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def library(target: Path) -> int:
    count = 0
    for folder in ("photos", "ukbench-500", "fruits360-96"):
        for path in sorted((DATA / folder).iterdir()):
            if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
                shutil.copyfile(path, target / f"{folder}-{path.name}")
                count += 1
    return count


def timed_index(db: Path, folder: Path, *options: str) -> float:
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-P", "-m", "catalog", "--db", str(db), "index", str(folder), *options],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def signatures(db: Path) -> dict[tuple[str, str], bytes]:
    with Catalog.open(f"sqlite:///{db}", create=False) as catalog:
        paths = catalog.paths()
        found = {}
        for method in catalog.methods():
            ids, values = catalog.signatures(method)
            found.update({(paths[i], method): v for i, v in zip(ids, values, strict=True)})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="catalog-engines-"))
    ray_bin = Path(sys.executable).with_name("ray")
    try:
        folder = work / "photos"
        folder.mkdir()
        n = library(folder)
        rows = {}
        rows["local (2 processes)"] = min(timed_index(work / "l.db", folder) for _ in range(args.repeat))
        rows["ray, local cluster started by the run"] = min(
            timed_index(work / "r.db", folder, "--engine", "ray") for _ in range(args.repeat)
        )
        subprocess.run(
            [str(ray_bin), "start", "--head", "--include-dashboard=false"], check=True, capture_output=True
        )
        try:
            rows["ray, cluster already running"] = min(
                timed_index(work / "a.db", folder, "--engine", "ray", "--ray-address", "auto")
                for _ in range(args.repeat)
            )
        finally:
            subprocess.run([str(ray_bin), "stop", "--force"], check=False, capture_output=True)
        same = signatures(work / "l.db") == signatures(work / "r.db") == signatures(work / "a.db")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local = rows["local (2 processes)"]
    print(f"{n} sample photos, default methods, best of {args.repeat}; signatures identical: {same}")
    print("| engine | seconds | images/s | against local |")
    print("|---|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {n / seconds:.0f} | {local / seconds:.2f} |")
    print(json.dumps({"images": n, "same_signatures": same, "seconds": rows}))


if __name__ == "__main__":
    main()
