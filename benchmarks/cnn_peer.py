"""`catalog index --methods cnn` against fastdup (its defaults), same folders, same run, each a whole
process (model load included): UKBench's 500 photos of 320x240 and the 60 camera photos. fastdup lives in
a virtual environment of its own (it pins its own numpy and OpenCV):

    python3 -m venv /tmp/fdenv && /tmp/fdenv/bin/pip install fastdup==2.54
    .venv/bin/python benchmarks/cnn_peer.py --fastdup-python /tmp/fdenv/bin/python [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from common import run_catalog  # benchmarks/ is the script's folder: first on sys.path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FASTDUP = (
    "import fastdup, sys; fastdup.create(work_dir=sys.argv[1], input_dir=sys.argv[2]).run(overwrite=True)"
)


def timed(command: list[str]) -> float:
    """Seconds of a peer's whole process (catalog's own runs go through ``common.run_catalog``)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fastdup-python", required=True, help="a Python with fastdup installed")
    parser.add_argument("--runs", type=int, default=2, help="runs of each; the best is kept")
    args = parser.parse_args()
    print("| folder | images | catalog index --methods cnn, s | img/s | fastdup, s | img/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for folder in ("ukbench-500", "photos"):
        source = args.data / folder
        count = sum(1 for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        ours, theirs = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "c.db"
                ours.append(run_catalog("--db", str(db), "index", "--methods", "cnn", str(source))[0])
                theirs.append(
                    timed([args.fastdup_python, "-c", FASTDUP, str(Path(tmp) / "fastdup"), str(source)])
                )
        a, b = min(ours), min(theirs)
        print(
            f"| {folder} | {count} | {a:.2f} | {count / a:.1f} | {b:.2f} | {count / b:.1f} | {b / a:.2f}x |"
        )


if __name__ == "__main__":
    main()
