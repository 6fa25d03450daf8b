"""Thumbnails for the review page: made from the catalogued file (one decode as indexing does it: JPEG
draft, EXIF orientation applied), cached on disk beside the catalogue by content hash, so a moved or
renamed file keeps its thumbnail and a changed file gets a new one.

This module owns the cache folder (``catalog.db.thumbs/``; for a server catalogue, in the user's cache
folder). Each thumbnail is written under a hidden temporary name and renamed into place, under the
folder's lock file, so a reader never sees half a file and two makers never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from catalog.config import sqlite_file, user_cache_dir

#: Longest side of a thumbnail, in pixels (shown at up to 240 CSS pixels: sharp on a 1.5x screen).
SIDE = 360
QUALITY = 82


def cache_dir(url: str) -> Path:
    db_file = sqlite_file(url)
    if db_file is not None:
        return db_file.with_name(f"{db_file.name}.thumbs")
    return user_cache_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.thumbs"


class Thumbnails:
    def __init__(self, folder: Path):
        self.folder = folder

    def path_for(self, content_hash: str) -> Path:
        return Path(self._where(content_hash))

    def _where(self, content_hash: str) -> str:
        """The thumbnail's path as text (made a million times by ``make_all``): a subfolder per first
        two characters of the content hash."""
        return f"{self.folder}/{content_hash[:2]}/{content_hash}.jpg"

    def get(self, path: str, content_hash: str) -> Path | None:
        """The thumbnail of the file at ``path`` (made now if missing), or None if it cannot be read."""
        out = self.path_for(content_hash)
        if out.exists():
            return out
        return out if make(path, str(out), str(self.folder)) else None

    def make_all(self, items: Sequence[tuple[str, str]], workers: int) -> Background:
        """Make the missing thumbnails of (path, content hash) items, in that order, in ``workers``
        processes, in the background. Which are missing is read from one listing of the folder, not a
        file check per item (a million-image answer lists most of the library)."""
        made = self._made()
        folder = str(self.folder)
        todo = [(p, where, folder) for p, h in items if (where := self._where(h)) not in made]
        return Background(todo, workers)

    def _made(self) -> set[str]:
        """The paths (as :meth:`_where` gives them) of the thumbnails made so far."""
        names: set[str] = set()
        try:
            listing = os.scandir(self.folder)
        except OSError:  # no folder yet
            return names
        with listing:
            for entry in listing:
                if entry.is_dir():
                    with contextlib.suppress(OSError):
                        names.update(f"{entry.path}/{name}" for name in os.listdir(entry.path))
        return names


class Background:
    """Thumbnails made by a pool of processes, fed from a thread; ``stop`` ends it at once."""

    def __init__(self, todo: list[tuple[str, str, str]], workers: int):
        self.total, self.done = len(todo), 0
        self.finished = threading.Event()
        self._pool = None
        if not todo:
            self.finished.set()
            return
        from catalog.interrupts import SIGNALS

        # A signal arriving while a worker is being born would reach it before it learns to ignore it
        # (or interrupt the parent inside the fork): blocked meanwhile, as the indexer's pools do.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            self._pool = multiprocessing.get_context("fork").Pool(max(1, workers), _start_worker)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._thread = threading.Thread(
            target=self._run, args=(todo,), name="catalog-thumbnails", daemon=True
        )
        self._thread.start()

    def _run(self, todo: list[tuple[str, str, str]]) -> None:
        try:
            assert self._pool is not None
            for _ in self._pool.imap_unordered(_make_task, todo, chunksize=4):
                self.done += 1
        except Exception:  # noqa: BLE001 - the pool was stopped; requests make what they need
            pass
        finally:
            self.finished.set()

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


def _make_task(item: tuple[str, str, str]) -> bool:
    return make(*item)


def make(path: str, out: str, folder: str) -> bool:
    """Write the thumbnail of ``path`` to ``out`` (atomically, under the folder's lock). False when the
    file cannot be read or decoded."""
    from PIL import Image

    from catalog.errors import ImageError
    from catalog.ingest.imaging import decode

    try:
        with open(path, "rb") as f:
            data = f.read()
        decoded = decode(data, suffix=os.path.splitext(path)[1].lower())
        img = decoded.rgb.copy()
    except (OSError, ImageError):
        return False
    img.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=QUALITY, optimize=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    temp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{os.getpid()}.tmp")
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        with open(temp, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(temp, out)
    finally:
        os.close(fd)
    return True


def _start_worker() -> None:
    """Each thumbnail worker as it starts: leave stopping to the parent, then take signals again."""
    from catalog.interrupts import SIGNALS, ignore_in_worker

    ignore_in_worker()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # blocked by the parent around the fork
