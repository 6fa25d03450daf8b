"""One writer per catalogue: ``index`` and ``watch`` hold an exclusive lock while they write.

The lock is a POSIX record lock (``lockf``) on a small file beside a SQLite catalogue (``catalog.db.lock``;
for a server URL, in the user's cache folder, so it guards one machine). The kernel releases it when its
process ends, however it ends (``kill -9`` included): a lock is never left stale. Unlike ``flock``, it is
not shared with forked children, so worker processes outliving a killed writer for a moment do not keep
the catalogue locked. Readers take no lock; SQLite's WAL mode lets them read while the writer writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog.config import sqlite_file, user_cache_dir
from catalog.errors import BusyError, StoreError


def lock_path(url: str) -> Path:
    db_file = sqlite_file(url)
    if db_file is not None:
        return db_file.with_name(f"{db_file.name}.lock")
    cache = user_cache_dir()
    return cache / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.lock"


def _open_lock_file(path: Path) -> int:
    """A descriptor of the lock file ``path``, created if needed (``OSError`` when it cannot be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _catalogue_lock_file(path: Path) -> int:
    """The lock file of a writer of the catalogue: one that cannot be made is the user's to mend."""
    try:
        return _open_lock_file(path)
    except OSError as exc:
        raise StoreError(
            f"cannot write the catalogue's lock file {path}: {exc.strerror} (writing a catalogue needs "
            "its folder to be writable)"
        ) from None


@contextmanager
def _exclusive(path: Path, catalogue: bool = False) -> Iterator[tuple[int, bool]]:
    """(file descriptor, whether an exclusive lock on ``path`` was taken at once); the file is created
    if needed, and closing it at the end releases the lock. ``catalogue``: the writer's lock, whose file
    must be made (a cache's lock file that cannot be made is an ``OSError``: its cache is skipped)."""
    fd = _catalogue_lock_file(path) if catalogue else _open_lock_file(path)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EAGAIN or EACCES, depending on the system
            yield fd, False
        else:
            yield fd, True
    finally:
        os.close(fd)


@contextmanager
def writer_lock(url: str, holder: str) -> Iterator[None]:
    """Hold the catalogue's writer lock, or raise :class:`BusyError` naming the process that has it."""
    with _exclusive(lock_path(url), catalogue=True) as (fd, taken):
        if not taken:
            other = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise BusyError(
                f"the catalogue is being written by {other}; one writer at a time: wait for it to "
                "finish, or stop it (catalog watch stops on Ctrl-C or SIGTERM). Reading commands "
                "(dupes, copies, query, status) work meanwhile."
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({holder})".encode(), 0)
        yield


@contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """An exclusive lock on ``path`` if it is free at once: yields whether it was taken. For cache files
    that one process at a time may write (the HNSW indexes)."""
    with _exclusive(path) as (_, taken):
        yield taken


def current_writer(url: str) -> str | None:
    """Who holds the writer lock ("pid N (catalog watch)"), or None when nobody writes."""
    path = lock_path(url)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    else:
        return None
    finally:
        os.close(fd)


def actions_lock_path(url: str) -> Path:
    writer = lock_path(url)
    return writer.with_name(writer.name.removesuffix(".lock") + ".actions.lock")


@contextmanager
def actions_lock(url: str) -> Iterator[None]:
    """Held while actions on files are journaled, carried out or undone (``resolve``, ``undo``, the
    review page): one batch at a time, waiting for another to finish (they take milliseconds a file).
    Indexing does not take it: the journal is written in its own transactions."""
    path = actions_lock_path(url)
    fd = _catalogue_lock_file(path)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
