"""Groups as columns (:class:`GroupTable`) and as an answer (:class:`Grouping`); connected components of
pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from catalog.grouping.options import GroupingKind
from catalog.store import ImageInfo
from catalog.store.columns import ImageTable


@dataclass(frozen=True, slots=True)
class Member:
    image: ImageInfo
    #: Score against the group's reference (the method's own measure); None for the reference itself.
    score: float | None


@dataclass(eq=False)
class GroupTable:
    """Groups as columns: group ``g``'s images are ``member[starts[g]:starts[g + 1]]`` (positions in
    ``images``), its reference first; ``score[k]`` is image ``member[k]``'s score against its
    reference (NaN for the reference itself). Largest group first."""

    images: ImageTable
    member: np.ndarray
    starts: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def of(cls, groups: Sequence[Sequence[Member]]) -> GroupTable:
        images = ImageTable.of({m.image.id: m.image for g in groups for m in g}.values())
        ids = np.fromiter((m.image.id for g in groups for m in g), dtype=np.int64)
        scores = [np.nan if m.score is None else m.score for g in groups for m in g]
        starts = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum([len(g) for g in groups], out=starts[1:])
        return cls(images, images.positions(ids), starts, np.asarray(scores, dtype=np.float64))

    def group(self, g: int) -> list[Member]:
        """Group ``g`` (from 0) as a :class:`Member` list."""
        begin, end = int(self.starts[g]), int(self.starts[g + 1])
        return [
            Member(self.images.info(p), None if s != s else s)
            for p, s in zip(self.member[begin:end].tolist(), self.score[begin:end].tolist(), strict=True)
        ]

    def members(self) -> list[list[Member]]:
        """The groups as :class:`Member` lists."""
        return [self.group(g) for g in range(len(self))]


@dataclass(eq=False)
class Grouping:
    method: str
    threshold: float
    grouping: GroupingKind
    transforms: bool
    verified: bool  # pairs below the method's verify_above were verified by local features
    table: GroupTable  # two or more images each, the reference first; largest group first
    images: int  # how many images were compared

    @cached_property
    def groups(self) -> list[list[Member]]:
        """:attr:`table` as lists of :class:`Member`."""
        return self.table.members()


#: From this many pairs on, components are found by compiled code
#: (:func:`catalog.grouping.kernels.components`).
COMPILED_COMPONENTS_FROM = 200_000


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The component of each of ``n`` nodes joined by the edges (left[k], right[k]): the smallest node
    of each, as int64 (union-find; compiled for many edges, where SciPy's graph would take longer to
    import and build than the union-find takes)."""
    if len(left) >= COMPILED_COMPONENTS_FROM:
        from catalog.grouping import kernels as reference

        return reference.components(n, left.astype(np.int64), right.astype(np.int64))
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.fromiter((root(x) for x in range(n)), dtype=np.int64, count=n)
