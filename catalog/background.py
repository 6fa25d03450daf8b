"""Work done by a forked process while this one does other work: both cores at work on one answer.

A million-image answer spends seconds in reading rows and making lines, work held by the GIL (a
thread would only contend for it). :class:`Forked` runs a function in a child forked from this process
(it sees this process's memory as it was), and gives back the results (bytes) it yields, one by one as
they come. The child ignores Ctrl-C and dies with its parent (``catalog.interrupts.ignore_in_worker``);
it ends with ``os._exit``, so that nothing of the parent's (database connections, buffered output) is
finalised there; it never prints. Results come back through a memory file (``os.memfd_create``), gone
with the last process that holds it. When the child fails, :meth:`Forked.next` says so (None), and the
caller does the work itself. This module imports nothing heavy.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

#: How worker processes start, chosen explicitly (Python 3.14 changes the default on Linux): ``fork``
#: starts a worker in milliseconds with Pillow and NumPy already imported by the parent (see
#: ``cli.early_start``). Pools are created before any thread of ours runs, or by the watcher, whose
#: threads (watchdog's) hold no lock a worker needs. (Here, below every user: the worker pool and the
#: forked readers alike.)
START_METHOD = "fork"


def can_fork() -> bool:
    """Whether this thread may fork a helper: the main thread only. A fork copies only the thread that
    makes it; from a server's worker thread, a lock another thread holds at that moment would stay
    held in the child for ever."""
    return threading.current_thread() is threading.main_thread()


class Forked:
    """``work()`` run in a forked process, started at once."""

    def __init__(self, work: Callable[[], Iterator[bytes]]):
        import multiprocessing

        from catalog.interrupts import SIGNALS

        context = multiprocessing.get_context(START_METHOD)
        receiver, sender = context.Pipe(duplex=False)
        # Results travel through a memory file both processes hold (a pipe moves 150 MB in 0.3 s), the
        # pipe says only where each is; where there are no memory files, through the pipe itself.
        memfd_create = getattr(os, "memfd_create", None)
        self._memory: int | None = memfd_create("catalog-forked") if memfd_create is not None else None
        # A signal arriving while the child is being born would reach it before it learns to ignore
        # it: blocked meanwhile, as the worker pools do.
        self._process: BaseProcess | None = None
        self._receiver: Connection | None = receiver
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            process = context.Process(  # type: ignore[attr-defined]
                target=_run, args=(work, sender, self._memory), daemon=True
            )
            process.start()
            self._process = process
        finally:
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                sender.close()
            except BaseException:
                # A signal held back while the child was born is raised now, before the caller holds
                # this object to close it: the child is stopped here (killed: it may be frozen, which
                # the exit's terminate-and-join of daemon processes would wait on for ever).
                self.close()
                raise

    def next(self) -> bytes | None:
        """The next result of ``work``, once it is there (None if the child failed; then the process is
        stopped, and every later call answers None too)."""
        if self._receiver is None:
            return None
        try:
            told = self._receiver.recv_bytes()
            if self._memory is None:
                return told
            at, size = int.from_bytes(told[:8], "little"), int.from_bytes(told[8:], "little")
            parts: list[bytes] = []
            while (done := sum(map(len, parts))) < size:
                part = os.pread(self._memory, size - done, at + done)
                if not part:
                    raise EOFError
                parts.append(part)
            return b"".join(parts) if len(parts) != 1 else parts[0]
        except (EOFError, OSError):
            self.close()
            return None

    def close(self) -> None:
        """Stop the process if it still runs."""
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._process = None
        if self._memory is not None:
            os.close(self._memory)
            self._memory = None

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run(work: Callable[[], Iterator[bytes]], sender: Connection, memory: int | None) -> None:
    code = 1
    try:
        from catalog.interrupts import SIGNALS, ignore_in_worker

        ignore_in_worker()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        at = 0
        for result in work():
            if memory is None:
                sender.send_bytes(result)
                continue
            view, written = memoryview(result), 0
            while written < len(view):
                written += os.pwrite(memory, view[written:], at + written)
            sender.send_bytes(at.to_bytes(8, "little") + len(view).to_bytes(8, "little"))
            at += len(view)
        code = 0
    except BaseException:  # noqa: BLE001, S110 - the parent does the work itself
        pass
    finally:
        os._exit(code)
