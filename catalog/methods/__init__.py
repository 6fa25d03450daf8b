"""The Method interface and the registry of methods by name.

A method turns decoded images into signatures (bytes) once, at indexing time, and scores two signatures.
Search structures are chosen by the signature ``kind``, not by the method:

- ``key``: equal or not (the content hash);
- ``bits``: 64-bit codes compared by Hamming distance;
- ``vector``: vectors (CNN features, pixel thumbnails) - searched through an HNSW index
  (:class:`VectorMethod`);
- ``local``: local features that are never searched, only used to verify another method's pairs
  (``orb``, :mod:`catalog.methods.local`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from catalog.config import DEFAULT_CNN, CnnChoice
from catalog.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from catalog.ingest.imaging import Decoded

Kind = Literal["key", "bits", "vector", "local"]


#: Where every method's default threshold sits on the one similarity scale (100 % = identical).
SIMILAR = 90.0


class Method(ABC):
    name: ClassVar[str]
    #: Bumped whenever signatures change meaning; the catalogue then recomputes them.
    version: ClassVar[str]
    kind: ClassVar[Kind]
    default_threshold: ClassVar[float]
    #: True when a higher score means "more alike" (similarity), False for distances.
    higher_is_similar: ClassVar[bool]
    score_kind: ClassVar[str]
    #: False for methods whose signature comes from the file bytes, not the pixels.
    needs_pixels: ClassVar[bool] = True
    #: False for methods that look at grayscale only (JPEGs can then skip decoding colour).
    needs_color: ClassVar[bool] = True
    description: ClassVar[str] = ""
    #: What it finds, for ``--help`` (measured on the near-miss mixture: README, "Methods").
    finds: ClassVar[str] = ""
    #: The method whose stored signatures this one scores (``cnn-euclidean`` reads ``cnn``'s features).
    stored_as: ClassVar[str | None] = None
    #: The method is built for a :class:`~catalog.config.CnnChoice` (its model), passed to its constructor.
    uses_model: ClassVar[bool] = False
    #: Methods whose signatures are computed along with this one's (``cnn`` brings ``orb``, which
    #: verifies its pairs).
    companions: ClassVar[tuple[str, ...]] = ()
    #: The ``local`` method that verifies this method's pairs, when the catalogue has its signatures;
    #: then ``verified_threshold`` is the default, and pairs that match at ``verify_above`` need no
    #: verification.
    verified_by: ClassVar[str | None] = None
    verified_threshold: ClassVar[float] = 0.0
    verify_above: ClassVar[float] = 0.0
    #: Whether searches also look for mirrored and turned copies unless told otherwise (``--transforms``).
    transforms_by_default: ClassVar[bool] = False
    #: Whether the signature is the file's content hash, kept on its image row (``exact``), rather than
    #: a stored signature of its own.
    from_content_hash: ClassVar[bool] = False

    #: Whether ``dupes``, ``copies`` and ``query`` answer by this method alone (not so for a method
    #: that only verifies another's pairs).
    answers_alone: ClassVar[bool] = True
    #: The thresholds that mean something for this method's score (None: any number).
    threshold_range: ClassVar[tuple[float, float] | None] = None
    #: The score of identical pictures and of pictures as unlike as the score goes (0 % on the one
    #: similarity scale, :meth:`similarity`); None: the score is not on the scale.
    identical_score: ClassVar[float] = 0.0
    unlike_score: ClassVar[float | None] = None
    #: Scores are whole numbers (bits): a threshold from --similarity is rounded to one.
    whole_scores: ClassVar[bool] = False

    def similarity(self, scores: Any) -> Any:
        """Each score (a number or a NumPy array) as a percentage on the one scale every method shares:
        100 for identical pictures, SIMILAR (90) at the method's default threshold, 0 as unlike as the
        score goes; linear between (so that a pair matches at the default exactly when it is at 90 % or
        more; a method whose pairs another verifies answers by default at its ``verified_threshold``,
        below 90 %: 67 % for cnn)."""
        import numpy as np

        far = self.unlike_score if self.unlike_score is not None else self.identical_score
        same, default = self.identical_score, self.default_threshold
        x = np.asarray(scores, dtype=np.float64)
        if not self.higher_is_similar:  # distances: measure from the identical end
            x, same, default, far = -x, -same, -default, -far
        low = np.interp(x, [far, default], [0.0, SIMILAR]) if default > far else np.zeros_like(x)
        high = np.interp(x, [default, same], [SIMILAR, 100.0]) if same > default else np.full_like(x, 100.0)
        out = np.where(x >= default, high, low)
        return out if np.ndim(scores) else float(out)

    def threshold_at(self, percent: float) -> float:
        """The threshold at which pairs of ``percent`` similarity and more match (``--similarity``)."""
        if not 0 <= percent <= 100:
            raise UsageError(f"--similarity is a percentage from 0 to 100, not {percent:g}")
        if self.unlike_score is None:
            raise UsageError(f"{self.name} scores are not on the similarity scale: use --threshold")
        same, default, far = self.identical_score, self.default_threshold, self.unlike_score
        if percent >= SIMILAR:
            at = default + (same - default) * (percent - SIMILAR) / (100.0 - SIMILAR)
        else:
            at = far + (default - far) * percent / SIMILAR
        if self.whole_scores:  # the whole distances at that similarity or more
            import math

            return float(math.floor(at + 1e-9))
        return at

    def checked_threshold(self, threshold: float) -> float:
        """A user's ``--threshold`` as this method takes it (a clear error where it takes none such)."""
        bounds = self.threshold_range
        if bounds is not None and not bounds[0] <= threshold <= bounds[1]:
            raise UsageError(
                f"--threshold for {self.name} is a {self.score_kind}: from {bounds[0]:g} to {bounds[1]:g}"
            )
        return threshold

    @property
    def signature_name(self) -> str:
        return self.stored_as or self.name

    @abstractmethod
    def prepare(self, image: Decoded) -> Any:
        """Per-image work, done in the decoding worker: the signature itself, or the input that
        :meth:`finish` turns into one (for a model that runs batched in the main process)."""

    def finish(self, prepared: list[Any]) -> list[bytes]:
        """Signatures from what :meth:`prepare` returned, as one batch (default: already final)."""
        return prepared

    def compute(self, images: Sequence[Decoded]) -> list[bytes]:
        """Signatures of decoded images, in order."""
        return self.finish([self.prepare(image) for image in images])

    @abstractmethod
    def score(self, a: bytes, b: bytes) -> float:
        """Similarity or distance of two signatures (see ``higher_is_similar``)."""

    def score_pairs(self, a: list[bytes], b: list[bytes]) -> np.ndarray:
        """Scores of the pairs (a[k], b[k]), vectorised where the method allows."""
        import numpy as np

        return np.asarray([self.score(x, y) for x, y in zip(a, b, strict=True)], dtype=np.float64)

    #: How many prepared images :meth:`finish` wants at a time (the CNN's batch); 0: no batched step.
    finish_batch: ClassVar[int] = 0

    def preload(self) -> None:  # noqa: B027 - optional hook
        """Load what :meth:`finish` needs (a model) ahead of time, in the main process."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Import what :meth:`compute` needs (called once in each worker process as it starts)."""

    def turned_score(self, a: bytes, b: bytes) -> float:
        """The best score of ``a`` and ``b`` over the turns and mirror-turns the signatures keep (what
        ``--transforms`` searches); the plain score for methods that keep none."""
        return self.score(a, b)

    def confirms(self, a: bytes, b: bytes) -> bool:
        """Whether two signatures match at this method's default threshold (how a ``local`` method
        verifies a pair: ``a`` the member's features, ``b`` the reference's)."""
        return bool(self.is_match(self.score(a, b), self.default_threshold))

    def is_match(self, score: Any, threshold: float) -> Any:
        """Whether a score (or each score of a NumPy array) is a match at ``threshold``."""
        return score >= threshold if self.higher_is_similar else score <= threshold

    def best_first(self, scores: np.ndarray) -> np.ndarray:
        """Positions of ``scores`` from most to least alike; ties keep their order."""
        import numpy as np

        return np.argsort(-scores if self.higher_is_similar else scores, kind="stable")


def as_matrix(values: list[bytes]) -> np.ndarray:
    """float16 signatures -> float32 matrix (one row each)."""
    import numpy as np

    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(values), dtype=np.float16).reshape(len(values), -1).astype(np.float32)


class VectorMethod(Method):
    """A method searched through an HNSW index (:mod:`catalog.search.vectors`) instead of compared pair by
    pair.

    The index holds :meth:`index_vectors` of the stored signatures in ``index_space`` (hnswlib's
    ``"cosine"`` or ``"l2"``, squared). Where the index distance is the method's own measure
    (``index_is_exact``), :meth:`from_index` turns it into the score; otherwise the index only proposes
    candidates and :meth:`score_pairs` scores them (SSIM).
    """

    kind = "vector"
    index_space: ClassVar[Literal["cosine", "l2"]] = "cosine"
    index_is_exact: ClassVar[bool] = True

    @abstractmethod
    def index_vectors(self, values: list[bytes]) -> np.ndarray:
        """float32 rows to index for these signatures."""

    @abstractmethod
    def from_index(self, distances: np.ndarray) -> np.ndarray:
        """This method's scores from index distances (when ``index_is_exact``)."""

    @abstractmethod
    def index_radius(self, threshold: float) -> float:
        """The largest index distance that is a match at ``threshold`` (when ``index_is_exact``)."""


_REGISTRY: dict[str, type[Method]] = {}
#: One instance per method (and per CNN choice, for the methods that take one): instances hold loaded
#: models, so they are shared rather than built per call.
_INSTANCES: dict[tuple[str, CnnChoice | None], Method] = {}


def register(cls: type[Method]) -> type[Method]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Registration order is the order users see: exact and the hashes first.
    from catalog.methods import hashes  # noqa: F401, I001
    from catalog.methods import pixels  # noqa: F401
    from catalog.methods import cnn  # noqa: F401
    from catalog.methods import local  # noqa: F401


def method_names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def answering_names() -> list[str]:
    """The methods ``dupes``, ``copies`` and ``query`` answer by (not those that only verify)."""
    return [name for name in method_names() if _REGISTRY[name].answers_alone]


def get_method(name: str, cnn: CnnChoice | None = None) -> Method:
    """The method registered under ``name``, or a UsageError naming the choices. Methods that use a model
    are built for ``cnn`` (default: the default model); the others ignore it."""
    _load_builtin()
    if name not in _REGISTRY:
        raise UsageError(f"unknown method {name!r}; choose from: {', '.join(_REGISTRY)}")
    cls = _REGISTRY[name]
    key = (name, (cnn or DEFAULT_CNN) if cls.uses_model else None)
    if key not in _INSTANCES:
        _INSTANCES[key] = cls(key[1]) if cls.uses_model else cls()  # type: ignore[call-arg]
    return _INSTANCES[key]


def resolve_cnn(cnn: CnnChoice, stored: Mapping[str, str]) -> CnnChoice:
    """The CNN to use with a catalogue whose methods are ``stored`` (name -> version): the user's choice
    when there is one, else the model the catalogue's features came from (returned, nothing adopted)."""
    if cnn.chosen or "cnn" not in stored:
        return cnn
    from catalog.methods.cnn import model_of

    return replace(cnn, model=model_of(stored["cnn"]))


def catalogue_method(
    name: str, cnn: CnnChoice, stored: Mapping[str, str], threshold: float | None = None
) -> Method:
    """The method ``name`` ready to compare a catalogue's signatures: built for the catalogue's CNN
    unless the user chose one, and refused when its signatures came from another version. A
    ``threshold`` the method cannot take is refused first (whatever the catalogue holds)."""
    method = get_method(name, resolve_cnn(cnn, stored))
    check_threshold(method, threshold)
    if not method.from_content_hash:
        check_stored_version(method, stored)
    return method


def check_stored_version(method: Method, stored: Mapping[str, str]) -> None:
    """Refuse to compare signatures that came from another version (another CNN model, say)."""
    name = method.signature_name
    if name not in stored:
        raise UsageError(
            f"this catalogue has no {name} signatures; add them with `catalog index PATH --methods {name}`"
        )
    if stored[name] != method.version:
        if not method.uses_model:
            raise UsageError(
                f"this catalogue's {name} signatures come from an earlier catalog ({stored[name]}, now "
                f"{method.version}): run `catalog index` to recompute them"
            )
        if stored[name].split("/int8")[0] == method.version.split("/int8")[0]:  # one model, run two ways
            raise UsageError(
                f"this catalogue's {name} signatures come from {stored[name]}, not {method.version}: run the "
                "model as they were (CATALOG_CNN_BACKEND unset: the int8 graph in ONNX Runtime; 'torch': "
                "PyTorch's float model), or run `catalog index` to recompute them"
            )
        raise UsageError(
            f"this catalogue's {name} signatures come from {stored[name]}, not {method.version}: "
            f"choose that model, or run `catalog index` with this one to recompute them"
        )


def pixel_methods(names: Iterable[str]) -> tuple[str, ...]:
    """The stored methods that decoding must feed, sorted (``cnn-euclidean`` is stored as ``cnn``)."""
    stored = {get_method(name).signature_name for name in names}
    return tuple(sorted(name for name in stored if get_method(name).needs_pixels))


def parse_method_list(text: str) -> list[str]:
    """``"phash, dhash"`` -> ``["phash", "dhash"]``, each checked against the registry."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--methods needs at least one method name")
    for name in names:
        get_method(name)
    return list(dict.fromkeys(names))


def check_threshold(method: Method, threshold: float | None) -> float:
    """The threshold to use: the method's default, or a checked user value."""
    if threshold is None:
        return method.default_threshold
    return method.checked_threshold(threshold)
