"""Helpers the benchmark scripts share: a catalogue filled with synthetic signatures, and a whole
command timed with its peak memory."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, text

from catalog.methods import get_method
from catalog.store import Catalog
from catalog.store.models import Image, Signature


def fill_catalogue(url: str, method: str, signatures: Sequence[bytes], batch: int = 20_000) -> None:
    """A catalogue of images ``/synthetic/NNNNNNN.jpg``, one per signature of ``method``."""
    with Catalog.open(url) as catalog:
        catalog.set_method(method, get_method(method).version)
        indexed_at = datetime(2026, 1, 1)
        with catalog.engine.begin() as conn:
            for start in range(0, len(signatures), batch):
                chunk = range(start, min(len(signatures), start + batch))
                images = [
                    {"id": i + 1, "path": f"/synthetic/{i:07d}.jpg", "size": 1000, "mtime_ns": 0,
                     "content_hash": f"{i:064x}", "indexed_at": indexed_at}
                    for i in chunk
                ]  # fmt: skip
                rows = [{"image_id": i + 1, "method": method, "value": signatures[i]} for i in chunk]
                if conn.dialect.name == "postgresql":  # statements of 1,000 rows: the driver's
                    # executemany sends one statement per row, and each fires the statement triggers
                    for table, values in ((Image, images), (Signature, rows)):
                        for at in range(0, len(values), 1000):
                            conn.execute(insert(table).values(values[at : at + 1000]))
                else:
                    conn.execute(insert(Image), images)
                    conn.execute(insert(Signature), rows)
            if conn.dialect.name == "postgresql":  # ids were given: the next image takes the one after
                sequence = "pg_get_serial_sequence('images', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, max(id)) FROM images"))


def run_catalog(*args: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``catalog ARGS`` as a whole process (in ``env``): (seconds, peak RSS in MB, stdout).

    The peak comes from /usr/bin/time: read inside a child of a large process, ``ru_maxrss`` would
    start from the parent's own high-water mark. ``-P``: the catalog imported is the one on
    ``PYTHONPATH`` (a worktree of another commit) or installed, never a ``catalog`` folder in the
    current directory, which ``-m`` would put first.
    """
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-P", "-m", "catalog", *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"catalog {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    seconds = time.perf_counter() - started
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout


def run_catalog_tree(
    *args: str, before: Callable[[], None] = lambda: None
) -> tuple[float, float, float, str]:
    """As :func:`run_catalog`, with the peak of the whole process tree's memory beside: ``catalog``
    forks readers and writers for a million-image answer, and /usr/bin/time gives the largest of the
    processes, not their sum. (seconds, peak RSS MB of the largest process, peak of the summed PSS
    of every process in MB (shared pages counted once; sampled every 50 ms), stdout). ``before`` runs
    before each run.

    Two runs: the seconds come from the first, unobserved; the second is sampled (reading a large
    process's PSS walks its page tables and slows it down by a second or more)."""
    before()
    seconds, peak, stdout = run_catalog(*args)
    before()
    command = [sys.executable, "-P", "-m", "catalog", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tree_peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            tree_peak[0] = max(tree_peak[0], sum(_pss_kb(pid) for pid in _tree(process.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, None, stderr)
    return seconds, peak, tree_peak[0] / 1024, stdout


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (as /proc lists them now)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            todo += [int(p) for p in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
    return found


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
