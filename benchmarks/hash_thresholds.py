"""Choose default Hamming thresholds from data.

Makes altered copies of every photo in ../shared/data/photos (re-encoded, resized, brightened, cropped,
bordered, overlaid), indexes them with all hash methods, and prints for each method and threshold:
recall on (original, copy) pairs per alteration, and the number of false pairs among all unrelated
images of the sample sets (photos + fruits360-96 + ukbench-500, across groups).

    .venv/bin/python benchmarks/hash_thresholds.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from catalog.search.bits import codes_from_bytes
from catalog.store import Catalog
from catalog.sync.indexer import index

ALTERATIONS = {
    "reencode-q50": lambda im: (im, {"quality": 50}),
    "resize-50%": lambda im: (
        im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
        {"quality": 85},
    ),
    "resize-640": lambda im: (ImageOps.contain(im, (640, 640)), {"quality": 85}),
    "brighter-20%": lambda im: (ImageEnhance.Brightness(im).enhance(1.2), {"quality": 90}),
    "crop-5%": lambda im: (
        im.crop((im.width // 20, im.height // 20, im.width * 19 // 20, im.height * 19 // 20)),
        {"quality": 90},
    ),
    "border-3%": lambda im: (
        ImageOps.expand(im, border=max(1, im.width // 33), fill="white"),
        {"quality": 90},
    ),
    "overlay-text": lambda im: (_overlay(im), {"quality": 90}),
}


def _overlay(im: Image.Image) -> Image.Image:
    im = im.copy()
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, im.height * 9 // 10, im.width // 2, im.height), fill=(255, 255, 255))
    return im


def make_variants(photos: Path, out: Path) -> list[tuple[str, str, str]]:
    """Write the altered copies; return (original path, copy path, alteration)."""
    pairs = []
    for source in sorted(photos.glob("*.jp*g")) + sorted(photos.glob("*.JP*G")):
        with Image.open(source) as opened:
            img = ImageOps.exif_transpose(opened).convert("RGB")
            img.thumbnail((1600, 1600))  # keeps the run short; the originals stay full size
        for name, alter in ALTERATIONS.items():
            altered, kwargs = alter(img)
            target = out / name / (source.stem + ".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            altered.save(target, **kwargs)
            pairs.append((str(source), str(target), name))
    return pairs


def unrelated_pairs(data: Path, paths: list[str]) -> list[tuple[str, str]]:
    """Pairs of sample images that are not of one group (different photos / fruit turns / objects)."""
    group_of: dict[str, str] = {}
    for folder in ("fruits360-96", "ukbench-500"):
        with open(data / folder / "groups.csv") as handle:
            for row in csv.DictReader(handle):
                group_of[str(data / folder / row["file"])] = f"{folder}:{row['group']}"
    for path in paths:
        group_of.setdefault(path, path)  # each photo is its own group
    return [(a, b) for a, b in itertools.combinations(paths, 2) if group_of[a] != group_of[b]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    methods = ["ahash", "phash", "dhash", "whash"]
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_variants(args.data / "photos", Path(tmp) / "variants")
        with Catalog.open(f"sqlite:///{tmp}/t.db") as catalog:
            roots = [
                args.data / "photos",
                args.data / "fruits360-96",
                args.data / "ukbench-500",
                Path(tmp) / "variants",
            ]
            index(catalog, [str(r) for r in roots], methods=methods)
            path_of = catalog.paths()
            originals = [p for p in path_of.values() if not p.startswith(tmp)]
            negatives = unrelated_pairs(args.data, originals)
            print(
                f"{len(pairs)} copy pairs ({len(ALTERATIONS)} alterations x photos), "
                f"{len(negatives)} unrelated pairs\n"
            )
            for method in methods:
                ids, values = catalog.signatures(method)
                code = dict(zip((path_of[i] for i in ids), codes_from_bytes(values).tolist(), strict=True))

                def dist(a: str, b: str, code: dict[str, int] = code) -> int:
                    return (code[a] ^ code[b]).bit_count()

                positives = {
                    name: np.array([dist(a, b) for a, b, n in pairs if n == name]) for name in ALTERATIONS
                }
                negative = np.array([dist(a, b) for a, b in negatives])
                fruit = np.array(["fruits360" in a and "fruits360" in b for a, b in negatives])
                print(f"## {method}")
                print("| threshold | " + " | ".join(ALTERATIONS) + " | false pairs | of which fruits360 |")
                print("|---" * (len(ALTERATIONS) + 3) + "|")
                for t in range(0, 17):
                    recalls = " | ".join(f"{(positives[n] <= t).mean():.0%}" for n in ALTERATIONS)
                    print(
                        f"| {t} | {recalls} | {(negative <= t).sum()} | {((negative <= t) & fruit).sum()} |"
                    )
                print()


if __name__ == "__main__":
    main()
