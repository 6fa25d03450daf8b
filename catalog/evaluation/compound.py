"""Copies made through a chain of edits, among near-misses: the way pictures travel (a messenger's resize
and re-encode, then a crop, a filter, a caption ...), for measuring what ``dupes`` finds of them.

Each family is a camera photo (two in three of ``../shared/data/photos``) and one copy per edit of
:data:`EDITS`: the edit, half of the time followed by a second edit drawn from the others, then a
messenger's re-encode (long side 1080 or 1600, JPEG quality 60-75). ``reencode`` is the re-encode alone.
The distractors are near-misses: every UKBench view (four views of each object, each its own family)
and six overlapping crops of each remaining camera photo (other shots of one scene).

``truth.csv`` holds file, family, object, role (``reference``, an edit's name, ``other view``,
``other shot``) and ``chain`` (the edits in order): two files are copies when their family is the same.
"""

from __future__ import annotations

import csv
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from catalog.evaluation.variants import SCENE_EVERY, VARIANT_SIZE, _scene_crops
from catalog.ingest.scan import image_suffix

Edit = Callable[[Image.Image, random.Random], Image.Image]


def _crop(img: Image.Image, rng: random.Random) -> Image.Image:
    """Up to 12 % cut from each side (at least 3 % from two of them)."""
    w, h = img.size
    cuts = [rng.uniform(0.0, 0.12) for _ in range(4)]
    for k in rng.sample(range(4), 2):
        cuts[k] = max(cuts[k], 0.03)
    left, top, right, bottom = cuts
    return img.crop((int(w * left), int(h * top), int(w * (1 - right)), int(h * (1 - bottom))))


def _filter(img: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast and saturation, as a phone's filter changes them."""
    img = ImageEnhance.Brightness(img).enhance(rng.choice([rng.uniform(0.75, 0.9), rng.uniform(1.1, 1.3)]))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.3))
    return ImageEnhance.Color(img).enhance(rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.2, 1.6)]))


def _caption(img: Image.Image, rng: random.Random) -> Image.Image:
    """A bar of 10-18 % of the height above or below the picture, with a line of text (a meme's caption)."""
    w, h = img.size
    bar = int(h * rng.uniform(0.10, 0.18))
    light = rng.random() < 0.5
    out = Image.new("RGB", (w, h + bar), "white" if light else "black")
    above = rng.random() < 0.5
    out.paste(img, (0, bar if above else 0))
    font = ImageFont.load_default(size=max(8, bar // 3))
    y = bar // 3 if above else h + bar // 3
    text = rng.choice(["when you see it", "Monday again", "look at this!!", "best day ever"])
    ImageDraw.Draw(out).text((w // 20, y), text, font=font, fill="black" if light else "white")
    return out


def _frame(img: Image.Image, rng: random.Random) -> Image.Image:
    """A coloured frame 2-8 % of the long side wide."""
    colour = tuple(rng.randrange(256) for _ in range(3))
    return ImageOps.expand(img, border=max(1, int(max(img.size) * rng.uniform(0.02, 0.08))), fill=colour)


def _straighten(img: Image.Image, rng: random.Random) -> Image.Image:
    """Turned by 2-5 degrees either way, the corners cropped off (the largest upright rectangle of the
    same shape inside the turned picture)."""
    import math

    angle = rng.uniform(2.0, 5.0) * rng.choice([-1, 1])
    w, h = img.size
    turned = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    a = math.radians(abs(angle))
    # The largest rectangle of the picture's proportions inside the turned picture.
    scale = 1 / (math.cos(a) + math.sin(a) * max(w / h, h / w))
    cw, ch = int(w * scale), int(h * scale)
    tw, th = turned.size
    return turned.crop(((tw - cw) // 2, (th - ch) // 2, (tw - cw) // 2 + cw, (th - ch) // 2 + ch))


def _screenshot(img: Image.Image, rng: random.Random) -> Image.Image:
    """A phone's screenshot of the picture: dark bars above and below, a 9:19.5 portrait screen."""
    w, h = img.size
    screen_h = max(h + 2, int(w * 19.5 / 9))
    shade = rng.randrange(0, 30)
    out = Image.new("RGB", (w, screen_h), (shade, shade, shade))
    out.paste(img, (0, (screen_h - h) // 2))
    return out


EDITS: dict[str, Edit] = {
    "reencode": lambda img, rng: img,
    "crop": _crop,
    "filter": _filter,
    "caption": _caption,
    "frame": _frame,
    "straighten": _straighten,
    "screenshot": _screenshot,
    "grayscale": lambda img, rng: ImageOps.grayscale(img).convert("RGB"),
    "turn": lambda img, rng: img.transpose(
        rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270])
    ),
    "mirror": lambda img, rng: ImageOps.mirror(img),
}


def messenger(img: Image.Image, rng: random.Random) -> tuple[Image.Image, int]:
    """A messenger's resize (long side 1080 or 1600, never larger) and its JPEG quality (60-75)."""
    img = img.copy()
    side = rng.choice([1080, 1600])
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img, rng.randint(60, 75)


def make_compound_mixture(
    data: Path, out: Path, seed: int = 2026, photos: int | None = None, views: int | None = None
) -> int:
    """Write the library to ``out`` with its ``truth.csv``; return the number of files. ``photos`` and
    ``views``: only the first camera photos and UKBench views (a small library for tests)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str, str]] = []

    def save(img: Image.Image, target: Path, quality: int, row: tuple[str, str, str, str]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        img.save(target, quality=quality)
        rows.append((target.relative_to(out).as_posix(), *row))

    sources = sorted(p for p in (data / "photos").iterdir() if image_suffix(p.name))[:photos]
    for n, source in enumerate(sources):
        obj = f"photo-{n:03d}"
        with Image.open(source) as opened:
            img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        img.thumbnail((VARIANT_SIZE, VARIANT_SIZE))
        if n % SCENE_EVERY == 0:  # near-misses: other shots of one scene
            for k, crop in enumerate(_scene_crops(img)):
                save(crop, out / obj / f"scene-{k}.jpg", 90, (f"{obj}-scene-{k}", obj, "other shot", ""))
            continue
        reference = out / obj / f"{source.stem}{source.suffix.lower()}"
        reference.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, reference)
        rows.append((reference.relative_to(out).as_posix(), obj, obj, "reference", ""))
        for name, edit in EDITS.items():
            chain = [name]
            copy = edit(img, rng)
            if name != "reencode" and rng.random() < 0.5:
                second = rng.choice([e for e in EDITS if e not in (name, "reencode")])
                copy = EDITS[second](copy, rng)
                chain.append(second)
            copy, quality = messenger(copy, rng)
            save(copy, out / obj / f"{source.stem}-{name}.jpg", quality, (obj, obj, name, "+".join(chain)))
    for n, source in enumerate(sorted((data / "ukbench-500").glob("*.jpg"))[:views]):
        obj = f"ukbench-{n // 4:03d}"
        target = out / obj / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        rows.append((target.relative_to(out).as_posix(), f"{obj}-{source.stem}", obj, "other view", ""))
    with open(out / "truth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "family", "object", "role", "chain"])
        writer.writerows(rows)
    return len(rows)
