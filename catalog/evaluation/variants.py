"""Altered copies of a folder of originals, with a ``groups.csv``: a benchmark set from one's own photos.

Each original becomes one group: the original file itself (byte for byte, listed first, so it is the
reference) and one copy per alteration. Alterations work on the original reduced to at most
``VARIANT_SIZE`` pixels on its long side (EXIF orientation applied), as copies shared online usually are;
each is saved as a JPEG of quality 90 unless said otherwise:

- ``resize-jpeg``: half the size, JPEG quality 70;
- ``crop``: the central 80 % (10 % cut from each side);
- ``brightness-contrast``: brightness x1.3, then contrast x1.2;
- ``mirror``: flipped left to right;
- ``rotate-90``: turned 90 degrees counter-clockwise;
- ``text``: a caption in white with a black outline, 1/12 of the height tall, near the bottom left;
- ``border``: a white border 5 % of the long side wide;
- ``grayscale``: the luminance only.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from catalog.errors import UsageError
from catalog.ingest.scan import image_suffix

VARIANT_SIZE = 1600
QUALITY = 90


def _text(img: Image.Image) -> Image.Image:
    img = img.copy()
    size = max(8, img.height // 12)
    font = ImageFont.load_default(size=size)
    ImageDraw.Draw(img).text(
        (img.width // 20, img.height - 2 * size),
        "(c) catalog 2026",
        font=font,
        fill="white",
        stroke_width=max(1, size // 12),
        stroke_fill="black",
    )
    return img


def _crop(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.crop((w // 10, h // 10, w - w // 10, h - h // 10))


#: name -> (alteration, JPEG quality)
ALTERATIONS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    "resize-jpeg": (
        lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS),
        70,
    ),
    "crop": (_crop, QUALITY),
    "brightness-contrast": (
        lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.3)).enhance(1.2),
        QUALITY,
    ),
    "mirror": (ImageOps.mirror, QUALITY),
    "rotate-90": (lambda im: im.transpose(Image.Transpose.ROTATE_90), QUALITY),
    "text": (_text, QUALITY),
    "border": (lambda im: ImageOps.expand(im, border=max(1, max(im.size) // 20), fill="white"), QUALITY),
    "grayscale": (lambda im: ImageOps.grayscale(im).convert("RGB"), QUALITY),
}


def make_variants(originals: Path, out: Path) -> int:
    """Write ``out/<original stem>/`` for every image directly in ``originals``, and ``out/groups.csv``;
    return the number of groups. Unreadable files are skipped with a note on the returned count."""
    sources = sorted(p for p in originals.iterdir() if p.is_file() and image_suffix(p.name))
    if not sources:
        raise UsageError(f"no image files in {originals}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for source in sources:
        try:
            with Image.open(source) as opened:
                img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        img.thumbnail((VARIANT_SIZE, VARIANT_SIZE))
        folder = out / source.stem
        folder.mkdir(exist_ok=True)
        original = folder / f"original{source.suffix.lower()}"
        shutil.copyfile(source, original)
        rows.append((original.relative_to(out).as_posix(), source.stem))
        for name, (alter, quality) in ALTERATIONS.items():
            target = folder / f"{name}.jpg"
            alter(img).save(target, quality=quality)
            rows.append((target.relative_to(out).as_posix(), source.stem))
    with open(out / "groups.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "group"])
        writer.writerows(rows)
    return len({group for _, group in rows})


#: Copies a user asks to find with ``--transforms``: the other turns and mirror-turns of a photo.
TRANSFORMS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    "rotate-180": (lambda im: im.transpose(Image.Transpose.ROTATE_180), QUALITY),
    "rotate-270": (lambda im: im.transpose(Image.Transpose.ROTATE_270), QUALITY),
    "mirror-rotate-90": (lambda im: im.transpose(Image.Transpose.TRANSPOSE), QUALITY),
}

#: Sample photos kept apart as scenes: each gives near-miss crops instead of a family of copies.
SCENE_EVERY = 3


def _scene_crops(img: Image.Image) -> list[Image.Image]:
    """Six crops of 45 % x 55 % in 3 columns and 2 rows: neighbours overlap by 39 % (side by side) or
    18 % (above and below) of their area, others less or not at all - other shots of one scene, not
    copies of each other."""
    w, h = img.size
    cw, ch = w * 45 // 100, h * 55 // 100
    return [img.crop((x, y, x + cw, y + ch)) for y in (0, h - ch) for x in (0, (w - cw) // 2, w - cw)]


def make_mixture(data: Path, out: Path, transforms: bool = True) -> int:
    """A library of copies among near-misses, from the sample data (``../shared/data``), with a
    ``truth.csv`` (file, family, object, role); return the number of files.

    - Families of copies (``family`` names one): a reference and one copy per alteration
      (:data:`ALTERATIONS`, and :data:`TRANSFORMS` if asked) of: the first view of each UKBench object,
      the first frame of each Fruits-360 group (groups are the same fruits turned: near-misses of each
      other), and two in three of the camera photos.
    - Near-misses, each its own family but sharing the ``object`` of a family: the other 3 views of each
      UKBench object, and six crops of each remaining camera photo (other shots of one scene). The
      other frames of a Fruits-360 group are left out: the fruit barely turns between them, so they are
      copies to the eye and to every method, neither a copy family nor a near-miss.

    Two files are copies when their family is the same; any other pair must not match, and pairs of
    one object are the look-alike ones.
    """
    alterations = {**ALTERATIONS, **(TRANSFORMS if transforms else {})}
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []

    def save(img: Image.Image, name: str, family: str, obj: str, role: str, quality: int) -> None:
        target = out / obj / f"{name}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        img.save(target, quality=quality)
        rows.append((target.relative_to(out).as_posix(), family, obj, role))

    def family(source: Path, obj: str, big: bool) -> None:
        with Image.open(source) as opened:
            img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        if big:
            img.thumbnail((VARIANT_SIZE, VARIANT_SIZE))
        target = out / obj / f"{source.stem}{source.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        rows.append((target.relative_to(out).as_posix(), obj, obj, "reference"))
        for name, (alter, quality) in alterations.items():
            save(alter(img), f"{source.stem}-{name}", obj, obj, name, quality)

    for folder, prefix in (("ukbench-500", "ukbench"), ("fruits360-96", "fruit")):
        sources = sorted((data / folder).glob("*.jpg"))
        for n, source in enumerate(sources):
            obj = f"{prefix}-{n // 4:03d}"
            if n % 4 == 0:
                family(source, obj, big=False)
            elif prefix == "ukbench":
                with Image.open(source) as opened:
                    save(opened.convert("RGB"), source.stem, f"{obj}-{source.stem}", obj, "other view", 95)
    photos = sorted(p for p in (data / "photos").iterdir() if image_suffix(p.name))
    for n, source in enumerate(photos):
        obj = f"photo-{n:03d}"
        if n % SCENE_EVERY:
            family(source, obj, big=True)
            continue
        with Image.open(source) as opened:
            img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        img.thumbnail((VARIANT_SIZE, VARIANT_SIZE))
        for k, crop in enumerate(_scene_crops(img)):
            save(crop, f"scene-{k}", f"{obj}-scene-{k}", obj, "other shot", QUALITY)
    with open(out / "truth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "family", "object", "role"])
        writer.writerows(rows)
    return len(rows)


def make_format_triples(
    originals: Path, out: Path, count: int, side: int = 1600
) -> list[tuple[Path, Path, Path]]:
    """For the first ``count`` photos in ``originals``: the photo as a JPEG (at most ``side`` px, EXIF
    orientation applied), its HEIC re-encode, and a half-size AVIF of it, in ``out/<stem>/``. The HEIC
    needs pillow-heif; Pillow writes AVIF itself. Both are encoded at their encoders' fast settings
    (x265's ``ultrafast`` preset, as a phone's hardware encoder is quick; libaom at speed 8): a
    1600-pixel HEIC takes half a second instead of five, and the pictures differ as little."""
    from catalog.ingest.formats import heif_ready

    if not heif_ready():
        raise UsageError("making HEIC copies needs the [heif] extra (pip install 'catalog[heif]')")
    sources = sorted(p for p in originals.iterdir() if p.is_file() and image_suffix(p.name))[:count]
    triples = []
    for source in sources:
        with Image.open(source) as opened:
            opened.draft("RGB", (side, side))  # a JPEG decoded at the smallest scale that is still larger
            img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        img.thumbnail((side, side))
        folder = out / source.stem
        folder.mkdir(parents=True, exist_ok=True)
        jpeg, heic, avif = folder / "photo.jpg", folder / "photo.heic", folder / "half.avif"
        img.save(jpeg, quality=90)
        img.save(heic, format="HEIF", quality=80, enc_params={"preset": "ultrafast"})
        half = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
        half.save(avif, quality=70, speed=8)
        triples.append((jpeg, heic, avif))
    return triples


def make_dng(source: Path, target: Path, bits: int = 12) -> Path:
    """A camera-RAW version of a photo: its pixels made linear and laid out as an RGGB Bayer mosaic,
    written as an Adobe DNG (through PiDNG), which LibRaw demosaics like a camera's file."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import (
        CalibrationIlluminant,
        CFAPattern,
        DNGVersion,
        Orientation,
        PhotometricInterpretation,
    )

    with Image.open(source) as opened:
        rgb = np.asarray((ImageOps.exif_transpose(opened) or opened).convert("RGB"), dtype=np.float64)
    linear = (rgb / 255.0) ** 2.2
    height, width = linear.shape[0] // 2 * 2, linear.shape[1] // 2 * 2
    linear = linear[:height, :width]
    top = (1 << bits) - 1
    mosaic = np.empty((height, width), dtype=np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0] * top
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1] * top
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1] * top
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2] * top
    one, zero = [1, 1], [0, 1]
    tags = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, width),
        (Tag.ImageLength, height),
        (Tag.TileWidth, width),
        (Tag.TileLength, height),
        (Tag.Orientation, Orientation.Horizontal),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1),
        (Tag.BitsPerSample, bits),
        (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, 0),
        (Tag.WhiteLevel, top),
        (Tag.ColorMatrix1, [one, zero, zero, zero, one, zero, zero, zero, one]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [one, one, one]),
        (Tag.Make, "catalog"),
        (Tag.Model, "test DNG"),
        (Tag.DNGVersion, DNGVersion.V1_4),
        (Tag.DNGBackwardVersion, DNGVersion.V1_2),
    ):
        tags.set(tag, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = RAW2DNG()
    writer.options(tags, path=str(target.parent) + "/")
    writer.convert(mosaic, filename=target.stem)
    return target.with_suffix(".dng")


def synthetic(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct picture per seed: a colour gradient with random shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    colours = rng.random((2, 3))
    pixels = (x * colours[0] + y * colours[1]) * 255 / 2
    img = Image.fromarray(np.broadcast_to(pixels, (h, w, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return img
