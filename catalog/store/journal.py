"""The journal of actions on files: written before each action, marked after, read by undo."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from catalog.store.base import StoreBase
from catalog.store.models import Image, JournalEntry
from catalog.store.records import Acted
from catalog.store.sql import _delete_images, chunked, now


class JournalMixin(StoreBase):
    """The journal of actions on files: written before each action, marked after, read by undo."""

    def new_batch(self) -> int:
        """A number for a new run of actions (callers hold the actions lock)."""
        with self.session() as s:
            return int(s.scalar(select(func.max(JournalEntry.batch))) or 0) + 1

    def journal(
        self,
        states: Iterable[str] | None = None,
        ids: Iterable[int] | None = None,
        actions: Iterable[str] | None = None,
    ) -> list[JournalEntry]:
        """Journal entries (all, or those in ``states``, or with ``ids``, or of ``actions``), oldest
        first."""
        query = select(JournalEntry).order_by(JournalEntry.id)
        if states is not None:
            query = query.where(JournalEntry.state.in_(list(states)))
        if actions is not None:
            query = query.where(JournalEntry.action.in_(list(actions)))
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

    def journal_state(self, entry_id: int, state: str, dated: bool = True) -> None:
        """Move an entry to ``state`` (without ``dated``, its dates stay: back to ``done`` from an undo
        that did not happen)."""
        with self.session() as s:
            _set_states(s, [entry_id], state, dated)

    def journal_states(self, ids: Sequence[int], state: str) -> None:
        """Move entries to ``state``, in one transaction."""
        with self.session() as s:
            _set_states(s, ids, state)

    def journal_add_all(self, entries: Sequence[JournalEntry]) -> list[int]:
        """Write actions before they happen (state ``pending``), in one transaction; returns their ids in
        order."""
        with self.session() as s:
            s.add_all(entries)
            s.flush()
            return [entry.id for entry in entries]

    def action_done(
        self,
        entry_id: int,
        path: str,
        moved_to: str | None,
        target: str | None,
        state: str = "done",
    ) -> None:
        """In one transaction: the entry is ``state`` and the catalogue follows the file: its row moves
        to ``moved_to`` when that is still catalogued ground, else it leaves."""
        self.actions_settled([Acted(entry_id, path, moved_to, target)], state=state)

    def actions_settled(
        self,
        done: Sequence[Acted],
        state: str = "done",
        others: Mapping[str, Sequence[int]] | None = None,
        dropped: Sequence[int] = (),
    ) -> None:
        """In one transaction, a batch of actions (or of undos) after their files were acted on: each of
        ``done`` is ``state`` and the catalogue follows its file (as :meth:`action_done`); ``others``
        moves more entries to other states (``rolled-back``: failed before touching their file;
        ``undone``; back to ``done``: their undo did not happen, and they keep their date); the
        ``dropped`` entries were never begun (their step was found unsafe, or left for the next batch)
        and leave the journal."""
        with self.session() as s:
            for chunk in chunked(list(dropped)):
                s.execute(delete(JournalEntry).where(JournalEntry.id.in_(chunk)))
            for other, entries in (others or {}).items():
                _set_states(s, entries, other, dated=other != "done")
            if not done:
                return
            values = _stamped(state)
            changes = []
            for d in done:
                change = {"id": d.entry_id, **values}
                if d.target is not None:
                    change["target"] = d.target
                changes.append(change)
            s.execute(update(JournalEntry), changes)  # by primary key, many rows at once
            if any(d.moved_to is not None for d in done):
                for d in done:  # one after another: a row moved may be the next one's
                    _follow(s, d)
                return
            # Every file left: their rows go, found in bulk.
            gone: list[int] = []
            for part in chunked(sorted({d.path for d in done})):
                gone.extend(s.scalars(select(Image.id).where(Image.path.in_(part))))
            _delete_images(s, gone)


def _follow(session: Session, acted: Acted) -> None:
    """The catalogue follows one acted-on file: its row moves to ``moved_to`` (any row there before is
    stale), or leaves."""
    ids = list(session.scalars(select(Image.id).where(Image.path == acted.path)))
    if acted.moved_to is not None and ids:
        stale = list(session.scalars(select(Image.id).where(Image.path == acted.moved_to)))
        _delete_images(session, stale)
        session.execute(update(Image).where(Image.id.in_(ids)).values(path=acted.moved_to))
    else:
        _delete_images(session, ids)


def _stamped(state: str, dated: bool = True) -> dict[str, object]:
    """The values that move an entry to ``state``: entering ``done`` or ``undone`` is dated (unless not
    ``dated``)."""
    values: dict[str, object] = {"state": state}
    if dated and state in ("done", "undone"):
        values[f"{state}_at"] = now()
    return values


def _set_states(session: Session, ids: Sequence[int], state: str, dated: bool = True) -> None:
    values = _stamped(state, dated)
    for chunk in chunked(list(ids)):
        session.execute(update(JournalEntry).where(JournalEntry.id.in_(chunk)).values(**values))
