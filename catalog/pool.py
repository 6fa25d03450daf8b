"""Worker processes that read, decode and sign files (``catalog.worker.process``).

The pool can be started before the main process has imported SQLAlchemy and opened the catalogue, so
that the workers' own start-up (Pillow, NumPy, the hash libraries) overlaps the main process's.
This module imports nothing heavy itself.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog.scan import ScanResult
    from catalog.worker import FileResult, Task


def _warm_up(methods: tuple[str, ...]) -> None:
    from catalog.methods import get_method

    for name in methods:
        get_method(name).warm_up()


class WorkerPool:
    def __init__(self, workers: int, warm_methods: Iterable[str] = ()):
        self.workers = workers
        self._pool = multiprocessing.get_context().Pool(workers, _warm_up, (tuple(warm_methods),))

    def map(self, tasks: list[Task]) -> Iterator[FileResult]:
        """Results in completion order. Largest files go first, so that no worker is left with a
        big photo at the end while the others idle."""
        from catalog.worker import process

        ordered = sorted(tasks, key=lambda task: task.size, reverse=True)
        chunksize = max(1, min(16, len(tasks) // (self.workers * 16)))
        return self._pool.imap_unordered(process, ordered, chunksize=chunksize)

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def terminate(self) -> None:
        self._pool.terminate()
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
    from catalog.methods import pixel_methods
    from catalog.scan import scan
    from catalog.worker import Task

    wanted = pixel_methods(methods)
    start = EarlyStart(WorkerPool(workers, wanted))
    for root in roots:
        found = scan(root)
        tasks = [Task(path, size, mtime_ns, wanted) for path, (size, mtime_ns) in found.files.items()]
        start.roots[root] = EarlyRun(found, tasks, start.pool.map(tasks))
    return start
