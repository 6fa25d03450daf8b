"""Readers and the writer sharing the HNSW index files: ``catalog watch`` adds images to a fresh catalogue
while 4 ``catalog dupes --method cnn`` processes run at once, round after round.

After each round the script checks every reader's exit code and output, and loads the saved index the
way a reader does (metadata, then the generation it names, with hnswlib), comparing its ids with the
catalogue's. Usage:

    .venv/bin/python benchmarks/concurrent_readers.py [--rounds 20] [--readers 4] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATALOG = [sys.executable, "-P", "-m", "catalog"]


def saved_index(db: Path) -> tuple[list[int], str]:
    """(ids of the saved cnn index, problem or ''), read as a reader reads it."""
    import hnswlib

    meta_path = db.with_name(db.name + ".cnn.json")
    for _ in range(5):
        try:
            meta = json.loads(meta_path.read_text())
            ids = np.load(meta_path.with_name(meta["files"]["ids"]))
            index = hnswlib.Index(space="cosine", dim=int(meta["dim"]))
            index.load_index(
                str(meta_path.with_name(meta["files"]["hnsw"])), max_elements=int(meta["capacity"])
            )
            if len(ids) != meta["count"] or index.get_current_count() < len(ids):
                return [], "counts disagree"
            return sorted(ids.tolist()), ""
        except FileNotFoundError:
            continue  # a newer generation replaced it between two reads: read again
        except Exception as exc:  # noqa: BLE001 - any failure to load is what this script counts
            return [], f"{type(exc).__name__}: {exc}"
    return [], "files kept vanishing"


def catalogue_ids(db: Path) -> list[int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return [r[0] for r in conn.execute("SELECT image_id FROM signatures WHERE method = 'cnn' ORDER BY 1")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=10, help="images the writer adds each round")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    sources = sorted((args.data / "ukbench-500").glob("*.jpg"))
    with tempfile.TemporaryDirectory(prefix="catalog-readers-") as tmp:
        root, db = Path(tmp) / "pics", Path(tmp) / "c.db"
        root.mkdir()
        for path in sources[:100]:
            shutil.copyfile(path, root / path.name)
        log = Path(tmp) / "watch.log"
        with open(log, "w") as handle:
            watch = subprocess.Popen(
                [*CATALOG, "--db", str(db), "watch", str(root), "--methods", "cnn", "--settle", "0.2"],
                stderr=handle,
                start_new_session=True,
            )
        deadline = time.monotonic() + 300
        while "reconciliation" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        reader_runs = reader_errors = load_failures = 0
        problems: list[str] = []
        next_source = 100
        started = time.monotonic()
        for round_ in range(1, args.rounds + 1):
            readers = [
                subprocess.Popen(
                    [*CATALOG, "--db", str(db), "dupes", "--method", "cnn"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(args.readers)
            ]
            for path in sources[next_source : next_source + args.per_round]:  # the writer's work meanwhile
                shutil.copyfile(path, root / path.name)
            next_source += args.per_round
            for reader in readers:
                out, err = reader.communicate(timeout=600)
                reader_runs += 1
                if reader.returncode != 0 or "images)" not in out:
                    reader_errors += 1
                    problems.append(f"round {round_}: exit {reader.returncode}: {err.strip()[-200:]}")
            ids, problem = saved_index(db)
            if problem:
                load_failures += 1
                problems.append(f"round {round_}: saved index: {problem}")
            elif not set(ids) <= set(catalogue_ids(db)):
                load_failures += 1
                problems.append(f"round {round_}: saved index holds ids the catalogue does not")
            print(f"round {round_}: {len(ids)} vectors in the saved index", file=sys.stderr)
        seconds = time.monotonic() - started
        os.killpg(watch.pid, signal.SIGTERM)
        watch_exit = watch.wait(60)
        watch_errors = sum("Traceback" in line or " error " in line for line in log.read_text().splitlines())
        leftovers = sorted(p.name for p in Path(tmp).glob("c.db.cnn.*"))
    print(f"\n{args.rounds} rounds of {args.readers} `dupes --method cnn` at once while `watch` adds "
          f"{args.per_round} images a round ({seconds:.0f} s)\n")  # fmt: skip
    header = ["reader runs", "reader errors", "saved index failed to load", "watch exit", "watch errors"]
    print("| " + " | ".join([*header, "index files left"]) + " |")
    print("|---" * (len(header) + 1) + "|")
    row = [reader_runs, reader_errors, f"{load_failures} of {args.rounds}", watch_exit, watch_errors]
    print("| " + " | ".join(str(v) for v in [*row, ", ".join(leftovers)]) + " |")
    for problem in problems:
        print(f"- {problem}")


if __name__ == "__main__":
    main()
