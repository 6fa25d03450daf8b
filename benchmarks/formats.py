"""Indexing throughput per format, per megapixel, on the same pictures.

The real HEIC photos of ../shared/data/formats/heic (phones, 1.4-12 MP) are decoded in full once, and
their pixels saved as JPEG (quality 90), AVIF (quality 70), WebP (quality 85) and DNG (a Bayer mosaic,
through PiDNG): each set holds the same pictures at the same sizes. Each set is indexed on its own new
catalogue with the default methods (`catalog.sync.indexer.index`, 2 processes), best of 3 runs. HEIC is
indexed as it comes (the embedded thumbnail serves where the file has one large enough) and with
thumbnails ignored, and the phash of each way is compared with the full decode's.

    .venv/bin/python benchmarks/formats.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from catalog.evaluation.variants import make_dng
from catalog.ingest.formats import heif_ready
from catalog.store import Catalog
from catalog.sync.indexer import index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def readable_heic() -> list[Path]:
    found = []
    for path in sorted((DATA / "formats" / "heic").iterdir()):
        try:
            with Image.open(path) as img:
                img.load()
            found.append(path)
        except Exception:  # noqa: BLE001 - the damaged samples
            continue
    return found


def timed_index(folder: Path, work: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        db = Path(tempfile.mktemp(suffix=".db", dir=work))
        with Catalog.open(f"sqlite:///{db}") as catalog:
            started = time.perf_counter()
            report = index(catalog, [str(folder)], workers=2)
            best = min(best, time.perf_counter() - started)
            assert not report.errors, report.errors
    return best


def phash_bits(data: bytes, suffix: str) -> int:
    from catalog.ingest.imaging import decode
    from catalog.methods import get_method

    method = get_method("phash")
    value = method.prepare(decode(data, suffix=suffix))
    return int.from_bytes(value[:8], "big")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=8, help="each picture this many times (distinct files)")
    args = parser.parse_args()
    assert heif_ready(), "needs the [heif] extra"
    work = Path(tempfile.mkdtemp(prefix="catalog-formats-bench-"))
    try:
        sets = {
            name: work / name for name in ("heic", "jpeg", "avif", "webp", "dng", "heic-thumb", "jpeg-thumb")
        }
        for folder in sets.values():
            folder.mkdir()
        megapixels = subset_mp = 0.0
        sources = readable_heic()
        for k, path in enumerate(sources):
            shutil.copyfile(path, sets["heic"] / f"{k:02d}.heic")
            with Image.open(path) as img:
                rgb = img.convert("RGB")
                if img.info.get("thumbnails"):  # the files that carry a thumbnail, and their JPEGs
                    shutil.copyfile(path, sets["heic-thumb"] / f"{k:02d}.heic")
                    rgb.save(sets["jpeg-thumb"] / f"{k:02d}.jpg", quality=90)
                    thumb_mp = rgb.width * rgb.height / 1e6
                    subset_mp = subset_mp + thumb_mp
            megapixels += rgb.width * rgb.height / 1e6
            rgb.save(sets["jpeg"] / f"{k:02d}.jpg", quality=90)
            rgb.save(sets["avif"] / f"{k:02d}.avif", quality=70)
            rgb.save(sets["webp"] / f"{k:02d}.webp", quality=85)
            make_dng(sets["jpeg"] / f"{k:02d}.jpg", sets["dng"] / f"{k:02d}.dng")
        for folder in sets.values():  # enough files that the pool's start-up does not count
            for path in sorted(folder.iterdir()):
                for c in range(1, args.copies):
                    shutil.copyfile(path, folder / f"{path.stem}-{c}{path.suffix}")
        n = len(sources) * args.copies
        megapixels *= args.copies
        subset_mp *= args.copies
        with_thumbs_files = len(list(sets["heic-thumb"].iterdir()))
        rows = []
        for name, folder in sets.items():
            seconds = timed_index(folder, work, args.repeat)
            rows.append((name, seconds))
        # HEIC with its embedded thumbnails ignored: the full decode every time.
        import pillow_heif.as_plugin as plugin

        chooser = plugin._thumbnail_for_size
        plugin._thumbnail_for_size = lambda image, size: None  # type: ignore[assignment]
        try:
            full = timed_index(sets["heic"], work, args.repeat)
            full_bits = [phash_bits(p.read_bytes(), ".heic") for p in sorted(sets["heic"].glob("??.heic"))]
        finally:
            plugin._thumbnail_for_size = chooser
        thumb_bits = [phash_bits(p.read_bytes(), ".heic") for p in sorted(sets["heic"].glob("??.heic"))]
        jpeg_bits = [phash_bits(p.read_bytes(), ".jpg") for p in sorted(sets["jpeg"].glob("??.jpg"))]
        with_thumbs = sum(
            1
            for p in sources
            if [t for t in Image.open(io.BytesIO(p.read_bytes())).info.get("thumbnails", [])]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{len(sources)} pictures x {args.copies} files = {n} files, {megapixels:.0f} MP in all "
        f"({with_thumbs} of the {len(sources)} HEIC pictures carry a thumbnail)"
    )
    print("| format | seconds | images/s | MP/s | MP/s vs JPEG |")
    print("|---|---|---|---|---|")
    times = dict(rows)
    jpeg_rate = megapixels / times["jpeg"]
    for name, seconds in [*rows, ("heic, thumbnails ignored", full)]:
        if name.endswith("-thumb"):
            continue
        rate = megapixels / seconds
        print(f"| {name} | {seconds:.2f} | {n / seconds:.1f} | {rate:.1f} | {rate / jpeg_rate:.2f} |")
    rate, jpeg_rate = subset_mp / times["heic-thumb"], subset_mp / times["jpeg-thumb"]
    print(
        f"| heic with a thumbnail ({with_thumbs_files} files, {subset_mp:.0f} MP) "
        f"| {times['heic-thumb']:.2f} | {with_thumbs_files / times['heic-thumb']:.1f} | {rate:.1f} "
        f"| {rate / jpeg_rate:.2f} (vs their JPEGs) |"
    )
    distance = [bin(a ^ b).count("1") for a, b in zip(thumb_bits, full_bits, strict=True)]
    to_jpeg = [bin(a ^ b).count("1") for a, b in zip(thumb_bits, jpeg_bits, strict=True)]
    print(f"phash bits between HEIC as indexed and its full decode: {distance} (max {max(distance)})")
    print(f"phash bits between HEIC as indexed and its JPEG: {to_jpeg} (max {max(to_jpeg)})")


if __name__ == "__main__":
    main()
