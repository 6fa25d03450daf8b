"""What `catalog watch` hears, before anything is indexed: watchdog's events queued as they come
(:class:`Inbox`), which paths they name and which the watcher ignores (:func:`ignored`), each changed
path until it has settled (:class:`Settler`), and the totals of a watch (:class:`Totals`)."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

if TYPE_CHECKING:
    from catalog.sync.indexer import IndexReport

#: Endings of files that are still being downloaded or written under a temporary name.
TEMPORARY_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".swp", "~")


def ignored(path: str, roots: Iterable[str]) -> bool:
    """Hidden or temporary files and anything in hidden folders (below the watched root) are ignored,
    as ``catalog index`` skips them."""
    for root in roots:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            relative = path[len(root) :].strip("/")
            break
    else:
        return True  # outside every watched root
    parts = relative.split("/") if relative else []
    if any(part.startswith(".") for part in parts):
        return True
    name = parts[-1] if parts else ""
    return name.lower().endswith(TEMPORARY_SUFFIXES)


def path_text(path: str | bytes) -> str:
    return os.fsdecode(path)


class Inbox(FileSystemEventHandler):
    """What watchdog's thread hands over: events, timestamped, in order. Nothing else happens there."""

    def __init__(self) -> None:
        self.events: queue.SimpleQueue[tuple[float, FileSystemEvent | None]] = queue.SimpleQueue()

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("opened", "closed_no_write", "attrib"):  # our own reads, chmod
            self.events.put((time.monotonic(), event))

    def wake(self) -> None:
        """Make a waiting :meth:`drain` return (to stop)."""
        self.events.put((time.monotonic(), None))

    def drain(self, wait: float = 0.0) -> list[tuple[float, Any]]:
        """Every event queued, waiting up to ``wait`` seconds for the first one (idle: no polling)."""
        drained = []
        if wait > 0:
            try:
                drained.append(self.events.get(timeout=wait))
            except queue.Empty:
                return drained
        while True:
            try:
                drained.append(self.events.get_nowait())
            except queue.Empty:
                return drained


@dataclass
class _Pending:
    changed_at: float
    open_for_writing: bool = False
    #: Written to (not only created, moved or deleted): read again even with its old size and time (a
    #: tag editor that keeps the modification time, ``exiftool -P``).
    written: bool = False


@dataclass
class Settler:
    """Changed paths waiting to be indexed, and the renames to apply first."""

    settle: float
    tracks_close: bool  # the observer reports when a writer closes a file (inotify)
    #: A file modified without a "closed" event is indexed after this long anyway (a writer that keeps
    #: it open, or a change made without opening it, such as truncate).
    max_open: float = 60.0
    pending: dict[str, _Pending] = field(default_factory=dict)
    renames: list[tuple[str, str]] = field(default_factory=list)

    def note(self, when: float, path: str, writing: bool = False, written: bool = False) -> None:
        entry = self.pending.setdefault(path, _Pending(when))
        entry.changed_at = max(entry.changed_at, when)
        entry.open_for_writing = writing and self.tracks_close
        entry.written = entry.written or written or writing

    def written(self, paths: Iterable[str]) -> frozenset[str]:
        """Those of ``paths`` that were written to."""
        return frozenset(p for p in paths if (entry := self.pending.get(p)) is not None and entry.written)

    def ready(self, now: float) -> list[str]:
        """Paths quiet for ``settle`` seconds (and closed, where that is known), oldest first."""
        done = []
        for path, entry in self.pending.items():
            quiet = now - entry.changed_at
            if quiet >= self.settle and (not entry.open_for_writing or quiet >= self.max_open):
                done.append(path)
        return sorted(done, key=lambda p: self.pending[p].changed_at)

    def forget_writers(self) -> None:
        """Events were lost ("closed" ones too): fall back to quiet time and modification times."""
        for entry in self.pending.values():
            entry.open_for_writing = False

    def settling(self, now: float) -> frozenset[str]:
        ready = set(self.ready(now))
        return frozenset(p for p in self.pending if p not in ready)

    def take(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.pending.pop(path, None)


@dataclass
class Totals:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    errors: int = 0

    def add(self, report: IndexReport) -> None:
        self.added += report.added
        self.updated += report.updated
        self.moved += report.moved
        self.removed += report.removed
        self.errors += len(report.errors)

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.moved} moved, {self.removed} removed, "
            f"{self.errors} unreadable"
        )
