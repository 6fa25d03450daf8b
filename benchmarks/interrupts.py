"""SIGINT or SIGTERM at random moments of real commands on a real catalogue of a few thousand images.

For each trial: a command starts from a known state, the signal goes to its process group (as Ctrl-C
from a terminal does) after a random delay within 90 % of the command's uninterrupted duration, and the script
records how long the process took to exit, its exit code, whether it printed a traceback, whether any
process of its group outlived it, SQLite's ``PRAGMA integrity_check``, and - for the indexing commands -
whether the same ``catalog index`` run again reaches the same catalogue as an uninterrupted run (hash
signatures equal, CNN and pixel signatures equal to float16 rounding).

    .venv/bin/python benchmarks/interrupts.py [--trials 50] [--seed 1] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATALOG = [sys.executable, "-P", "-m", "catalog"]
HANG = 2.0  # seconds from the signal to the exit beyond which a trial counts as a hang


@dataclass
class Scenario:
    name: str
    command: list[str]  # after "catalog --db DB"
    start_from: str | None  # a prepared catalogue copied before each trial (None: a new one)
    resume: list[str] | None  # the command that completes the work afterwards
    reference: str | None  # the uninterrupted catalogue the resumed one must equal
    drop_indexes: bool = False  # remove the HNSW index files first (so that the command builds them)
    duration: float = 0.0


@dataclass
class Outcome:
    trials: int = 0
    sigint: int = 0
    sigterm: int = 0
    interrupted: int = 0
    finished_first: int = 0
    killed_starting: int = 0
    seconds: list[float] = field(default_factory=list)
    hangs: int = 0
    tracebacks: int = 0
    leftovers: int = 0
    integrity_failures: int = 0
    resume_checked: int = 0
    resume_failures: int = 0


def build_library(target: Path, data: Path) -> int:
    """UKBench x5, the 60 camera photos x2 and Fruits-360: a few thousand real JPEGs."""
    count = 0
    for copy in range(5):
        folder = target / f"ukbench-{copy}"
        folder.mkdir(parents=True)
        for path in sorted((data / "ukbench-500").glob("*.jpg")):
            shutil.copyfile(path, folder / path.name)
            count += 1
    for copy in range(2):
        folder = target / f"photos-{copy}"
        folder.mkdir(parents=True)
        for path in sorted((data / "photos").glob("*.jpg")):
            shutil.copyfile(path, folder / path.name)
            count += 1
    shutil.copytree(data / "fruits360-96", target / "fruits", ignore=shutil.ignore_patterns("*.csv"))
    return count + len(list((target / "fruits").glob("*.jpg")))


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CATALOG, "--db", str(db), *args], capture_output=True, text=True)


def copy_catalogue(source: Path | None, target: Path) -> None:
    for path in target.parent.glob(target.name + "*"):
        path.unlink()
    if source is not None:
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)


def drop_indexes(db: Path) -> None:
    for path in db.parent.glob(db.name + ".*"):
        if path.suffix in (".hnsw", ".json", ".npy"):
            path.unlink()


def contents(db: Path) -> dict[tuple[str, str], bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT path, method, value FROM images JOIN signatures ON image_id = images.id"
        ).fetchall()
        hashes = conn.execute("SELECT path, content_hash FROM images").fetchall()
    found = {(path, method): value for path, method, value in rows}
    found.update({(path, "exact"): (digest or "").encode() for path, digest in hashes})
    return found


def same_catalogue(db: Path, reference: Path) -> bool:
    mine, theirs = contents(db), contents(reference)
    if mine.keys() != theirs.keys():
        return False
    for key, value in mine.items():
        other = theirs[key]
        if value == other:
            continue
        if key[1] in ("cnn", "euclidean", "cosine", "ssim") and len(value) == len(other):
            dtype = np.float16 if key[1] == "cnn" else np.uint8
            a = np.frombuffer(value, dtype=dtype).astype(np.float32)
            b = np.frombuffer(other, dtype=dtype).astype(np.float32)
            if np.allclose(a, b, atol=2e-3 if key[1] == "cnn" else 1):
                continue
        return False
    return True


def integrity(db: Path) -> bool:
    if not db.exists():
        return True
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def trial(
    scenario: Scenario, db: Path, prepared: dict[str, Path], delay: float, sig: int, out: Outcome
) -> None:
    copy_catalogue(prepared[scenario.start_from] if scenario.start_from else None, db)
    if scenario.drop_indexes:
        drop_indexes(db)
    process = subprocess.Popen(
        [*CATALOG, "--db", str(db), *scenario.command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(delay)
    sent = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
    seconds = time.monotonic() - sent
    out.trials += 1
    out.sigint += sig == signal.SIGINT
    out.sigterm += sig == signal.SIGTERM
    code = process.returncode
    if code == 128 + sig:
        out.interrupted += 1
        out.seconds.append(seconds)
        out.hangs += seconds > HANG
    elif code == 0:
        out.finished_first += 1
    elif code == -sig:
        out.killed_starting += 1  # the signal's default action, before catalog's handling was installed
    else:
        print(f"  {scenario.name}: unexpected exit {code}: {err.strip()[-300:]}", file=sys.stderr)
    out.tracebacks += "Traceback" in err
    time.sleep(0.2)  # let the kernel reap what terminated
    out.leftovers += group_alive(process.pid)
    out.integrity_failures += not integrity(db)
    if scenario.resume and scenario.reference:
        resumed = run(db, *scenario.resume)
        out.resume_checked += 1
        if resumed.returncode != 0 or not same_catalogue(db, prepared[scenario.reference]):
            out.resume_failures += 1
            print(
                f"  {scenario.name}: resumed catalogue differs ({resumed.stderr.strip()[-200:]})",
                file=sys.stderr,
            )
    elif scenario.name.startswith("dupes"):
        after = run(db, *scenario.command)  # the index files left behind load (or are rebuilt)
        out.resume_checked += 1
        out.resume_failures += after.returncode != 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="catalog-interrupts-") as tmp:
        work = Path(tmp)
        library = work / "library"
        images = build_library(library, args.data)
        root = str(library)
        prepared: dict[str, Path] = {}
        scenarios = [
            Scenario("index (new catalogue)", ["index", root], None, ["index", root], "hashes"),
            Scenario("index (adding a method)", ["index", root, "--methods", "cosine"], "hashes",
                     ["index", root, "--methods", "cosine"], "hashes+cosine"),
            Scenario("index (CNN running)", ["index", root, "--methods", "cnn"], "hashes",
                     ["index", root, "--methods", "cnn"], "hashes+cnn"),
            Scenario("watch (start-up reconciliation)", ["watch", root], None, ["index", root], "hashes"),
            Scenario("dupes --method cnn (HNSW build)", ["dupes", "--method", "cnn"], "hashes+cnn", None,
                     None, drop_indexes=True),
            Scenario("bench (fruits360, ahash+cnn)", ["bench", str(args.data / "fruits360-96"),
                     "--methods", "ahash,cnn"], None, None, None),
        ]  # fmt: skip

        print(f"library: {images} images in {library}", file=sys.stderr)
        for name, base, methods in (
            ("hashes", None, None),
            ("hashes+cosine", "hashes", "cosine"),
            ("hashes+cnn", "hashes", "cnn"),
        ):
            db = work / f"{name}.db"
            if base:
                copy_catalogue(prepared[base], db)
            started = time.monotonic()
            done = run(db, "index", root, *(["--methods", methods] if methods else []))
            assert done.returncode == 0, done.stderr
            prepared[name] = db
            print(f"reference {name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
        db = work / "trial.db"
        for scenario in scenarios:  # each command's uninterrupted duration sets the range of delays
            if scenario.name.startswith("watch"):
                scenario.duration = run_duration_of_watch_reconciliation(db, root)
                continue
            copy_catalogue(prepared[scenario.start_from] if scenario.start_from else None, db)
            if scenario.drop_indexes:
                drop_indexes(db)
            started = time.monotonic()
            done = run(db, *scenario.command)
            assert done.returncode == 0, done.stderr
            scenario.duration = time.monotonic() - started
            print(f"{scenario.name}: {scenario.duration:.1f} s uninterrupted", file=sys.stderr)

        outcomes: dict[str, Outcome] = defaultdict(Outcome)
        for n in range(args.trials):
            scenario = scenarios[n % len(scenarios)]
            delay = rng.uniform(0.0, scenario.duration * 0.9)  # mostly mid-way; a few may still finish first
            sig = rng.choice([signal.SIGINT, signal.SIGTERM])
            trial(scenario, db, prepared, delay, sig, outcomes[scenario.name])
            print(f"trial {n + 1}/{args.trials}: {scenario.name} {signal.Signals(sig).name} at {delay:.2f} s",
                  file=sys.stderr)  # fmt: skip

    print(f"\n{args.trials} signals at random moments, {images} images, seed {args.seed}\n")
    print("| command | trials (INT/TERM) | interrupted / done first / killed starting | slowest exit s | "
          "hangs (> 2 s) | tracebacks | processes left | integrity not ok | next run differs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        o = outcomes[scenario.name]
        slowest = f"{max(o.seconds):.2f}" if o.seconds else "-"
        resumed = f"{o.resume_failures} of {o.resume_checked}" if o.resume_checked else "-"
        outcome = f"{o.interrupted} / {o.finished_first} / {o.killed_starting}"
        print(
            f"| {scenario.name} | {o.trials} ({o.sigint}/{o.sigterm}) | {outcome} | {slowest} | {o.hangs} | "
            f"{o.tracebacks} | {o.leftovers} | {o.integrity_failures} | {resumed} |"
        )


def run_duration_of_watch_reconciliation(db: Path, root: str) -> float:
    """Seconds from start until the watcher's start-up reconciliation is done, on a new catalogue."""
    copy_catalogue(None, db)
    process = subprocess.Popen(
        [*CATALOG, "--db", str(db), "watch", root], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    started = time.monotonic()
    assert process.stderr is not None
    for line in process.stderr:
        if "reconciliation" in line:
            break
    duration = time.monotonic() - started
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)
    print(f"watch start-up reconciliation: {duration:.1f} s uninterrupted", file=sys.stderr)
    return duration


if __name__ == "__main__":
    main()
