"""Kept answers: the bytes a ``dupes`` or ``copies`` printed, kept beside the catalogue and given again
while nothing they were made from has changed.

A million photos' answer takes seconds to make (a million rows read, grouped, 262 MB of JSON written)
and a fraction of a second to copy. An answer is kept under a key made of:
- what was asked: the command, method, threshold, options and format (``Question``);
- the catalogue's change stamp (``Catalog.changes_stamp``): database triggers draw a new random stamp
  at every write of images, signatures, roots, journal entries and marks, whoever writes (``index``,
  ``watch``, the review page, another program), so a kept answer is never older than the catalogue;
- the code that made it: the package's version and its source files' modification times;
- the output's encoding.

The stamp is read before the answer is made: a write landing while it is made can only make the
kept answer look older than it is (and be made again), never newer.

This module owns the folder ``<catalogue>.answers/`` (SQLite catalogues; a server catalogue keeps no
stamp, see ``catalog.models.CatalogueChanges``): an answer is written to a temporary file as it is
printed, and renamed to its key's name under the folder's lock only when the whole answer was printed;
an answer interrupted, or one whose command failed, is never kept. Each keep removes the answers of
other stamps and all but the ``KEEP`` newest within ``KEEP_BYTES``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TextIO, cast

import catalog
from catalog.config import sqlite_file

log = logging.getLogger("catalog.answers")

#: How long a remaking process is given to stop on SIGTERM before it is killed (seconds).
STOP_WAIT = 10.0

#: The most bytes a catalogue's kept answers take together: 2 GiB, eight of the largest at a million
#: images (262 MB each); past it the oldest go first.
KEEP_BYTES = 2 * 1024**3

#: How many answers a catalogue keeps (of its current stamp; the newest given or made).
KEEP = 8


@dataclass(frozen=True)
class Question:
    """What an answer answers: the command and every choice that shapes its output, as text (the key),
    and the arguments that ask it again (``catalog ARGS``, without ``--db``: see :class:`Remaking`)."""

    command: str
    choices: tuple[str, ...]
    args: tuple[str, ...] = field(default=(), compare=False)


def folder_of(url: str) -> Path | None:
    """Where a catalogue's kept answers live: beside a SQLite file; None for a server catalogue."""
    db_file = sqlite_file(url)
    return None if db_file is None else db_file.with_name(f"{db_file.name}.answers")


@cache
def code_stamp() -> str:
    """The package's version and the newest modification time of its source files: an upgrade or an
    edit makes every kept answer stale. Once per process (a command asks for it to give, then to keep)."""
    newest = 0
    root = Path(catalog.__file__).parent
    for folder in (root, *(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
    return f"{catalog.__version__}:{newest}"


class Answers:
    """The kept answers of one catalogue at one change stamp."""

    def __init__(
        self, folder: Path, stamp: str, budget: int = KEEP_BYTES, mark: tuple[int, int] | None = None
    ):
        self.folder = folder
        self.stamp = stamp
        #: The most bytes the kept answers take together (the newest is kept whatever its size).
        self.budget = budget
        #: Where the catalogue's log of changed images stood with this stamp (``catalog.patch``).
        self.mark = mark

    @classmethod
    def of(cls, url: str, stamp: str | None, mark: tuple[int, int] | None = None) -> Answers | None:
        """The catalogue's kept answers, or None where none are kept (no stamp, or not SQLite)."""
        folder = folder_of(url)
        return None if folder is None or stamp is None else cls(folder, stamp, mark=mark)

    def path(self, question: Question, out: TextIO) -> Path:
        """The file of ``question``'s answer at this stamp, as it would be printed to ``out``."""
        key = "\0".join([self.stamp, code_stamp(), _asked_as(question, out)])
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self.folder / f"{self._prefix}-{question.command}-{digest}.out"

    def question_path(self, question: Question, out: TextIO) -> Path:
        """The file that holds how to ask ``question`` again, whatever the stamp (see :func:`asked`)."""
        digest = hashlib.sha256(_asked_as(question, out).encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / f"{question.command}-{digest[:32]}.ask"

    @property
    def _prefix(self) -> str:
        """The start of the names of this stamp's answers."""
        return hashlib.sha256(self.stamp.encode()).hexdigest()[:12]

    def give(self, question: Question, out: TextIO) -> bool:
        """Print ``question``'s kept answer to ``out`` and say True, or say False if none is kept."""
        try:
            kept = open(self.path(question, out), "rb")  # noqa: SIM115 - closed below
        except OSError:
            return False
        with kept:
            with suppress(OSError):
                os.utime(kept.fileno())  # the newest given is the last one pruned
                os.utime(self.question_path(question, out))
            out.flush()
            _copy(kept, out)
        return True

    @contextmanager
    def keeping(self, question: Question, out: TextIO) -> Iterator[TextIO]:
        """A stream that prints to ``out`` and writes the same text to a temporary file, which becomes
        the kept answer when the block ends without an exception. A disk that refuses the copy costs
        the copy, never the answer."""
        target = self.path(question, out)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
            raw = open(temporary, "wb")  # noqa: SIM115 - closed below
        except OSError:
            yield out
            return
        tee = _Tee(out, raw)
        try:
            yield cast(TextIO, tee)
            tee.flush()
        except BaseException:
            raw.close()
            temporary.unlink(missing_ok=True)
            raise
        raw.close()
        if tee.failed:
            temporary.unlink(missing_ok=True)
            return
        self.keep_file(question, temporary, target, self.question_path(question, out))

    def keep_file(
        self,
        question: Question,
        temporary: Path,
        target: Path,
        asked: Path,
        then: Callable[[Path], None] | None = None,
    ) -> None:
        """Under the folder's lock: ``temporary`` (a whole answer) becomes the answer ``target``, the
        question is remembered, ``then(target)`` runs, and the folder is pruned; dropped if another
        command holds the lock."""
        from catalog.lock import try_lock

        try:
            with try_lock(self.folder / "lock") as locked:
                if not locked:  # another command keeps an answer at this moment: this one is dropped
                    temporary.unlink(missing_ok=True)
                    return
                if question.args:
                    asked_temporary = asked.with_name(f"{asked.name}.{uuid.uuid4().hex}.tmp")
                    asked_temporary.write_text(json.dumps(list(question.args)), "utf-8", "surrogateescape")
                    os.replace(asked_temporary, asked)
                os.replace(temporary, target)
                if then is not None:
                    then(target)
                self._prune(target)
        except OSError:
            temporary.unlink(missing_ok=True)

    def _prune(self, kept: Path) -> None:
        """Under the folder's lock, remove: the answers of other stamps; all of this stamp's but the
        ``KEEP`` newest that fit in the budget with ``kept``; all questions but the ``KEEP`` asked last;
        temporary files no command writes any more (a killed command's)."""
        answers: list[tuple[int, int, Path]] = []
        questions: list[tuple[int, Path]] = []
        for entry in os.scandir(self.folder):
            path = Path(entry.path)
            with suppress(OSError):
                if entry.name.endswith(".tmp"):
                    if not _being_written(path):
                        path.unlink(missing_ok=True)
                elif entry.name.endswith(".out") and not entry.name.startswith(self._prefix):
                    path.unlink(missing_ok=True)
                elif entry.name.endswith(".out") and path != kept:
                    status = entry.stat()
                    answers.append((status.st_mtime_ns, status.st_size, path))
                elif entry.name.endswith(".ask"):
                    questions.append((entry.stat().st_mtime_ns, path))
        answers.sort(reverse=True)
        questions.sort(reverse=True)
        used = kept.stat().st_size
        for count, (_, size, path) in enumerate(answers, start=1):
            used += size
            if count >= KEEP or used > self.budget:
                path.unlink(missing_ok=True)
        for _, path in questions[KEEP:]:
            path.unlink(missing_ok=True)
            for kind in (".base", ".plan.npz"):  # the layout kept of its answer (catalog.patch)
                path.with_suffix(kind).unlink(missing_ok=True)


def _asked_as(question: Question, out: TextIO) -> str:
    """A question as its answer is printed to ``out``: what it asks, and the output's encoding."""
    encoding = [str(getattr(out, "encoding", "")), str(getattr(out, "errors", ""))]
    return "\0".join([question.command, *question.choices, *encoding])


def kept(url: str) -> tuple[int, int]:
    """How many answers a catalogue keeps (of any stamp, until the next keep prunes them), and the
    bytes the folder holds for them (with the last answers and layouts ``catalog.patch`` keeps; a
    file linked twice counted once): what ``status`` tells."""
    folder = folder_of(url)
    count = 0
    sizes: dict[int, int] = {}
    if folder is not None and folder.is_dir():
        for entry in os.scandir(folder):
            if entry.name.endswith((".out", ".base", ".plan.npz")):
                with suppress(OSError):
                    status = entry.stat()
                    sizes[status.st_ino] = status.st_size
                    count += entry.name.endswith(".out")
    return count, sum(sizes.values())


def asked(url: str) -> list[list[str]]:
    """The arguments of the questions whose answers a catalogue keeps (the ``KEEP`` asked last, of any
    stamp), the last asked first: a writer asks them again after a change (:class:`Remaking`)."""
    folder = folder_of(url)
    found: list[tuple[int, list[str]]] = []
    if folder is None or not folder.is_dir():
        return []
    for entry in os.scandir(folder):
        if entry.name.endswith(".ask"):
            with suppress(OSError, ValueError):
                args = json.loads(Path(entry.path).read_text("utf-8", "surrogateescape"))
                found.append((entry.stat().st_mtime_ns, [str(a) for a in args]))
    found.sort(key=lambda item: item[0], reverse=True)
    unique: list[list[str]] = []
    for _, args in found:
        if args not in unique:
            unique.append(args)
    return unique[:KEEP]


class Remaking:
    """Asks a catalogue's kept questions again (``catalog --db URL ARGS`` with its output thrown away:
    the command keeps its own answer), one process at a time, without waiting for them: ``watch`` starts
    it once its changes have settled, polls it on its ticks, and stops it when something changes again
    or it stops itself. A question that fails is left for the next change (its error is logged)."""

    def __init__(self, url: str):
        self.url = url
        self.queue: list[list[str]] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []
        self.started = 0.0
        self.made_before = 0
        #: How long the last remaking took (seconds): the whole of it, or as long as it ran before a
        #: change stopped it, if that was longer.
        self.took = 0.0
        #: How many answers were made again (for the watcher's log and tests).
        self.made = 0

    def start(self) -> None:
        self.stop()
        self.queue = asked(self.url)
        self.started = time.monotonic()
        self.made_before = self.made
        if self.queue:
            log.info("making the kept answers again (%d)", len(self.queue))
        self.poll()

    def poll(self) -> bool:
        """Start the next question once the one in hand is answered; True while any is left."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return True
            if code == 0:
                self.made += 1
            else:
                log.warning("asking `catalog %s` again failed (exit code %s)", " ".join(self.args), code)
            self.process = None
            if not self.queue:
                self.took = time.monotonic() - self.started
                log.info("%d kept answer(s) made again (%.1f s)", self.made - self.made_before, self.took)
        if not self.queue:
            return False
        self.args = self.queue.pop(0)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "catalog", "--db", self.url, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return True

    def stop(self) -> None:
        """Stop the question in hand (its answer is not kept: it ends before it is whole) and the rest."""
        self.queue = []
        if self.process is not None:
            self.took = max(self.took, time.monotonic() - self.started)
            self.process.terminate()  # the command stops on SIGTERM (see catalog.interrupts)
            try:
                self.process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def _being_written(path: Path) -> bool:
    """Whether a temporary answer may still be written: one modified in the last hour. (A command that
    prints for an hour is far past any catalogue this tool answers for; a killed one's file goes.)"""
    try:
        return time.time() - path.stat().st_mtime < 3600
    except OSError:
        return False


class _Tee(io.TextIOBase):
    """Text to ``out``, and the same text encoded as ``out`` encodes it to ``raw``."""

    def __init__(self, out: TextIO, raw: io.BufferedWriter):
        super().__init__()
        self.out = out
        self.raw = raw
        self.encoding_ = getattr(out, "encoding", None) or "utf-8"
        self.errors_ = getattr(out, "errors", None) or "strict"
        self.failed = False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.encoding_

    @property
    def errors(self) -> str:  # type: ignore[override]
        return self.errors_

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        written = self.out.write(text)
        if not self.failed:
            try:
                self.raw.write(text.encode(self.encoding_, self.errors_))
            except OSError:
                self.failed = True
        return written

    def flush(self) -> None:
        self.out.flush()
        if not self.failed:
            try:
                self.raw.flush()
            except OSError:
                self.failed = True


def _copy(kept: io.BufferedReader, out: TextIO) -> None:
    """The kept bytes to ``out``: by ``sendfile`` to a real file or pipe, else through its buffer."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = -1
    if fd >= 0:
        size = os.fstat(kept.fileno()).st_size
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(fd, kept.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
            return
        except OSError as exc:
            if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS):  # no sendfile here; else raised
                raise
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        shutil.copyfileobj(kept, buffer, 1 << 20)
        buffer.flush()
    else:
        encoding = getattr(out, "encoding", None) or "utf-8"
        errors = getattr(out, "errors", None) or "strict"
        out.write(kept.read().decode(encoding, errors))
    out.flush()
