"""What settling 1,000 copies costs: `catalog resolve` (dry run, --apply to the desktop trash) and
`catalog undo --all`, each a whole process, on 100 UKBench photos (one per object) with 10 copies each
(byte copies and re-encodes at JPEG quality 85-95), found by phash. Checks that the dry run and --apply
agree action for action and that after undo every file is byte-identical to before.

    .venv/bin/python benchmarks/resolve.py [--originals 100] [--copies 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def run(db: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-P", "-m", "catalog", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return time.perf_counter() - started, done.stdout


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--originals", type=int, default=100)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="catalog-resolve-bench-"))
    try:
        env = {**os.environ, "HOME": str(work / "home"), "XDG_DATA_HOME": str(work / "home" / "share")}
        (work / "home" / "share").mkdir(parents=True)
        root = work / "lib"
        rng = random.Random(0)
        for n, source in enumerate(sorted((DATA / "ukbench-500").glob("*.jpg"))[: args.originals * 4 : 4]):
            folder = root / f"set{n:03d}"
            folder.mkdir(parents=True)
            shutil.copyfile(source, folder / "original.jpg")
            for k in range(args.copies):
                if k % 2 == 0:
                    shutil.copyfile(source, folder / f"copy{k}.jpg")
                else:
                    with Image.open(source) as img:
                        img.save(folder / f"copy{k}.jpg", quality=rng.choice([85, 90, 95]))
        db = work / "c.db"
        run(db, env, "index", str(root))
        before = snapshot(root)
        rows = []
        policy = ["--keep", "oldest", "--action", "trash", "-f", "json"]
        seconds, out = run(db, env, "resolve", *policy)
        dry = json.loads(out)
        rows.append(("resolve (dry run)", seconds, len(dry["actions"])))
        seconds, out = run(db, env, "resolve", *policy, "--apply")
        applied = json.loads(out)
        rows.append(("resolve --apply (trash)", seconds, len(applied["actions"])))
        agree = [(a["action"], a["path"], a["keep"]) for a in dry["actions"]] == [
            (a["action"], a["path"], a["keep"]) for a in applied["actions"]
        ]
        seconds, out = run(db, env, "undo", "--all", "-f", "json")
        rows.append(("undo --all (and catalogue again)", seconds, len(json.loads(out)["restored"])))
        identical = snapshot(root) == before
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.originals} photos x {args.copies} copies; dry run = --apply: {agree}; "
        f"byte-identical after undo: {identical}"
    )
    print("| command | seconds | files | files/s |")
    print("|---|---|---|---|")
    for name, seconds, files in rows:
        print(f"| {name} | {seconds:.2f} | {files} | {files / seconds:.0f} |")


if __name__ == "__main__":
    main()
