"""Writes catalog/methods/data/calibration.jpg: the pictures int8 quantisation of the CNN is calibrated on.

30 of the sample camera photos (every other one of ../shared/data/photos, sorted by name), each as the
cnn method sees it (the trimmed luminance squashed to the input size), side by side in one grayscale JPEG
strip. Run once; the strip ships in the package, so quantising a model needs no images of the user's.

    .venv/bin/python scripts/make_calibration.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from catalog.config import DEFAULT_CNN
from catalog.ingest.imaging import decode
from catalog.methods.cnn import CALIBRATION, CALIBRATION_PICTURES, INPUT_SIZE, CnnCosine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    photos = sorted((args.data / "photos").glob("*.jpg"))[::2][:CALIBRATION_PICTURES]
    method = CnnCosine(DEFAULT_CNN)
    strip = np.concatenate([method.prepare(decode(p.read_bytes())) for p in photos], axis=1)
    assert strip.shape == (INPUT_SIZE, INPUT_SIZE * CALIBRATION_PICTURES)
    Image.fromarray(strip).save(CALIBRATION, quality=92)
    print(f"wrote {CALIBRATION} ({CALIBRATION.stat().st_size:,} bytes, {len(photos)} pictures)")


if __name__ == "__main__":
    main()
