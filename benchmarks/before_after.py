"""Indexing throughput of this checkout against an earlier commit, alternating in one run.

The earlier commit is checked out into a temporary git worktree and run by the same interpreter (its
``catalog`` package put first on the import path, in place of the installed one). Each run is a whole
``catalog index`` process on a new catalogue. Usage:

    .venv/bin/python benchmarks/before_after.py --before 0902e92 [--repeat 5] [--photos ../shared/data/photos]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

#: Runs ``catalog`` from the source tree given as the first argument, whatever is installed.
LAUNCHER = """
import sys
root = sys.argv.pop(1)
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, root)
import catalog.cli.app
assert catalog.cli.app.__file__.startswith(root), catalog.cli.app.__file__
try:
    from catalog.__main__ import run
except ImportError:
    run = catalog.cli.app.main
sys.argv[0] = "catalog"
run()
"""


def index_seconds(source: Path, photos: Path, methods: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(source), "--db", f"{tmp}/c.db", "index", str(photos),
             "--methods", methods],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--photos", type=Path, default=DATA / "photos")
    parser.add_argument("--methods", nargs="+", default=["phash", "ahash,phash,dhash,whash", "cnn"])
    args = parser.parse_args()
    images = sum(1 for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with tempfile.TemporaryDirectory(prefix="catalog-before-") as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)  # fmt: skip
        try:
            print(f"{images} photos in {args.photos}, {args.repeat} runs each, alternating; median (range)\n")
            print(f"| methods | before ({args.before}) s | after s | before images/s | after images/s |")
            print("|---|---|---|---|---|")
            for methods in args.methods:
                times: dict[str, list[float]] = {"before": [], "after": []}
                for _ in range(args.repeat):
                    times["before"].append(index_seconds(before, args.photos, methods))
                    times["after"].append(index_seconds(ROOT, args.photos, methods))
                cells = [f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})" for t in times.values()]
                rates = [f"{images / statistics.median(t):.1f}" for t in times.values()]
                print(f"| {methods} | {' | '.join(cells)} | {' | '.join(rates)} |")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False
            )


if __name__ == "__main__":
    main()
