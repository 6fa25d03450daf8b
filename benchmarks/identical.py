"""What a byte-identical backup costs to index, whole processes (start-up included), in one run:

- ``catalog index`` of the 60 camera photos alone (``Camera/``), on a new catalogue;
- the same with a byte-identical copy of every photo beside them (``Camera/`` and ``Backup/``);
- ``Backup/`` copied into the library after ``Camera/`` was catalogued, then ``catalog index`` again;
- the same backup as a root of its own (a backup drive), then ``catalog index DRIVE``;
- imagededup's ``PHash`` on ``Camera/`` + ``Backup/`` (the peer, as in ``benchmarks/indexing.py``;
  needs ``scripts/bench-setup``; left out when imagededup is not installed).

Each with the default methods, the median of ``--repeat`` runs. Catalog decodes each content once (a
copy takes the facts and signatures of its twin); the ratio column says what the backup adds.

    .venv/bin/python benchmarks/identical.py [--photos ../shared/data/photos] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATALOG = [sys.executable, "-P", "-m", "catalog"]
INDEXING = str(Path(__file__).with_name("indexing.py"))


def run(command: list[str]) -> tuple[float, str]:
    """Wall seconds and standard output of a whole command."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DATA / "photos")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        alone, both, flat = tmp / "alone", tmp / "both", tmp / "flat"  # flat: for the peer, one folder
        for photo in photos:
            for target in (
                alone / "Camera" / photo.name,
                both / "Camera" / photo.name,
                both / "Backup" / photo.name,
                flat / photo.name,
                flat / f"backup-{photo.name}",
            ):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(photo, target)
        times: dict[str, list[float]] = {}
        identical: dict[str, object] = {}
        peer = importlib.util.find_spec("imagededup") is not None
        for n in range(args.repeat):
            for label, library in (("Camera/ alone", alone), ("Camera/ + Backup/", both)):
                seconds, out = run(
                    [
                        *CATALOG,
                        "--db",
                        str(tmp / f"{n}-{library.name}.db"),
                        "index",
                        str(library),
                        "-f",
                        "json",
                    ]
                )
                times.setdefault(label, []).append(seconds)
                identical[label] = json.loads(out).get("identical", "-")  # (older versions: not said)
            later = tmp / f"later-{n}"
            shutil.copytree(alone, later)
            db = str(tmp / f"{n}-later.db")
            run([*CATALOG, "--db", db, "index", str(later)])
            shutil.copytree(both / "Backup", later / "Backup")
            seconds, out = run([*CATALOG, "--db", db, "index", str(later), "-f", "json"])
            label = "Backup/ copied in later, index again"
            times.setdefault(label, []).append(seconds)
            identical[label] = json.loads(out).get("identical", "-")  # (older versions: not said)
            drive = tmp / f"drive-{n}"  # a backup drive indexed as a root of its own
            shutil.copytree(both / "Backup", drive)
            seconds, out = run([*CATALOG, "--db", db, "index", str(drive), "-f", "json"])
            label = "the same Backup/ as another root, index it"
            times.setdefault(label, []).append(seconds)
            identical[label] = json.loads(out).get("identical", "-")
            if peer:
                seconds, _ = run([sys.executable, INDEXING, "_imagededup", str(flat)])
                times.setdefault("imagededup PHash, Camera/ + Backup/", []).append(seconds)
    base = statistics.median(times["Camera/ alone"])
    print(
        f"\n{len(photos)} photos from {args.photos}, a byte-identical copy of each in Backup/;"
        f" median of {args.repeat}\n"
    )
    print("| run | seconds | runs | vs Camera/ alone | files not decoded |")
    print("|---|---|---|---|---|")
    for label, seconds in times.items():
        middle = statistics.median(seconds)
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"| {label} | {middle:.2f} | {runs} | {middle / base:.2f}x | {identical.get(label, '-')} |")


if __name__ == "__main__":
    main()
