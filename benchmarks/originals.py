"""Is the file kept the original? A camera library with the copies people make of it
(``catalog.evaluation.originals``: camera photos in Camera/ dated when taken, byte-identical backups with
the same dates, HEIC conversions with EXIF, downloads, PNG exports, messenger copies), indexed, then:

- ``dupes`` with default options (phash), and ``dupes --method cnn``: in how many groups that hold an
  original is the original the reference (the file kept);
- ``resolve`` with default options (a dry run): how many originals it plans to remove (must be 0).

    .venv/bin/python benchmarks/originals.py [--photos 60] [--cnn]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from catalog.evaluation.originals import camera_photos, make_camera_library, original_share  # noqa: E402
from common import run_catalog  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=60, help="how many camera photos (of 60)")
    parser.add_argument("--cnn", action="store_true", help="also dupes --method cnn")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="catalog-originals-"))
    try:
        originals = make_camera_library(camera_photos(DATA / "photos")[: args.photos], work / "lib")
        files = sum(1 for p in (work / "lib").rglob("*") if p.is_file())
        db = str(work / "catalog.db")
        methods = "phash,cnn" if args.cnn else "phash"
        run_catalog("--db", db, "index", str(work / "lib"), "--methods", methods)
        print(f"{len(originals)} camera originals, {files} files")
        print("| question | groups with an original | original kept | share |")
        print("|---|---|---|---|")
        for method in ["phash", "cnn"] if args.cnn else ["phash"]:
            asked = ["dupes", "-f", "json"] + (["--method", method] if method != "phash" else [])
            groups = json.loads(run_catalog("--db", db, *asked)[2])["groups"]
            kept, holding, wrong = original_share(groups, originals)
            print(f"| `{' '.join(asked)}` | {holding} | {kept} | {kept / max(holding, 1):.1%} |")
            for path in wrong:
                print(f"    kept instead of the original: {path}")
        plan = json.loads(run_catalog("--db", db, "resolve", "-f", "json")[2])
        removed = {str(p) for p in originals} & {step["path"] for step in plan["actions"]}
        actions = len(plan["actions"])
        print(f"`resolve` (default keep, dry run): {actions} actions, {len(removed)} on an original")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
