"""Exact duplicates by content hash, and the perceptual hashes of imagehash (64-bit codes)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from catalog.errors import UsageError
from catalog.methods import Method, register

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from catalog.ingest.imaging import Decoded


@register
class ExactMethod(Method):
    """Byte-identical files: the signature is the SHA-256 content hash kept on every image row."""

    name = "exact"
    version = "sha256"
    kind = "key"
    default_threshold = 0
    higher_is_similar = False
    score_kind = "equal (0) or not (1)"
    needs_pixels = False
    description = "byte-identical files (SHA-256 of the content)"
    finds = "byte-identical files only"
    from_content_hash = True
    unlike_score = 1.0
    whole_scores = True

    def checked_threshold(self, threshold: float) -> float:
        if threshold != 0:
            raise UsageError(f"{self.name} matches equal files only: it takes no --threshold")
        return 0

    def threshold_at(self, percent: float) -> float:
        if percent == 0:
            raise UsageError(f"{self.name} matches equal files only (100 %): it takes no --similarity 0")
        return super().threshold_at(percent)

    def prepare(self, image: Decoded) -> bytes:
        raise TypeError("exact signatures come from the file bytes, not from pixels")

    def score(self, a: bytes, b: bytes) -> float:
        return 0.0 if a == b else 1.0


def pack_bits(bits: np.ndarray) -> bytes:
    """imagehash's 8x8 boolean array -> 8 bytes, most significant bit first."""
    import numpy as np

    return np.packbits(bits.flatten()).tobytes()


def hamming(a: bytes, b: bytes) -> int:
    """Bits that differ between two codes."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


#: The 8 turns and mirror-turns of a picture (the dihedral group), identity first: Pillow's
#: ``Image.Transpose`` name, and the same move as steps on an array of rows: ``T`` transposes, ``LR``
#: reverses each row, ``UD`` reverses the rows (applied in order).
DIHEDRAL: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    (None, ()),
    ("FLIP_LEFT_RIGHT", ("LR",)),
    ("ROTATE_90", ("T", "UD")),
    ("ROTATE_180", ("LR", "UD")),
    ("ROTATE_270", ("T", "LR")),
    ("TRANSPOSE", ("T",)),
    ("TRANSVERSE", ("LR", "UD", "T")),
    ("FLIP_TOP_BOTTOM", ("UD",)),
)


def moved(array: np.ndarray, steps: tuple[str, ...]) -> np.ndarray:
    """``array`` (rows of pixels or of hash bits) turned or mirrored by ``steps`` (see DIHEDRAL)."""
    for step in steps:
        array = array.T if step == "T" else array[:, ::-1] if step == "LR" else array[::-1]
    return array


class ImageHashMethod(Method):
    """A 64-bit imagehash code compared by Hamming distance.

    The signature holds 8 codes: the picture's own, then those of its 7 other turns and mirror-turns
    (:data:`DIHEDRAL`), all hashed from the one shared 64x64 view, so that ``--transforms`` finds a
    mirrored or turned copy by comparing one image's turned codes with the other's own. Searches without
    it read the first code only.

    Default thresholds come from benchmarks/near_misses.py (BENCHMARKS.md): the largest distance that
    keeps pair precision at 0.99 or more among near-misses (other views of one object, other shots of
    one scene) as well as unrelated photos.
    """

    kind = "bits"
    unlike_score = 64.0  # bits
    whole_scores = True
    higher_is_similar = False
    needs_color = False
    score_kind = "hamming distance (bits of 64)"
    hash_function: ClassVar[Callable[..., Any]]
    hash_kwargs: ClassVar[dict[str, Any]] = {}
    #: Modules imagehash imports lazily for this hash.
    libraries: ClassVar[tuple[str, ...]] = ()

    def checked_threshold(self, threshold: float) -> float:
        if threshold != int(threshold) or not 0 <= threshold <= 64:
            raise UsageError(f"--threshold for {self.name} is a whole number of bits from 0 to 64")
        return int(threshold)

    def prepare(self, image: Decoded) -> bytes:
        return b"".join(pack_bits(bits) for bits in self.dihedral_bits(image.picture_gray(64)))

    def dihedral_bits(self, view: Image.Image) -> list[np.ndarray]:
        """The 8x8 bits of the view and of its turns and mirror-turns, in DIHEDRAL order.

        For ahash and whash the bits of a turned picture are the turned bits (both average square
        blocks, then compare each with the mean or median), so the picture is hashed once; phash and
        dhash derive theirs from what they compute (see their overrides)."""
        bits = self.bits(view)
        return [moved(bits, steps) for _, steps in DIHEDRAL]

    def bits(self, view: Image.Image) -> np.ndarray:
        """The 8x8 boolean hash of a 64x64 grayscale view (imagehash's)."""
        # imagehash resizes to at most 64x64 itself; starting from the shared 64x64 grayscale view makes
        # that resize trivial instead of four Lanczos passes over the working copy.
        fn = type(self).hash_function
        return fn(view, hash_size=8, **self.hash_kwargs).hash  # type: ignore[no-any-return]

    def code(self, view: Image.Image) -> bytes:
        """The 8-byte (upright) code of a 64x64 grayscale view."""
        return pack_bits(self.bits(view))

    def score(self, a: bytes, b: bytes) -> float:
        return float(hamming(a[:8], b[:8]))

    def turned_score(self, a: bytes, b: bytes) -> float:
        """Fewest bits between one picture's own code and the other's codes of any turn."""
        pairs = [(a[k : k + 8], b[:8]) for k in range(0, len(a), 8)]
        pairs += [(a[:8], b[k : k + 8]) for k in range(0, len(b), 8)]
        return float(min(hamming(x, y) for x, y in pairs))

    def score_pairs(self, a: list[bytes], b: list[bytes]) -> np.ndarray:
        return popcount(codes_from_bytes(a) ^ codes_from_bytes(b)).astype(float)

    def warm_up(self) -> None:
        import imagehash  # noqa: F401

        for module in self.libraries:
            __import__(module)


def _imagehash(name: str) -> Callable[..., Any]:
    """imagehash (and its scipy/PyWavelets imports) loads only when a hash is first computed."""

    def call(*args: Any, **kwargs: Any) -> Any:
        import imagehash

        return getattr(imagehash, name)(*args, **kwargs)

    return call


@register
class AverageHash(ImageHashMethod):
    name = "ahash"
    version = "imagehash-4-ahash-8-y64-d8-trim"
    default_threshold = 0
    description = "average hash: 8x8 grayscale, one bit per pixel above/below the mean"
    finds = "grayscale and resized copies: 23 % of copies"
    hash_function = staticmethod(_imagehash("average_hash"))


@register
class PerceptualHash(ImageHashMethod):
    name = "phash"
    version = "imagehash-4-phash-8-y64-d8-trim"
    default_threshold = 6
    description = "perceptual hash: low frequencies of a 32x32 DCT"
    finds = "re-encoded, resized, grayscale and framed copies: 43 % of copies; not crops, turns, mirrors"
    hash_function = staticmethod(_imagehash("phash"))

    def bits(self, view: Image.Image) -> np.ndarray:
        """imagehash.phash, bit for bit (tests compare them), with its two SciPy DCTs written as one
        8x32 matrix product: importing scipy.fftpack costs each worker process a quarter second, more
        than hashing a hundred photos."""
        low = self._low(view)
        return low > _median(low)  # type: ignore[no-any-return]

    def dihedral_bits(self, view: Image.Image) -> list[np.ndarray]:
        """A turned picture's DCT is the turned DCT with the signs of odd frequencies flipped along each
        reversed axis: the 8x8 low frequencies are computed once, then compared with their median."""
        import numpy as np

        low = self._low(view)
        odd = np.where(np.arange(8) % 2, -1.0, 1.0)
        out = []
        for _, steps in DIHEDRAL:
            moved_low = low
            for step in steps:
                if step == "T":
                    moved_low = moved_low.T
                elif step == "LR":
                    moved_low = moved_low * odd[None, :]
                else:
                    moved_low = moved_low * odd[:, None]
            out.append(moved_low > _median(moved_low))
        return out

    def _low(self, view: Image.Image) -> np.ndarray:
        import numpy as np
        from PIL import Image

        pixels = np.asarray(view.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
        return _dct_basis() @ pixels @ _dct_basis().T  # type: ignore[no-any-return]


def _median(values: np.ndarray) -> float:
    """``np.median`` of finite values, as it computes it (the mean of the two middle values of an even
    count), without its check for NaN, which imports ``numpy.ma`` (30 ms in each worker process)."""
    import numpy as np

    flat = values.ravel()
    half = len(flat) // 2
    if len(flat) % 2:
        return float(np.partition(flat, half)[half])
    middle = np.partition(flat, (half - 1, half))
    return float((middle[half - 1] + middle[half]) / 2)


@cache
def _dct_basis() -> np.ndarray:
    """The first 8 rows of scipy.fftpack's unnormalised DCT-II matrix for 32 samples."""
    import numpy as np

    k = np.arange(8)[:, None]
    n = np.arange(32)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / 64)


@register
class DifferenceHash(ImageHashMethod):
    name = "dhash"
    version = "imagehash-4-dhash-8-y64-d8-trim"
    default_threshold = 3
    description = "difference hash: horizontal gradients of a 9x8 grayscale"
    finds = "as phash: 39 % of copies"
    hash_function = staticmethod(_imagehash("dhash"))

    def dihedral_bits(self, view: Image.Image) -> list[np.ndarray]:
        """imagehash.dhash compares neighbours along the rows of a 9x8 reduction; a turn that swaps the
        axes needs the 8x9 reduction instead: both are made once and turned."""
        import numpy as np
        from PIL import Image

        wide = np.asarray(view.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
        tall = np.asarray(view.resize((8, 9), Image.Resampling.LANCZOS), dtype=np.int16)
        out = []
        for _, steps in DIHEDRAL:
            pixels = moved(tall if steps.count("T") % 2 else wide, steps)
            out.append(pixels[:, 1:] > pixels[:, :-1])
        return out


@register
class WaveletHash(ImageHashMethod):
    name = "whash"
    version = "imagehash-4-whash-haar-8-y64-d8-trim"
    default_threshold = 1
    description = "wavelet hash: Haar wavelet of a 64x64 grayscale"
    finds = "grayscale and resized copies: 29 % of copies"
    hash_function = staticmethod(_imagehash("whash"))
    libraries = ("pywt",)
    # A fixed scale: imagehash's default derives it from the decoded size, which would make the
    # signature depend on how small the file was decoded.
    hash_kwargs = {"image_scale": 64}


def codes_from_bytes(values: list[bytes]) -> np.ndarray:
    """Signatures of 8-byte big-endian codes -> uint64 array of their first (upright) codes."""
    import numpy as np

    if not values:
        return np.zeros(0, dtype=np.uint64)
    return np.frombuffer(b"".join(v[:8] for v in values), dtype=">u8").astype(np.uint64)


def all_codes(values: list[bytes]) -> np.ndarray:
    """Signatures of 8-byte codes -> (n, codes per signature) uint64 array (each signature must hold
    the same number of codes)."""
    import numpy as np

    if not values:
        return np.zeros((0, 0), dtype=np.uint64)
    return np.frombuffer(b"".join(values), dtype=">u8").astype(np.uint64).reshape(len(values), -1)


def popcount(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.bitwise_count(x)
