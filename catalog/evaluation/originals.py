"""A camera library with the copies people make of it, to measure whether the file kept is the original.

Each camera photo goes to ``Camera/`` byte for byte, its file dated when it was taken (EXIF), as a
camera or an import leaves it. Then the copies people make, each as the tool that makes it would:

- ``Backup/X.jpg``: byte-identical, with the same dates (``cp -p``, ``rsync -a``);
- ``Camera/X.heic``: a HEIC made from the JPEG (quality 90, EXIF kept), a day later;
- ``Downloads/X (1).jpg``: byte-identical, dated when it was downloaded;
- ``Exports/X.png``: a PNG conversion (no EXIF), ten days later;
- ``WhatsApp/IMG-…-WA….jpg``: a messenger's copy (long edge 1600, quality 70, no EXIF), two days later.

Every photo gets at least one copy, in turn, so that each kind of copy meets photos of every size.
:func:`original_share` reads ``dupes -f json`` and counts the groups whose reference is the original.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageOps

from catalog.errors import UsageError
from catalog.ingest.scan import image_suffix

DAY = 86_400
#: Where each kind of copy goes, by photo number: kinds whose test holds for number k.
KINDS = {
    "backup": lambda k: k % 3 == 0,
    "heic": lambda k: k % 3 == 1,
    "download": lambda k: k % 4 == 2,
    "png": lambda k: k % 5 == 3,
    "messenger": lambda k: k % 3 == 2,
}


def _taken(img: Image.Image, fallback: float) -> float:
    """When the photo was taken (EXIF DateTimeOriginal, else DateTime), in seconds since the epoch."""
    exif = img.getexif()
    text = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    try:
        return datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S").timestamp()
    except ValueError:
        return fallback


def _dated(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def camera_photos(folder: Path) -> list[Path]:
    """The photos of ``folder`` (``../shared/data/photos``), by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and image_suffix(p.name))


def make_camera_library(sources: Sequence[Path], out: Path) -> list[Path]:
    """Build the library in ``out`` from the camera photos ``sources``; returns the originals' paths in
    ``out/Camera``."""
    from catalog.ingest.formats import heif_ready

    if not heif_ready():
        raise UsageError("making HEIC copies needs the [heif] extra (pip install 'catalog[heif]')")
    for folder in ("Camera", "Backup", "Downloads", "Exports", "WhatsApp"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    made = []
    for k, source in enumerate(sources):
        with Image.open(source) as opened:
            taken = _taken(opened, fallback=1_100_000_000 + k * DAY)
            exif = opened.info.get("exif")
            picture = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
        original = out / "Camera" / source.name
        shutil.copyfile(source, original)
        _dated(original, taken)
        made.append(original)
        stem = source.stem
        if KINDS["backup"](k):
            shutil.copy2(original, out / "Backup" / source.name)
        if KINDS["heic"](k):
            heic = out / "Camera" / f"{stem}.heic"
            saved = {"exif": exif} if exif else {}
            picture.save(heic, format="HEIF", quality=90, enc_params={"preset": "ultrafast"}, **saved)
            _dated(heic, taken + DAY)
        if KINDS["download"](k):
            download = out / "Downloads" / f"{stem} (1){source.suffix}"
            shutil.copyfile(original, download)
            _dated(download, taken + 30 * DAY)
        if KINDS["png"](k):
            png = out / "Exports" / f"{stem}.png"
            picture.save(png)
            _dated(png, taken + 10 * DAY)
        if KINDS["messenger"](k):
            sent = picture.copy()
            sent.thumbnail((1600, 1600))
            resaved = out / "WhatsApp" / f"IMG-{k:04d}-WA0001.jpg"
            sent.save(resaved, quality=70)
            _dated(resaved, taken + 2 * DAY)
    return made


def original_share(groups: list[dict[str, object]], originals: list[Path]) -> tuple[int, int, list[str]]:
    """(groups whose reference is an original, groups that hold an original, the references that are
    not) of ``dupes -f json``'s groups."""
    wanted = {os.fspath(p) for p in originals}
    holding = [g for g in groups if any(im["path"] in wanted for im in g["images"])]  # type: ignore[attr-defined]
    wrong = [str(g["reference"]) for g in holding if g["reference"] not in wanted]
    return len(holding) - len(wrong), len(holding), wrong


def folder_rules_library(data: Path, root: Path, pictures: int = 1000) -> dict[str, int]:
    """A library to settle by folder rules: ``pictures`` real pictures (two crops of each UKBench photo),
    each a group of byte copies. All but 15 in ``Camera/``, each with a copy in ``Backup/Camera/`` and
    every third also in ``WhatsApp/Media/``; then 10 only in ``Backup/Old/`` and ``WhatsApp/Media/`` (an
    avoid rule decides them) and 5 only in two WhatsApp folders (left undecided). Returns how many of
    each."""
    sources = sorted((data / "ukbench-500").glob("*.jpg"))
    counts = {"camera": 0, "backup_whatsapp": 0, "whatsapp_only": 0}
    made = 0
    total = pictures
    for n, source in enumerate(sources):
        if made >= total:
            break
        with Image.open(source) as img:
            img.load()
            width, height = img.size
            halves = [img.crop((0, 0, width * 3 // 5, height)), img.crop((width * 2 // 5, 0, width, height))]
        for k, half in enumerate(halves):
            if made >= total:
                break
            made += 1
            if made <= pictures - 15:
                places = ["Camera", "Backup/Camera"] + (["WhatsApp/Media"] if made % 3 == 0 else [])
                counts["camera"] += 1
            elif made <= pictures - 5:
                places = ["Backup/Old", "WhatsApp/Media"]
                counts["backup_whatsapp"] += 1
            else:
                places = ["WhatsApp/Media", "WhatsApp/Sent"]
                counts["whatsapp_only"] += 1
            name = f"IMG_{n:04d}{k}.jpg"
            first = root / places[0] / name
            first.parent.mkdir(parents=True, exist_ok=True)
            half.save(first, quality=88)
            for place in places[1:]:
                (root / place).mkdir(parents=True, exist_ok=True)
                shutil.copy2(first, root / place / name)
    if made < total:
        raise UsageError(f"{data / 'ukbench-500'} holds too few photos for {pictures} pictures")
    return counts
