"""The Method interface and the registry of methods by name.

A method turns decoded images into signatures (bytes) once, at indexing time, and scores two signatures.
Search structures are chosen by the signature ``kind``, not by the method:

- ``key``: equal or not (the content hash);
- ``bits``: 64-bit codes compared by Hamming distance;
- ``vector``: float vectors (CNN features, pixel thumbnails) - searched through an index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from catalog.errors import UsageError

if TYPE_CHECKING:
    from catalog.imaging import Decoded

Kind = Literal["key", "bits", "vector"]


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

    @abstractmethod
    def compute(self, images: Sequence[Decoded]) -> list[bytes]:
        """Signatures of a batch of decoded images, in order."""

    @abstractmethod
    def score(self, a: bytes, b: bytes) -> float:
        """Similarity or distance of two signatures (see ``higher_is_similar``)."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Import what :meth:`compute` needs (called once in each worker process as it starts)."""

    def is_match(self, score: float, threshold: float) -> bool:
        return score >= threshold if self.higher_is_similar else score <= threshold


_REGISTRY: dict[str, type[Method]] = {}
_INSTANCES: dict[str, Method] = {}


def register(cls: type[Method]) -> type[Method]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    from catalog.methods import hashes  # noqa: F401  (registers on import)


def method_names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def get_method(name: str) -> Method:
    """The method registered under ``name`` (one shared instance), or a UsageError naming the choices."""
    _load_builtin()
    if name not in _INSTANCES:
        if name not in _REGISTRY:
            raise UsageError(f"unknown method {name!r}; choose from: {', '.join(_REGISTRY)}")
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]


def parse_method_list(text: str) -> list[str]:
    """``"phash, dhash"`` -> ``["phash", "dhash"]``, each checked against the registry."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--methods needs at least one method name")
    for name in names:
        get_method(name)
    return list(dict.fromkeys(names))
