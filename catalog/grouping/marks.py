""" "Not a duplicate" marks applied to pairs and groups: marked pictures never share a group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from catalog.grouping.table import Member
from catalog.methods import Method
from catalog.search.matches import Pairs
from catalog.store import Catalog, ImageInfo


class Marks:
    """The "not a duplicate" marks (pairs of content hashes) as they bear on one answer's classes."""

    def __init__(
        self,
        marks: Sequence[tuple[str, str, object]],
        class_hashes: dict[int, list[str]],
        higher_is_similar: bool = False,
    ):
        self.higher = higher_is_similar
        self.against: dict[str, set[str]] = {}
        for a, b, _ in marks:
            self.against.setdefault(a, set()).add(b)
            self.against.setdefault(b, set()).add(a)
        self.hashes = {
            c: {h for h in hs if h in self.against} for c, hs in class_hashes.items() if self.against
        }
        self.hashes = {c: hs for c, hs in self.hashes.items() if hs}

    @classmethod
    def of(cls, catalog: Catalog, members_of: dict[int, list[ImageInfo]], method: Method) -> Marks:
        marks = catalog.marks()
        marked = {h for a, b, _ in marks for h in (a, b)}
        hashes = {
            c: [im.content_hash or "" for im in m if im.content_hash in marked]
            for c, m in members_of.items()
            if marked and any(im.content_hash in marked for im in m)
        }
        return cls(marks, hashes, method.higher_is_similar)

    def conflict(self, a: int, b: int) -> bool:
        """Whether an image of class ``a`` is marked "not a duplicate" of one of class ``b``."""
        ha, hb = self.hashes.get(a), self.hashes.get(b)
        if not ha or not hb:
            return False
        return any(self.against[h] & hb for h in ha)

    def unmarked(self, pairs: Pairs) -> Pairs:
        """``pairs`` without the marked ones."""
        if not self.hashes or not len(pairs.left):
            return pairs
        keep = np.asarray(
            [not self.conflict(a, b) for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)]
        )
        return pairs.keeping(keep)

    def compatible(self, reference: int, candidates: list[int], scores: dict[int, float]) -> list[int]:
        """The candidates that can share a group with ``reference`` and each other: taken best score
        first, each kept unless marked against one kept before it."""
        if not self.hashes or not any(c in self.hashes for c in candidates):
            return candidates
        kept: list[int] = []
        sign = -1.0 if self.higher else 1.0
        for c in sorted(candidates, key=lambda n: (sign * scores.get(n, 0.0), n)):
            if not self.conflict(reference, c) and not any(self.conflict(k, c) for k in kept):
                kept.append(c)
        return [c for c in candidates if c in kept]

    def split(self, group: list[Member]) -> list[Member]:
        """A group without any image marked against one before it (identical signatures of different
        files, or components joined through others)."""
        if not self.hashes:
            return group
        kept: list[Member] = []
        seen: set[str] = set()
        for member in group:
            h = member.image.content_hash or ""
            if self.against.get(h, set()) & seen:
                continue
            kept.append(member)
            seen.add(h)
        return kept
