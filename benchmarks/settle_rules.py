"""What settling a library by folder rules costs: `catalog rules`, then `catalog resolve --method exact`
(a dry run, then --apply to the desktop trash) and `catalog undo`, each a whole process, on the library of
``catalog.evaluation.originals.folder_rules_library`` (1,000 groups of byte copies, 1,328 redundant).
The peer: moving the same files with one `mv` process (no checks, no journal, no undo). Checks that
after undo every file is byte-identical to before.

    .venv/bin/python benchmarks/settle_rules.py [--pictures 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog.evaluation.originals import folder_rules_library

sys.path.insert(0, str(Path(__file__).parent))
from common import run_catalog  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def run(db: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    seconds, _, out = run_catalog("--db", str(db), *args, env=env)
    return seconds, out


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pictures", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "lib"
        folder_rules_library(args.data, root, args.pictures)
        home = work / "home"
        (home / ".local" / "share").mkdir(parents=True)
        env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}
        db = work / "c.db"
        run(db, env, "index", "--methods", "exact", str(root))
        before = snapshot(root)
        rows = []
        seconds, _ = run(
            db, env, "rules", "--prefer", str(root / "Camera"), "--avoid", str(root / "WhatsApp")
        )
        rows.append(("catalog rules --prefer Camera --avoid WhatsApp", seconds, None))
        seconds, out = run(db, env, "resolve", "--method", "exact", "-f", "json")
        plan = json.loads(out)
        files = len(plan["actions"])
        rows.append(("catalog resolve --method exact (dry run)", seconds, files))
        seconds, _ = run(db, env, "resolve", "--method", "exact", "--apply")
        rows.append(("catalog resolve --method exact --apply (trash)", seconds, files))
        applied = seconds
        seconds, _ = run(db, env, "undo")
        rows.append(("catalog undo (and catalogue them again)", seconds, files))
        if snapshot(root) != before:
            raise SystemExit("undo did not restore every byte")
        aside = work / "aside"
        aside.mkdir()
        paths = [a["path"] for a in plan["actions"]]
        started = time.perf_counter()
        for k in range(0, len(paths), 500):  # one mv per 500 files: the peer does no checks, no journal
            subprocess.run(["mv", "--backup=numbered", "-t", str(aside), *paths[k : k + 500]], check=True)
        peer = time.perf_counter() - started
        rows.append(("peer: mv of the same files", peer, files))
        for path in paths:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(aside)
    print(f"{plan['rules']}", file=sys.stderr)
    print("| step | s | files/s |")
    print("|---|---|---|")
    for name, seconds, count in rows:
        rate = f"{count / seconds:,.0f}" if count else ""
        print(f"| {name} | {seconds:.2f} | {rate} |")
    print(f"\napply / peer: {applied / peer:.1f}x the time of a plain mv (checks, journal, catalogue, undo)")


if __name__ == "__main__":
    main()
