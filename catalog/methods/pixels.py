"""The founding article's pixel methods: Euclidean distance, cosine similarity and SSIM.

The article compares whole images resized to one fixed size, so its formulas need equal sizes and every
comparison decodes both files again. Here each image is reduced once, at indexing time, to a small
thumbnail of fixed size that is stored as its signature: any two images compare, and a comparison reads
two signatures. Sizes were chosen by measurement on ``../shared/data`` (BENCHMARKS.md): 16 x 16 RGB for
Euclidean and cosine, 32 x 32 gray for SSIM.

The article's Euclidean accuracy of 0 % comes from subtracting ``uint8`` arrays (differences wrap
around modulo 256); these signatures are converted to floating point before any arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from catalog.methods import VectorMethod, register

if TYPE_CHECKING:
    import numpy as np

    from catalog.ingest.imaging import Decoded

#: Side of the RGB thumbnail of ``euclidean`` and ``cosine`` (768 bytes a signature).
THUMB_SIDE = 16
#: Side of the grayscale thumbnail of ``ssim`` (1 KB a signature).
SSIM_SIDE = 32
#: SSIM as scikit-image computes it by default: a 7 x 7 uniform window, sample covariance.
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: Pairs scored at a time by the vectorised SSIM (bounds memory at a few tens of MB).
SSIM_CHUNK = 2048


class ThumbnailMethod(VectorMethod):
    """A fixed-size RGB thumbnail (area-averaged, aspect squashed) stored as ``uint8`` bytes."""

    side: ClassVar[int] = THUMB_SIDE

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"rgb{self.side}-box"

    def prepare(self, image: Decoded) -> bytes:
        from PIL import Image

        return image.rgb.resize((self.side, self.side), Image.Resampling.BOX).tobytes()

    def pixels(self, values: list[bytes]) -> np.ndarray:
        """Signatures -> float64 rows with values in [0, 1]."""
        import numpy as np

        if not values:
            return np.zeros((0, 3 * self.side * self.side))
        return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), -1) / 255.0


@register
class PixelEuclidean(ThumbnailMethod):
    """Root-mean-square difference of the thumbnails' pixels (Euclidean distance / sqrt(size)): 0 for
    equal thumbnails, 1 for black against white, whatever the thumbnail size."""

    name = "euclidean"
    index_space = "l2"
    higher_is_similar = False
    #: Photos' altered copies among UKBench distractors: 99.3 % pair precision, 24.6 % of copy pairs
    #: (benchmarks/thresholds.py, BENCHMARKS.md).
    default_threshold = 0.05
    threshold_range = (0.0, 1.0)
    unlike_score = 1.0
    score_kind = "RMS pixel difference of 16x16 thumbnails (0 = same, 1 = black vs white)"
    description = "pixel Euclidean distance (root mean square) on 16x16 RGB thumbnails"
    finds = "re-encoded and resized copies; not crops, borders, mirrors or grayscale"

    def score(self, a: bytes, b: bytes) -> float:
        return float(self.score_pairs([a], [b])[0])

    def score_pairs(self, a: list[bytes], b: list[bytes]) -> np.ndarray:
        import numpy as np

        return np.sqrt(np.mean((self.pixels(a) - self.pixels(b)) ** 2, axis=1))

    def index_vectors(self, values: list[bytes]) -> np.ndarray:
        import numpy as np

        pixels = self.pixels(values)
        return (pixels / np.sqrt(max(pixels.shape[1], 1))).astype(np.float32)  # squared L2 = mean square

    def from_index(self, distances: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.sqrt(np.maximum(distances, 0.0))  # hnswlib's l2 space gives squared distances

    def index_radius(self, threshold: float) -> float:
        return threshold * threshold


@register
class PixelCosine(ThumbnailMethod):
    """Cosine similarity of the thumbnails' pixel vectors, as the article computes it on whole images.
    A black thumbnail (no direction) counts as a flat gray one."""

    name = "cosine"
    index_space = "cosine"
    higher_is_similar = True
    #: Photos' altered copies among UKBench distractors: 99.1 % pair precision, 40.5 % of copy pairs
    #: (benchmarks/thresholds.py, BENCHMARKS.md).
    default_threshold = 0.994
    threshold_range = (0.0, 1.0)
    identical_score, unlike_score = 1.0, 0.0
    score_kind = "cosine similarity of 16x16 thumbnails' pixels (1 = same)"
    description = "pixel cosine similarity on 16x16 RGB thumbnails"
    finds = "re-encoded and resized copies; not crops, borders, mirrors or grayscale"

    def score(self, a: bytes, b: bytes) -> float:
        return float(self.score_pairs([a], [b])[0])

    def score_pairs(self, a: list[bytes], b: list[bytes]) -> np.ndarray:
        import numpy as np

        return np.clip(np.sum(self.unit(a) * self.unit(b), axis=1), -1.0, 1.0)

    def unit(self, values: list[bytes]) -> np.ndarray:
        import numpy as np

        pixels = self.pixels(values)
        pixels[~pixels.any(axis=1)] = 1.0
        return pixels / np.linalg.norm(pixels, axis=1, keepdims=True)

    def index_vectors(self, values: list[bytes]) -> np.ndarray:
        import numpy as np

        return self.unit(values).astype(np.float32)

    def from_index(self, distances: np.ndarray) -> np.ndarray:
        return 1.0 - distances

    def index_radius(self, threshold: float) -> float:
        return 1.0 - threshold


@register
class Ssim(VectorMethod):
    """Structural similarity (Wang et al. 2004) of 32 x 32 grayscale thumbnails.

    One pair is scored by scikit-image's ``structural_similarity``; many pairs by :func:`ssim_batch`, the
    same computation vectorised (tested equal). SSIM has no index of its own: the HNSW index holds
    zero-mean, unit-length 16 x 16 versions of the thumbnails (so nearness there is correlation, SSIM's
    structure term) and proposes candidates, which SSIM then scores.
    """

    name = "ssim"
    index_space = "l2"
    index_is_exact = False
    higher_is_similar = True
    needs_color = False
    #: Photos' altered copies among UKBench distractors: 84 % of copy pairs at 99 % pair precision
    #: (benchmarks/thresholds.py, BENCHMARKS.md).
    default_threshold = 0.65
    threshold_range = (0.0, 1.0)
    identical_score, unlike_score = 1.0, 0.0
    score_kind = "SSIM of 32x32 grayscale thumbnails (1 = same)"
    description = "structural similarity (SSIM) on 32x32 grayscale thumbnails"
    finds = "re-encoded and resized copies; not crops, borders, mirrors or grayscale"
    version = f"gray{SSIM_SIDE}-y/w{SSIM_WINDOW}"

    def prepare(self, image: Decoded) -> bytes:
        return image.gray(SSIM_SIDE).tobytes()

    def grays(self, values: list[bytes]) -> np.ndarray:
        import numpy as np

        if not values:
            return np.zeros((0, SSIM_SIDE, SSIM_SIDE), dtype=np.uint8)
        return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(-1, SSIM_SIDE, SSIM_SIDE)

    def score(self, a: bytes, b: bytes) -> float:
        from skimage.metrics import structural_similarity

        x, y = self.grays([a, b])
        return float(
            structural_similarity(x, y, win_size=SSIM_WINDOW, data_range=255, K1=SSIM_K1, K2=SSIM_K2)
        )

    def score_pairs(self, a: list[bytes], b: list[bytes]) -> np.ndarray:
        import numpy as np

        chunks = [  # thumbnails converted chunk by chunk: memory stays flat however many pairs
            ssim_batch(self.grays(a[s : s + SSIM_CHUNK]), self.grays(b[s : s + SSIM_CHUNK]))
            for s in range(0, len(a), SSIM_CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0)

    def index_vectors(self, values: list[bytes]) -> np.ndarray:
        import numpy as np

        grays = self.grays(values).astype(np.float64)
        half = SSIM_SIDE // 2
        pooled = grays.reshape(-1, half, 2, half, 2).mean(axis=(2, 4)).reshape(len(grays), -1)
        pooled -= pooled.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.divide(pooled, norms, out=np.zeros_like(pooled), where=norms > 0).astype(np.float32)

    def from_index(self, distances: np.ndarray) -> np.ndarray:
        raise TypeError("SSIM scores come from score_pairs, not from the index")

    def index_radius(self, threshold: float) -> float:
        raise TypeError("SSIM matches are decided by score_pairs, not by an index radius")


def ssim_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean SSIM of each pair of equal-size grayscale ``uint8`` images (x[k], y[k]).

    What ``skimage.metrics.structural_similarity(x[k], y[k], data_range=255)`` computes with its
    defaults (uniform 7 x 7 window, sample covariance, mean over the window positions that lie inside
    the image), for a whole batch at once through summed-area tables.
    """
    import numpy as np

    area = SSIM_WINDOW * SSIM_WINDOW
    covariance_norm = area / (area - 1.0)
    x = x.astype(np.int32)
    y = y.astype(np.int32)
    ux, uy, uxx, uyy, uxy = _window_sums(np.stack([x, y, x * x, y * y, x * y])) / area
    vx = covariance_norm * (uxx - ux * ux)
    vy = covariance_norm * (uyy - uy * uy)
    vxy = covariance_norm * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(axis=(1, 2))


def _window_sums(a: np.ndarray) -> np.ndarray:
    """Sums over every SSIM_WINDOW x SSIM_WINDOW window that lies inside the images (last two axes),
    from an integer summed-area table: exact, whatever the order of additions. int32 holds the sum of
    a whole 32 x 32 image of 255 * 255 products (66 M) with room to spare."""
    import numpy as np

    table = np.zeros((*a.shape[:-2], a.shape[-2] + 1, a.shape[-1] + 1), dtype=np.int32)
    np.cumsum(a, axis=-2, out=table[..., 1:, 1:])
    np.cumsum(table[..., 1:, 1:], axis=-1, out=table[..., 1:, 1:])
    w = SSIM_WINDOW
    return table[..., w:, w:] - table[..., :-w, w:] - table[..., w:, :-w] + table[..., :-w, :-w]
