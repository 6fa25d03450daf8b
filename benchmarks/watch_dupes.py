"""Files copied into a library that `catalog watch` keeps: how long until they show in `catalog dupes`.

The issue's figure: 5 files copied into a watched 10,000-image library show in `catalog dupes` within 2 s
of being written, with no process but the watcher. The watcher keeps each method's groups as rows
(``catalog.grouping.stored.refresh``, run by its own indexing), and `dupes` with default options reads
them; while changes are pending (``regroup`` rows) `dupes` groups the stored pairs instead.

1. A library of 10,000 JPEGs: the sample photos of ../shared/data (fruits360-96, ukbench-500, photos:
   656 files, among them near-duplicates, so that groups exist) and distinct synthetic pictures (random
   shapes on a gradient, 320x240), indexed once with `catalog index` (default methods).
2. `catalog watch LIB` as a separate process, as a user runs it (`--settle` as given, 0.5 s by default),
   ready once it logged its start-up reconciliation.
3. Each round writes 5 copies of 5 different library pictures next to them (byte copies and re-saves at
   80 % size), then runs `catalog dupes -f json` (a new process each time, as a user would, one after
   the other) until all 5 new paths are in its groups. Timed from the close of the last copy to the end
   of the `dupes` process that listed them. Whether that `dupes` answered from the stored groups is told
   by the process itself: it runs `catalog`'s own entry point with ``stored_grouping`` wrapped to say on
   stderr whether it gave the answer (the same imports and work; nothing else changes). The ``regroup``
   rows of phash at its start and end are shown beside.
4. Meanwhile a thread of this script reads the catalogue (read-only, every 10 ms) for where the time went:
   when the 5 images were committed with their signatures, when phash's pairs were stored, when phash's
   groups held them, when every method's pairs and groups were done.

    .venv/bin/python benchmarks/watch_dupes.py [--images 10000] [--rounds 5] [--settle 0.5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = ("fruits360-96", "ukbench-500", "photos")
PER_FOLDER = 500
FILES = 5
SIZE = (320, 240)

#: `catalog dupes` as `python -m catalog` runs it, with ``stored_grouping`` wrapped to tell on stderr
#: whether the stored groups gave the answer (``catalog.cli.questions`` imports it when the command runs).
DUPES = """
import sys
import catalog.grouping.stored as stored
read = stored.stored_grouping
def told(*args, **kwargs):
    found = read(*args, **kwargs)
    print("stored-groups:", "yes" if found is not None else "no", file=sys.stderr)
    return found
stored.stored_grouping = told
from catalog.__main__ import run
run()
"""


def picture(seed: int) -> Image.Image:
    """A distinct picture: a two-colour gradient under random ellipses, boxes, polygons and lines."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, width)[None, :, None] * rng.uniform(0.3, 1.0)
    t = t + np.linspace(0.0, 1.0, height)[:, None, None] * rng.uniform(0.0, 0.7)
    base = (a + (b - a) * np.clip(t, 0, 1)).astype(np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(5, 14))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(-40, width)), int(rng.integers(-40, height))
        x1, y1 = x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 160))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 2:
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(3 + kind)]
            draw.polygon(points, fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
    noise = rng.normal(0, 6, (height, width, 3))
    pixels = np.clip(
        np.asarray(image.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float64) + noise, 0, 255
    )
    return Image.fromarray(pixels.astype(np.uint8))


def _write_pictures(job: tuple[Path, range]) -> None:
    folder, seeds = job
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        picture(seed).save(folder / f"img{seed:05d}.jpg", quality=85)


def make_library(root: Path, images: int) -> tuple[int, int]:
    """(real photos, synthetic pictures) written under ``root``."""
    real = 0
    for name in REAL:
        for source in sorted(p for p in (DATA / name).iterdir() if p.suffix.lower() in (".jpg", ".jpeg")):
            (root / "real" / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, root / "real" / name / source.name)
            real += 1
    synthetic = images - real
    jobs = [
        (root / "synthetic" / f"{start // PER_FOLDER:03d}", range(start, min(start + PER_FOLDER, synthetic)))
        for start in range(0, synthetic, PER_FOLDER)
    ]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_write_pictures, jobs))
    return real, synthetic


def catalog_command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-P", "-m", "catalog", "--db", str(db), *args]


def start_watcher(db: Path, root: Path, log: Path, settle: float) -> subprocess.Popen[bytes]:
    """`catalog watch` as benchmarks/watch.py starts it: ready once it logged its reconciliation."""
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            catalog_command(db, "watch", str(root), "--settle", str(settle)), stderr=handle
        )
    while "reconciliation" not in log.read_text():
        if process.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.05)
    return process


def paths_in(value: object) -> set[str]:
    """Every "path" in a `dupes -f json` answer."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "path" and isinstance(item, str):
                found.add(item)
            else:
                found |= paths_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= paths_in(item)
    return found


@dataclass
class Dupes:
    started: float
    ended: float
    paths: set[str]
    stored: bool | None
    groups: int
    regroup_before: int
    regroup_after: int

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def count(db: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


REGROUP_PHASH = "SELECT count(*) FROM regroup WHERE method = 'phash'"


def run_dupes(db: Path) -> Dupes:
    before = count(db, REGROUP_PHASH)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", DUPES, "--db", str(db), "dupes", "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    ended = time.perf_counter()
    after = count(db, REGROUP_PHASH)
    said = [line for line in done.stderr.splitlines() if line.startswith("stored-groups:")]
    stored = said[-1].endswith("yes") if said else None
    answer = json.loads(done.stdout)
    return Dupes(started, ended, paths_in(answer), stored, len(answer["groups"]), before, after)


@dataclass
class Phases:
    """When (perf_counter) the catalogue first showed each step for the round's new paths."""

    indexed: float | None = None  # all 5 images committed with their phash signatures
    paired: float | None = None  # then: no phash signature waiting for its pairs
    grouped: float | None = None  # then: no phash regroup row left, the 5 in phash's stored groups
    settled: float | None = None  # then: no regroup or unpaired row left for any method
    stop: threading.Event = field(default_factory=threading.Event)


def watch_catalogue(db: Path, paths: list[str], phases: Phases) -> None:
    marks = ",".join("?" * len(paths))
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        while not phases.stop.is_set():
            now = time.perf_counter()
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT i.id FROM images i JOIN signatures s ON s.image_id = i.id "
                    f"AND s.method = 'phash' WHERE i.path IN ({marks})",
                    paths,
                )
            ]
            if phases.indexed is None and len(ids) == len(paths):
                phases.indexed = now
            if phases.indexed is not None:
                (unpaired,) = conn.execute("SELECT count(*) FROM unpaired WHERE method = 'phash'").fetchone()
                (regroup,) = conn.execute(REGROUP_PHASH).fetchone()
                (grouped,) = conn.execute(
                    f"SELECT count(*) FROM group_members WHERE method = 'phash' AND image_id IN "
                    f"({','.join('?' * len(ids))})",
                    ids,
                ).fetchone()
                if phases.paired is None and unpaired == 0:
                    phases.paired = now
                if phases.grouped is None and regroup == 0 and grouped == len(ids):
                    phases.grouped = now
                if phases.grouped is not None and phases.settled is None:
                    (left,) = conn.execute(
                        "SELECT (SELECT count(*) FROM regroup) + (SELECT count(*) FROM unpaired)"
                    ).fetchone()
                    if left == 0:
                        phases.settled = now
            if phases.settled is not None:
                return
            time.sleep(0.01)
    finally:
        conn.close()


def sources(root: Path, rounds: int) -> list[list[Path]]:
    """5 different library pictures per round, none used twice: 2 UKBench photos, 3 synthetic."""
    ukbench = sorted((root / "real" / "ukbench-500").glob("*.jpg"))
    synthetic = sorted((root / "synthetic").glob("*/*.jpg"))
    chosen = []
    for r in range(rounds):
        photos = [ukbench[(r * 97 + k * 41) % len(ukbench)] for k in range(2)]
        drawn = [synthetic[(r * 1931 + k * 613 + 7) % len(synthetic)] for k in range(FILES - 2)]
        chosen.append([*photos, *drawn])
    return chosen


def copy_bytes(source: Path, k: int) -> bytes:
    """A byte copy (even k) or a re-save at 80 % size, quality 90 (odd k): a duplicate of ``source``."""
    if k % 2 == 0:
        return source.read_bytes()
    with Image.open(source) as image:
        smaller = image.convert("RGB").resize(
            (image.width * 4 // 5, image.height * 4 // 5), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=90)
    return out.getvalue()


@dataclass
class Round:
    written: float
    wall: float
    seen: Dupes | None
    runs: int
    last_unseen: Dupes | None
    phases: Phases


def one_round(db: Path, number: int, chosen: list[Path], timeout: float) -> Round:
    contents = [copy_bytes(source, k) for k, source in enumerate(chosen)]  # made before the clock starts
    targets = [source.with_name(f"{source.stem}-copy{number}.jpg") for source in chosen]
    phases = Phases()
    sampler = threading.Thread(
        target=watch_catalogue, args=(db, [str(t) for t in targets], phases), daemon=True
    )
    sampler.start()
    for target, data in zip(targets, contents, strict=True):
        with open(target, "wb") as handle:
            handle.write(data)
    written, wall = time.perf_counter(), time.time()  # the last copy closed
    wanted = {str(t) for t in targets}
    runs, seen, last_unseen = 0, None, None
    while time.perf_counter() - written < timeout:
        answer = run_dupes(db)
        runs += 1
        if wanted <= answer.paths:
            seen = answer
            break
        last_unseen = answer
    # Let the watcher finish the round (every method's pairs and groups) before the next one starts.
    deadline = time.perf_counter() + timeout
    while phases.settled is None and time.perf_counter() < deadline and sampler.is_alive():
        time.sleep(0.05)
    phases.stop.set()
    sampler.join()
    return Round(written, wall, seen, runs, last_unseen, phases)


def after(start: float, moment: float | None) -> str:
    return "-" if moment is None else f"{moment - start:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.5, help="the watcher's --settle (its default: 0.5)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root, db, log = tmp / "library", tmp / "catalog.db", tmp / "watch.log"
        started = time.perf_counter()
        real, synthetic = make_library(root, args.images)
        print(
            f"library: {real + synthetic:,} JPEGs ({real} sample photos of ../shared/data, "
            f"{synthetic:,} synthetic {SIZE[0]}x{SIZE[1]}), written in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        started = time.perf_counter()
        subprocess.run(catalog_command(db, "index", str(root)), check=True, capture_output=True)
        print(f"catalog index (default methods, a new catalogue): {time.perf_counter() - started:.1f} s")
        quiet = run_dupes(db)
        print(
            f"catalog dupes before the watcher: {quiet.groups} groups, {quiet.seconds:.2f} s, "
            f"from stored groups: {'yes' if quiet.stored else 'no'}",
            flush=True,
        )
        chosen = sources(root, args.rounds)
        watcher = start_watcher(db, root, log, args.settle)
        print(f"catalog watch ready (--settle {args.settle:g} s); pid {watcher.pid}\n", flush=True)
        rounds = []
        try:
            for number in range(1, args.rounds + 1):
                rounds.append(one_round(db, number, chosen[number - 1], args.timeout))
                time.sleep(1.0)  # a gap between rounds: the watcher is idle again
        finally:
            watcher.terminate()
            watcher.wait(120)
        print(f"{FILES} files per round (2 UKBench photos, 3 synthetic; byte copies and 80 % re-saves)")
        print(f"watcher --settle {args.settle:g} s: a file is read once left alone that long\n")
        print("| round | written -> visible in dupes, s | dupes process, s | answered from stored groups |")
        print("|---|---|---|---|")
        for number, r in enumerate(rounds, 1):
            if r.seen is None:
                print(f"| {number} | not seen in {args.timeout:g} s | - | - |")
                continue
            stored = {True: "yes", False: "no", None: "unknown"}[r.seen.stored]
            print(f"| {number} | {r.seen.ended - r.written:.2f} | {r.seen.seconds:.2f} | {stored} |")
        visible = [r.seen.ended - r.written for r in rounds if r.seen]
        process = [r.seen.seconds for r in rounds if r.seen]
        if visible:
            print(
                f"\nwritten -> visible: p50 {statistics.median(visible):.2f} s, max {max(visible):.2f} s; "
                f"dupes process: p50 {statistics.median(process):.2f} s, max {max(process):.2f} s"
            )
        print(
            "\nWhere the time went (seconds after the last copy closed; "
            "from the catalogue, read every 10 ms):\n"
        )
        print(
            "| round | written (wall clock) | indexed | phash pairs | phash groups | all methods done | "
            "dupes runs | last dupes without them: start-end | seeing dupes: start-end | "
            "phash regroup rows at its start/end |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for number, r in enumerate(rounds, 1):
            p, w = r.phases, r.written
            unseen = (
                "-"
                if r.last_unseen is None
                else f"{r.last_unseen.started - w:.2f}-{r.last_unseen.ended - w:.2f}"
            )
            seen = "-" if r.seen is None else f"{r.seen.started - w:.2f}-{r.seen.ended - w:.2f}"
            rows = "-" if r.seen is None else f"{r.seen.regroup_before}/{r.seen.regroup_after}"
            clock = time.strftime("%H:%M:%S", time.localtime(r.wall)) + f".{int(r.wall % 1 * 1000):03d}"
            print(
                f"| {number} | {clock} | {after(w, p.indexed)} | {after(w, p.paired)} | "
                f"{after(w, p.grouped)} | {after(w, p.settled)} | {r.runs} | {unseen} | {seen} | {rows} |"
            )
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("\nThe watcher's log:")
        print(log.read_text().rstrip())


if __name__ == "__main__":
    main()
