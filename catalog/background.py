"""Work done by a forked process while this one does other work: both cores at work on one answer.

A million-image answer spends seconds in reading rows and in formatting lines, work held by the GIL
(a thread would only contend for it). :class:`Forked` runs a function in a child forked from this
process (it sees this process's memory as it was), and gives back the bytes it returned. The child
ignores Ctrl-C and dies with its parent (``catalog.interrupts.ignore_in_worker``); it ends with
``os._exit``, so that nothing of the parent's (database connections, buffered output) is finalised
there; it never prints. When it fails, :meth:`Forked.result` says so (None), and the caller does the
work itself. This module imports nothing heavy.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess


class Forked:
    """``work()`` run in a forked process, started at once."""

    def __init__(self, work: Callable[[], bytes]):
        import multiprocessing

        from catalog.interrupts import SIGNALS
        from catalog.pool import START_METHOD

        context = multiprocessing.get_context(START_METHOD)
        receiver, sender = context.Pipe(duplex=False)
        # A signal arriving while the child is being born would reach it before it learns to ignore
        # it: blocked meanwhile, as the worker pools do.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            process = context.Process(target=_run, args=(work, sender), daemon=True)  # type: ignore[attr-defined]
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        sender.close()
        self._process: BaseProcess | None = process
        self._receiver: Connection | None = receiver

    def result(self) -> bytes | None:
        """What ``work`` returned, once it has (None if it failed); the process is gone after."""
        try:
            return self._receiver.recv_bytes() if self._receiver is not None else None
        except (EOFError, OSError):
            return None
        finally:
            self.close()

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

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run(work: Callable[[], bytes], sender: Connection) -> None:
    code = 1
    try:
        from catalog.interrupts import SIGNALS, ignore_in_worker

        ignore_in_worker()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        sender.send_bytes(work())
        code = 0
    except BaseException:  # noqa: BLE001, S110 - the parent does the work itself
        pass
    finally:
        os._exit(code)
