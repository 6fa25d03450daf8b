"""Worker processes that read, decode and sign files (``catalog.ingest.worker.process``).

The pool can be started before the main process has imported SQLAlchemy and opened the catalogue, so
that the workers' own start-up (Pillow, NumPy, the hash libraries) overlaps the main process's.
This module imports nothing heavy itself.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from catalog.background import START_METHOD

if TYPE_CHECKING:
    from catalog.ingest.scan import ScanResult
    from catalog.ingest.worker import FileResult, Task


#: Files of one size handed to a worker together, at most (see ``WorkerPool.map``).
ALIKE = 4
#: Seconds ``WorkerPool.terminate`` gives the pool's own clean-up before it kills the workers itself.
TERMINATE_WAIT = 0.5


def _start(methods: tuple[str, ...]) -> None:
    """Each worker as it starts: leave stopping to the parent, then import what the methods need."""
    from catalog.interrupts import SIGNALS, ignore_in_worker

    ignore_in_worker()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # blocked by the parent around the fork
    from catalog.methods import get_method

    for name in methods:
        get_method(name).warm_up()


class WorkerPool:
    def __init__(self, workers: int, warm_methods: Iterable[str] = ()):
        from catalog.interrupts import SIGNALS

        self.workers = workers
        # A signal arriving while a worker is being born would reach it before it learns to ignore
        # it: blocked meanwhile, delivered to the parent once the pool exists.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            context = multiprocessing.get_context(START_METHOD)
            self._pool = context.Pool(workers, _start, (tuple(warm_methods),))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def map(self, tasks: list[Task]) -> Iterator[FileResult]:
        """Results in completion order. Largest files go first, so that no worker is left with a
        big photo at the end while the others idle; files of one size go to one worker together, so
        that byte-identical ones are decoded once (``catalog.ingest.worker.process_alike``)."""
        from catalog.ingest.worker import alike_batches, process_alike

        batches = alike_batches(tasks, ALIKE)
        # at most 16 files a message, as when every file went alone
        chunksize = max(1, min(16 // ALIKE, len(batches) // (self.workers * 16)))
        done = self._pool.imap_unordered(process_alike, batches, chunksize=chunksize)
        return (result for batch in done for result in batch)

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def terminate(self) -> None:
        """Stop at once: the workers are killed, whatever they were doing (results not yet taken are
        lost; the next run reads those files again).

        ``Pool.terminate`` takes the locks of the pool's queues before it stops the workers. A worker
        that was killed from outside while it held one (a SIGTERM sent to the whole process group, as
        ``kill -- -PGID`` or systemd do) holds it for ever, and ``Pool.terminate`` would wait for ever:
        it gets ``TERMINATE_WAIT`` seconds, then the workers are killed and the pool is left behind (the
        process is on its way out)."""
        stopping = threading.Thread(target=self._pool.terminate, name="catalog-pool-terminate", daemon=True)
        stopping.start()
        stopping.join(TERMINATE_WAIT)
        if stopping.is_alive():
            for process in multiprocessing.active_children():
                process.kill()
            return
        self._pool.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        self.terminate() if kind is not None else self.close()


@dataclass
class EarlyRun:
    """Files of a root already handed to the workers before the catalogue was opened."""

    found: ScanResult
    tasks: list[Task]
    results: Iterator[FileResult]


@dataclass
class EarlyStart:
    pool: WorkerPool
    roots: dict[str, EarlyRun] = field(default_factory=dict)


def start_new_catalogue(roots: list[str], methods: Iterable[str], workers: int) -> EarlyStart:
    """For a catalogue that does not exist yet every file will be read: scan the roots and start reading
    them now, while the main process loads the database layer. The indexer still plans every root from
    the catalogue and uses these results only if its plan is the same."""
    from catalog.ingest.scan import other_roots, scan
    from catalog.ingest.worker import Task
    from catalog.methods import pixel_methods

    wanted = pixel_methods(methods)
    start = EarlyStart(WorkerPool(workers, wanted))
    for root in roots:
        found = scan(root, other_roots(root, roots))
        tasks = [Task(path, size, mtime_ns, wanted) for path, (size, mtime_ns) in found.files.items()]
        start.roots[root] = EarlyRun(found, tasks, start.pool.map(tasks))
    return start
