"""Why the article's Euclidean distance scores 0 % on Fruits-360: uint8 subtraction wraps around.

The article's protocol on fruits360-96 (RGB resized to 100 x 100, the 3 nearest of each reference) with
the distance computed three ways: numpy on the uint8 arrays as decoded (a - b wraps modulo 256), scipy's
``distance.euclidean`` on the same arrays (it subtracts them as they are, wrapping too), and on floats.

    .venv/bin/python benchmarks/euclidean_flaw.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial import distance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fruits360-96"


def accuracy(pixels: list[np.ndarray], measure: Callable[[np.ndarray, np.ndarray], float]) -> float:
    groups = np.arange(len(pixels)) // 4
    hits = 0
    for ref in range(0, len(pixels), 4):
        distances = np.array([measure(pixels[ref], other) for other in pixels])
        distances[ref] = np.inf
        top = np.argsort(distances, kind="stable")[:3]
        hits += int(np.sum(groups[top] == groups[ref]))
    return 100.0 * hits / (3 * len(pixels) // 4)


def main() -> None:
    files = sorted(DATA.glob("*.jpg"))
    pixels = []
    for path in files:
        with Image.open(path) as img:
            pixels.append(np.asarray(img.convert("RGB").resize((100, 100))).ravel())
    as_float = [p.astype(np.float64) for p in pixels]
    rows = [
        ("numpy linalg.norm(a - b), uint8", pixels, norm),
        ("scipy distance.euclidean(a, b), uint8", pixels, distance.euclidean),
        ("numpy linalg.norm(a - b), float", as_float, norm),
    ]
    print("| distance | accuracy % |")
    print("|---|---|")
    for label, arrays, measure in rows:
        print(f"| {label} | {accuracy(arrays, measure):.2f} |")


def norm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


if __name__ == "__main__":
    main()
