"""Pairs between classes of images with identical signatures: what the search layer finds for every kind
of signature, and what grouping reads."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from catalog.methods import Method


@dataclass(eq=False)
class Pairs:
    """Matching pairs between classes of images with identical signatures.

    Image ``image_ids[k]`` is in class ``class_of[k]`` (``classes`` lists them per class); an edge
    (``left[k]``, ``right[k]``) joins two classes with the method's score ``scores[k]``. Members of one
    class score as identical."""

    image_ids: np.ndarray
    class_of: np.ndarray
    count: int  # how many classes
    left: np.ndarray
    right: np.ndarray
    scores: np.ndarray
    identical: float  # the score of identical signatures (0 for distances, 1 for similarities)
    #: Each class's upright code, where the pairs are a hash method's stored ones.
    codes: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        classes: list[list[int]],
        left: np.ndarray,
        right: np.ndarray,
        scores: np.ndarray,
        identical: float,
    ) -> Pairs:
        """From a list of image ids per class."""
        sizes = [len(c) for c in classes]
        ids = np.fromiter(itertools.chain.from_iterable(classes), dtype=np.int64, count=sum(sizes))
        class_of = np.repeat(np.arange(len(classes)), sizes)
        return cls(ids, class_of, len(classes), left, right, scores, identical)

    @cached_property
    def classes(self) -> list[list[int]]:
        """The image ids of each class."""
        return split_classes(self.image_ids, self.class_of, self.count)

    def keeping(self, keep: np.ndarray) -> Pairs:
        """These classes with only the pairs ``keep`` selects."""
        return Pairs(
            self.image_ids,
            self.class_of,
            self.count,
            self.left[keep],
            self.right[keep],
            self.scores[keep],
            self.identical,
            self.codes,
        )


def split_classes(ids: np.ndarray, inverse: np.ndarray, count: int) -> list[list[int]]:
    """Image ids grouped by class (``inverse[k]`` is the class of ``ids[k]``; ``count`` classes)."""
    counts = np.bincount(inverse, minlength=count)
    if len(counts) == len(ids):  # every class one image: no sorting, one list each
        ordered = np.empty(len(ids), dtype=ids.dtype)
        ordered[inverse] = ids
        return [[i] for i in ordered.tolist()]
    order = np.argsort(inverse, kind="stable")
    ordered_ids = ids[order].tolist()
    ends = np.cumsum(counts).tolist()
    return [ordered_ids[begin:end] for begin, end in zip([0, *ends[:-1]], ends, strict=True)]


#: From this many pairs on, the best of each pair is found by compiled code (:mod:`catalog.search.kernels`).
COMPILED_PAIRS = 1_000_000


def best_per_pair(
    a: np.ndarray, b: np.ndarray, scores: np.ndarray, higher_is_similar: bool, ordered: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One edge per unordered pair (low, high), with its best score (``ordered``: each ``a[k]`` is
    already the lower)."""
    low, high = (a, b) if ordered else (np.minimum(a, b), np.maximum(a, b))
    if not len(low):
        return low, high, scores
    if len(low) >= COMPILED_PAIRS:
        from catalog.search import kernels

        return kernels.best_per_pair(int(high.max()) + 1, low, high, scores, higher_is_similar)  # type: ignore[no-any-return]
    key = low.astype(np.int64) * (int(high.max()) + 1) + high
    best_first = np.argsort(-scores if higher_is_similar else scores, kind="stable")
    order = best_first[np.argsort(key[best_first], kind="stable")]  # by pair, best score first
    del best_first
    keys = key[order]
    first = order[np.r_[True, keys[1:] != keys[:-1]]]
    return low[first], high[first], scores[first]


def class_pairs(
    method: Method,
    ids: np.ndarray,
    class_of: np.ndarray,
    count: int,
    a: np.ndarray,
    b: np.ndarray,
    scores: np.ndarray,
    ordered: bool = False,
) -> Pairs:
    """:class:`Pairs` of the images ``ids`` (sorted; in classes ``class_of``, ``count`` of them) from
    pairs of different classes (``a[k]``, ``b[k]``; ``ordered``: ``a[k] < b[k]``), each pair kept once
    with its best score."""
    identical = 1.0 if method.higher_is_similar else 0.0
    left, right, scores = best_per_pair(a, b, scores, method.higher_is_similar, ordered)
    return Pairs(ids, class_of, count, left, right, scores, identical)
