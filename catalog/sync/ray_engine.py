"""Indexing through a Ray cluster (``catalog index --engine ray``): the reading, decoding and signing of
files fans out over the cluster's cores as Ray tasks, while this process plans, writes and stores pairs
as a local run does. Optional extra ``[ray]``; imported only by that engine.

Each task takes a batch of files (``BATCH``) and returns their results; a window of batches per cluster
core is kept in flight, and results are written as batches complete, in the local run's transactions.
The files must be readable at the same path on every node (a shared mount); on one machine, ``ray.init``
starts a local cluster. The CNN's batched step runs in the task too, on the worker's cores (a batch of
16 files is one forward pass), so this process receives finished signatures.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from catalog.errors import CatalogError
from catalog.ingest.scan import ScanResult, scan
from catalog.ingest.worker import FileResult, Task, process_in_turn

#: Files per Ray task: enough to outweigh a task's overhead (a few milliseconds), few enough to spread.
BATCH = 16
#: Batches in flight per core of the cluster.
WINDOW = 3


def _process_batch(tasks: list[Task], cnn: Any) -> list[FileResult]:
    """A task: read, decode and sign the files, batched steps included (the CNN runs on the worker's
    own cores, its model loaded once per worker process)."""
    from catalog.ingest.worker import finish_signatures

    results = list(process_in_turn(tasks))
    finish_signatures(results, cnn)
    return results


class RayRunner:
    """Runs an index's tasks on a Ray cluster: the same interface as the local runner."""

    def __init__(
        self,
        address: str | None,
        methods: tuple[str, ...],
        cnn: Any,
        cancel: threading.Event | None = None,
        workers: int | None = None,
    ):
        self.methods, self.cnn, self.cancel = methods, cnn, cancel
        #: A cluster this run started (no address): shut down with the run, however it ends.
        self.owns_cluster = address is None and not _initialized()
        self.ray = _start(address, workers)
        self.remote = self.ray.remote(_process_batch)
        self.pending: list[Any] = []

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def scan(self, root: str, elsewhere: Sequence[str] = ()) -> ScanResult:
        return scan(root, elsewhere)

    def run(self, root: str | None, tasks: list[Task]) -> Iterator[FileResult]:
        ray = self.ray
        # Largest first, files of one size side by side: byte-identical ones share a batch, decoded once.
        ordered = sorted(tasks, key=lambda task: task.size, reverse=True)
        batches = [ordered[k : k + BATCH] for k in range(0, len(ordered), BATCH)]
        window = max(1, int(ray.cluster_resources().get("CPU", 1)) * WINDOW)
        submitted = 0
        while submitted < len(batches) or self.pending:
            while submitted < len(batches) and len(self.pending) < window and not self.cancelled:
                self.pending.append(self.remote.remote(batches[submitted], self.cnn))
                submitted += 1
            if not self.pending:
                return
            done, self.pending = ray.wait(self.pending, num_returns=1)
            yield from ray.get(done[0])

    def close(self, abort: bool = False) -> None:
        """Stop what is in flight: a cluster this run started is shut down (its processes would outlive
        an interrupted run otherwise); on another, the tasks are cancelled. (Forced cancellation right
        before a shutdown can crash Ray's core worker: "Tried to complete task that was not pending".)"""
        if self.owns_cluster:
            self.ray.shutdown()
            self.owns_cluster = False
        else:
            for ref in self.pending:
                self.ray.cancel(ref)
        self.pending = []


def _initialized() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return bool(ray.is_initialized())


def _start(address: str | None, workers: int | None) -> Any:
    """Connect to the cluster at ``address`` (None: start a local one with ``workers`` CPUs), keeping
    this process's own SIGINT/SIGTERM handling (``ray.init`` replaces it)."""
    try:
        import ray
    except ImportError:
        raise CatalogError("--engine ray needs the [ray] extra (pip install 'catalog[ray]')") from None
    if ray.is_initialized():
        return ray
    if address not in (None, "auto", "local"):
        _probe(address)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None and workers:
        options["num_cpus"] = workers
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise CatalogError(f"cannot reach the Ray cluster {address or '(local)'}: {exc}") from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return ray


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail at once, in one line, when nothing answers at ``address`` (``ray.init`` would retry for
    minutes, printing warnings)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except ValueError:
        raise CatalogError(
            f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto"
        ) from None
    except OSError as exc:
        raise CatalogError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
