"""What to feed the CNN: pair recall per alteration at pair precision >= 0.99, input recipe by recipe.

On the near-miss mixture of benchmarks/near_misses.py (reused with ``--keep DIR``), every image is
decoded as at indexing time and embedded under each recipe; all pairs are scored by cosine similarity
(no grouping, no verification, no turned search: the features alone), all by PyTorch's float model (the
int8 graph `catalog index` runs takes the luminance only). For each recipe: the threshold
with the best recall at pair precision >= 0.99 over all pairs, recall of all copy pairs there, and the
share of each alteration's copies whose pair with their original is within it.

    .venv/bin/python benchmarks/cnn_inputs.py --keep DIR
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from catalog.evaluation.variants import make_mixture
from catalog.ingest.imaging import content_box, decode, trim_border
from catalog.methods import get_method
from catalog.methods.cnn import INPUT_SIZE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def square(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR))


RECIPES = {
    "RGB (before)": lambda d: [square(d.rgb)],
    "luma": lambda d: [square(d.luma)],
    "RGB, border trimmed": lambda d: [square(d.rgb.crop(trim_box(d)))],
    "luma, border trimmed": lambda d: [square(trim_border(d.luma))],
    "luma, trimmed, mirror-averaged (catalog)": lambda d: [
        square(trim_border(d.luma)),
        square(ImageOps.mirror(trim_border(d.luma))),
    ],
}


def trim_box(decoded):  # type: ignore[no-untyped-def]
    return content_box(decoded.luma) or (0, 0, *decoded.luma.size)


def evaluate(features: np.ndarray, family: np.ndarray, role: np.ndarray) -> dict[str, float]:
    similarity = features @ features.T
    upper = np.triu_indices(len(features), 1)
    scores, positive = similarity[upper], (family[:, None] == family[None, :])[upper]
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(positive[order])
    precision = hits / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision >= 0.99)[0]
    at = ok.max() if len(ok) else 0
    threshold = float(scores[order][at])
    result = {"threshold": threshold, "recall": float(hits[at] / positive.sum())}
    reference = {f: k for k, (f, r) in enumerate(zip(family, role, strict=True)) if r == "reference"}
    for name in sorted(set(role) - {"reference", "other view", "other shot"}):
        copies = np.nonzero(role == name)[0]
        originals = np.array([reference[family[k]] for k in copies])
        result[name] = float(np.mean(similarity[originals, copies] >= threshold))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    root = args.keep / "mixture"
    if not (root / "truth.csv").exists():
        make_mixture(args.data, root)
    with open(root / "truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    family = np.array([r["family"] for r in rows])
    role = np.array([r["role"] for r in rows])
    embedder = get_method("cnn").embedder
    inputs: dict[str, list[list[np.ndarray]]] = {name: [] for name in RECIPES}
    for row in rows:
        decoded = decode((root / row["file"]).read_bytes())
        for name, recipe in RECIPES.items():
            inputs[name].append(recipe(decoded))
    print(f"{len(rows)} images\n", file=sys.stderr)
    table = []
    for name, arrays in inputs.items():
        views = len(arrays[0])
        started = time.perf_counter()
        flat = embedder.embed_rgb([a for per_image in arrays for a in per_image])
        ms = (time.perf_counter() - started) / len(arrays) * 1000
        features = flat.reshape(len(arrays), views, -1).sum(axis=1)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        table.append((name, ms, evaluate(features, family, role)))
    alterations = [k for k in table[0][2] if k not in ("threshold", "recall")]
    print("| input | model ms/image | threshold at P>=0.99 | recall | " + " | ".join(alterations) + " |")
    print("|" + "---|" * (4 + len(alterations)))
    for name, ms, result in table:
        cells = " | ".join(f"{result[a]:.2f}" for a in alterations)
        print(f"| {name} | {ms:.1f} | {result['threshold']:.3f} | {result['recall']:.3f} | {cells} |")


if __name__ == "__main__":
    main()
