"""What the review page's compare view costs to find where two pictures differ
(``catalog.review.difference``), and what it says: a camera photo against copies made from it (a caption
bar, a re-encode at half size, a crop, an overlay, brightness, a 3-degree turn). The peer: decoding the
two pictures alone (what any viewer does).

    .venv/bin/python benchmarks/difference.py [--photo NAME]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from catalog.review.difference import difference

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def jpeg(img: Image.Image, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def copies(img: Image.Image) -> dict[str, bytes]:
    w, h = img.size
    bar = h // 6
    caption = Image.new("RGB", (w, h + bar), "white")
    caption.paste(img, (0, 0))
    ImageDraw.Draw(caption).text((w // 20, h + bar // 3), "when you see it", fill="black", font_size=bar // 3)
    caption.thumbnail((1080, 1080))
    overlay = img.copy()
    ImageDraw.Draw(overlay).rectangle((w * 0.6, h * 0.1, w * 0.9, h * 0.3), fill="red")
    return {
        "caption bar": jpeg(caption, 72),
        "re-encode, half size": jpeg(img.resize((w // 2, h // 2)), 60),
        "crop": jpeg(img.crop((w // 10, h // 10, w * 9 // 10, h * 95 // 100)), 90),
        "overlay": jpeg(overlay, 90),
        "brightness": jpeg(ImageEnhance.Brightness(img).enhance(1.3), 90),
        "turned 3 degrees": jpeg(img.rotate(3).crop((w // 20, h // 20, w - w // 20, h - h // 20)), 90),
    }


def picture(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (1024, 1024))
        shown = img.convert("RGB")
    shown.thumbnail((1024, 1024))  # as the page asks for it
    return np.asarray(shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="Canon_EOS_20D_(1).jpg")
    args = parser.parse_args()
    with Image.open(DATA / "photos" / args.photo) as opened:
        img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
    img.thumbnail((1600, 1600))
    original = jpeg(img, 95)
    print("| copy | decode both, ms (peer) | differences, ms | ratio | said |")
    print("|---|---|---|---|---|")
    for name, copy in copies(img).items():
        started = time.perf_counter()
        first, second = picture(original), picture(copy)
        decoded = time.perf_counter() - started
        started = time.perf_counter()
        found = difference(first, second)
        seconds = time.perf_counter() - started
        print(
            f"| {name} | {decoded * 1000:.0f} | {seconds * 1000:.0f} | {seconds / decoded:.0f}x | "
            f"{'; '.join(found.said)} |"
        )


if __name__ == "__main__":
    main()
