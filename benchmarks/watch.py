"""`catalog watch` as a user runs it (a separate process), kernel events against polling in the same run.

1. Latency: a file is written and closed in a watched folder; how long until a reader sees it in the
   catalogue with its signatures (what `query` and `copies` read). One file at a time, p50 / p95, with
   the hash methods and with the CNN added.
2. Storm: `cp -r` of a folder of 10,000 small images into the watched folder; seconds until all are
   catalogued, checked for no duplicates and no losses; against `catalog index` of the same folder on a
   new catalogue.
3. Idle CPU: the daemon's CPU time over a quiet period (from /proc), events against polling.

    .venv/bin/python benchmarks/watch.py [--files 40] [--storm 10000] [--idle 30]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SETTLE = 0.5


def synthetic(seed: int, size: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)


def start(db: Path, root: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = db.with_name(db.name + f".{time.monotonic_ns()}.log")
    command = [sys.executable, "-P", "-m", "catalog", "--db", str(db), "watch", str(root), *extra]
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stderr=handle)
    while "reconciliation" not in log.read_text():
        if process.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(120)


def signed(db: Path, path: str, methods: int) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT COUNT(s.method) FROM images i JOIN signatures s ON s.image_id = i.id WHERE i.path = ?",
            (path,),
        ).fetchone()
    return row[0] >= methods


def latency(tmp: Path, label: str, methods: str, files: int, polling: bool) -> list[float]:
    root, db = tmp / f"lat-{label}", tmp / f"lat-{label}.db"
    root.mkdir()
    daemon = start(
        db, root, "--methods", methods, "--settle", str(SETTLE), *(["--polling"] if polling else [])
    )
    stored = len(methods.split(","))
    seconds = []
    try:
        for n in range(files):
            path = root / f"{n:04d}.jpg"
            synthetic(1000 + n, 640).save(path, quality=90)  # closed when save returns
            closed = time.perf_counter()
            while not signed(db, str(path), stored):
                time.sleep(0.005)
            seconds.append(time.perf_counter() - closed)
            time.sleep(0.2)
    finally:
        stop(daemon)
    return seconds


def process_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storm(tmp: Path, count: int, polling: bool, idle: float) -> tuple[float, int, int, float]:
    """(seconds to catalogue the storm, images catalogued, distinct paths, idle CPU %)."""
    source = tmp / "storm-source"
    if not source.exists():
        source.mkdir()
        for n in range(count):
            synthetic(n, 48).save(source / f"{n:05d}.png")
    label = "polling" if polling else "events"
    root, db = tmp / f"storm-{label}", tmp / f"storm-{label}.db"
    root.mkdir()
    daemon = start(db, root, "--methods", "phash", *(["--polling"] if polling else []))
    try:
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(source), str(root / "storm")], check=True)
        deadline = started + 900
        while time.perf_counter() < deadline:  # a loss shows as fewer rows than files at the deadline
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                rows, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM images").fetchone()
            if rows >= count:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        time.sleep(2 * SETTLE + 1)  # let it finish anything in hand, then measure idling
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM images").fetchone()
        before = process_seconds(daemon.pid)
        time.sleep(idle)
        cpu = 100.0 * (process_seconds(daemon.pid) - before) / idle
    finally:
        stop(daemon)
    return seconds, rows, distinct, cpu


def index_seconds(tmp: Path) -> float:
    db = tmp / "peer-index.db"
    command = [
        sys.executable,
        "-m",
        "catalog",
        "--db",
        str(db),
        "index",
        str(tmp / "storm-source"),
        "--methods",
        "phash",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--storm", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"Latency: file closed -> catalogued with its signatures, {args.files} files one at a time,")
        print(f"settle {SETTLE} s\n")
        print("| observer | methods | p50 ms | p95 ms | max ms |")
        print("|---|---|---|---|---|")
        for label, methods, polling in (
            ("events", "phash", False),
            ("events", "ahash,phash,dhash,whash", False),
            ("events", "phash,cnn", False),
            ("polling", "phash", True),
        ):
            seconds = np.asarray(
                latency(tmp, f"{label}-{methods.replace(',', '-')}", methods, args.files, polling)
            )
            p50, p95 = np.percentile(seconds, [50, 95]) * 1000
            print(f"| {label} | {methods} | {p50:.0f} | {p95:.0f} | {seconds.max() * 1000:.0f} |", flush=True)
        print(f"\nStorm: cp -r of {args.storm:,} small PNGs into the watched folder (phash)\n")
        print("| observer | seconds | images/s | catalogued | distinct paths | idle CPU % |")
        print("|---|---|---|---|---|---|")
        for polling in (False, True):
            seconds, rows, distinct, cpu = storm(tmp, args.storm, polling, args.idle)
            label = "polling" if polling else "events"
            print(
                f"| {label} | {seconds:.1f} | {rows / seconds:.0f} | {rows} | {distinct} | {cpu:.2f} |",
                flush=True,
            )
        peer = index_seconds(tmp)
        print(f"\nIdle CPU: the daemon's CPU time over {args.idle:.0f} quiet seconds after the storm.")
        print(f"Peer: `catalog index` of the same {args.storm:,} files on a new catalogue: ", end="")
        print(f"{peer:.1f} s ({args.storm / peer:.0f} images/s)")


if __name__ == "__main__":
    main()
