"""The journal of actions on files: written before each action, marked after, read by undo."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from catalog.store.base import StoreBase
from catalog.store.models import Image, JournalEntry
from catalog.store.sql import _delete_images, now

if TYPE_CHECKING:
    pass


class JournalMixin(StoreBase):
    """The journal of actions on files: written before each action, marked after, read by undo."""

    def new_batch(self) -> int:
        """A number for a new run of actions (callers hold the actions lock)."""
        with self.session() as s:
            return int(s.scalar(select(func.max(JournalEntry.batch))) or 0) + 1

    def journal_add(self, entry: JournalEntry) -> int:
        """Write an action before it happens (state ``pending``); returns its id."""
        with self.session() as s:
            s.add(entry)
            s.flush()
            return entry.id

    def journal(
        self, states: Iterable[str] | None = None, ids: Iterable[int] | None = None
    ) -> list[JournalEntry]:
        """Journal entries (all, or those in ``states``, or with ``ids``), oldest first."""
        query = select(JournalEntry).order_by(JournalEntry.id)
        if states is not None:
            query = query.where(JournalEntry.state.in_(list(states)))
        if ids is not None:
            query = query.where(JournalEntry.id.in_(list(ids)))
        with self.session() as s:
            entries = list(s.scalars(query))
            s.expunge_all()
        return entries

    def journal_counts(self) -> dict[str, int]:
        """Journal entries by state."""
        query = select(JournalEntry.state, func.count()).group_by(JournalEntry.state)
        with self.session() as s:
            return {state: n for state, n in s.execute(query)}

    def journal_state(self, entry_id: int, state: str, target: str | None = None) -> None:
        """Move an entry to ``state`` (``target``: where the file went, when that is known now)."""
        values: dict[str, object] = {"state": state}
        if target is not None:
            values["target"] = target
        if state == "done":
            values["done_at"] = now()
        if state == "undone":
            values["undone_at"] = now()
        with self.session() as s:
            s.execute(update(JournalEntry).where(JournalEntry.id == entry_id).values(**values))

    def action_done(
        self,
        entry_id: int,
        path: str,
        moved_to: str | None,
        target: str | None,
        state: str = "done",
        restat: tuple[int, int] | None = None,
    ) -> None:
        """In one transaction: the entry is ``state`` and the catalogue follows the file: its row moves
        to ``moved_to`` when that is still catalogued ground, takes a new (size, mtime) with ``restat``
        (a hard link to identical bytes), else it leaves."""
        values: dict[str, object] = {"state": state}
        if target is not None:
            values["target"] = target
        values["done_at" if state == "done" else "undone_at"] = now()
        with self.session() as s:
            s.execute(update(JournalEntry).where(JournalEntry.id == entry_id).values(**values))
            ids = list(s.scalars(select(Image.id).where(Image.path == path)))
            if restat is not None:
                size, mtime_ns = restat
                s.execute(update(Image).where(Image.id.in_(ids)).values(size=size, mtime_ns=mtime_ns))
            elif moved_to is not None and ids:
                stale = list(s.scalars(select(Image.id).where(Image.path == moved_to)))
                _delete_images(s, stale)
                s.execute(update(Image).where(Image.id.in_(ids)).values(path=moved_to))
            else:
                _delete_images(s, ids)
