"""Group sizes on a library of many crops of real photos: does any group outgrow its picture's copies?

Makes N random crops (70-95 % of each side, anywhere in the frame, JPEG quality 90) of every sample
image (UKBench 500, Fruits-360 96, the 60 camera photos reduced to 1600 px), keeps the originals, indexes
everything and runs `dupes` with each grouping. A picture's copies are its own crops; a group is too big
when it holds more images than its reference's picture has (itself and its crops) plus 2. With 30 crops
each: 656 pictures, 20,336 images.

    .venv/bin/python benchmarks/crops.py [--crops 30] [--methods cnn,phash] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from PIL import Image, ImageOps

from catalog.grouping.options import Options
from catalog.grouping.reference import find_groups
from catalog.ingest.scan import image_suffix
from catalog.store import Catalog
from catalog.sync.indexer import index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make(data: Path, out: Path, crops: int) -> int:
    rng = random.Random(0)
    count = 0
    sources = [
        p
        for folder in ("ukbench-500", "fruits360-96", "photos")
        for p in sorted((data / folder).iterdir())
        if image_suffix(p.name)
    ]
    for n, source in enumerate(sources):
        folder = out / f"{n:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as opened:
            img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        img.thumbnail((1600, 1600))
        img.save(folder / "original.jpg", quality=95)
        w, h = img.size
        for k in range(crops):
            cw, ch = int(w * rng.uniform(0.7, 0.95)), int(h * rng.uniform(0.7, 0.95))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            img.crop((x, y, x + cw, y + ch)).save(folder / f"crop-{k:02d}.jpg", quality=90)
        count += crops + 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--crops", type=int, default=30)
    parser.add_argument("--methods", default="cnn,phash")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        root = work / "crops"
        if not root.exists():
            print(f"{make(args.data, root, args.crops)} images made", file=sys.stderr)
        with Catalog.open(f"sqlite:///{work}/crops.db") as catalog:
            started = time.perf_counter()
            index(catalog, [str(root)], methods=args.methods.split(","))
            print(f"indexed in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            picture_size = Counter(Path(p).parent.name for p in catalog.paths().values())
            header = "method | grouping | groups | images grouped | largest group | largest excess"
            print(f"| {header} | groups too big | groups mixing pictures | seconds |")
            print("|---|---|---|---|---|---|---|---|---|")
            for method in args.methods.split(","):
                for grouping in ("reference", "components"):
                    started = time.perf_counter()
                    found = find_groups(catalog, method, options=Options(grouping=grouping))
                    seconds = time.perf_counter() - started
                    excess, too_big, mixing = 0, 0, 0
                    for group in found.groups:
                        pictures = Counter(Path(m.image.path).parent.name for m in group)
                        own = picture_size[Path(group[0].image.path).parent.name]
                        excess = max(excess, len(group) - own)
                        too_big += len(group) > own + 2
                        mixing += len(pictures) > 1
                    sizes = [len(g) for g in found.groups]
                    print(
                        f"| {method} | {grouping} | {len(sizes):,} | {sum(sizes):,} "
                        f"| {max(sizes, default=0):,} | {excess} | {too_big} | {mixing} | {seconds:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
