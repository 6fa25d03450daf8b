""" "Not a duplicate" marks, by content hash."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from catalog.store.base import StoreBase
from catalog.store.models import Image, NotDuplicate
from catalog.store.sql import chunked, now

if TYPE_CHECKING:
    pass


class MarksMixin(StoreBase):
    """ "Not a duplicate" marks, by content hash."""

    def add_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Mark pairs of pictures (content hashes) as not duplicates; returns how many were new."""
        wanted = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
        added = 0
        with self.session() as s:
            for first, second in sorted(wanted):
                if s.get(NotDuplicate, (first, second)) is None:
                    s.add(NotDuplicate(first=first, second=second, created_at=now()))
                    added += 1
        return added

    def remove_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        removed = 0
        with self.session() as s:
            for a, b in pairs:
                result = s.execute(
                    delete(NotDuplicate).where(
                        NotDuplicate.first == min(a, b), NotDuplicate.second == max(a, b)
                    )
                )
                removed += result.rowcount or 0  # type: ignore[attr-defined]
        return removed

    def marks(self) -> list[tuple[str, str, datetime]]:
        """Every "not a duplicate" mark: (content hash, content hash, when), oldest first."""
        query = select(NotDuplicate.first, NotDuplicate.second, NotDuplicate.created_at).order_by(
            NotDuplicate.created_at, NotDuplicate.first, NotDuplicate.second
        )
        with self.session() as s:
            return [(a, b, t) for a, b, t in s.execute(query)]

    def paths_by_hash(self, hashes: Iterable[str]) -> dict[str, list[str]]:
        """The catalogued paths of each content hash (readable images only)."""
        found: dict[str, list[str]] = {}
        with self.session() as s:
            for chunk in chunked(sorted(set(hashes))):
                query = select(Image.content_hash, Image.path).where(
                    Image.content_hash.in_(chunk), Image.error.is_(None)
                )
                for h, path in s.execute(query.order_by(Image.path)):
                    found.setdefault(h or "", []).append(path)
        return found
