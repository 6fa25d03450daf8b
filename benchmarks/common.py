"""Helpers the benchmark scripts share: a catalogue filled with synthetic signatures, and a whole
command timed with its peak memory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert

from catalog.methods import get_method
from catalog.models import Image, Signature
from catalog.store import Catalog


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
                conn.execute(insert(Image), images)
                rows = [{"image_id": i + 1, "method": method, "value": signatures[i]} for i in chunk]
                conn.execute(insert(Signature), rows)


def run_catalog(*args: str) -> tuple[float, float, str]:
    """Run ``catalog ARGS`` as a whole process: (seconds, peak RSS in MB, stdout).

    The peak comes from /usr/bin/time: read inside a child of a large process, ``ru_maxrss`` would
    start from the parent's own high-water mark.
    """
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "catalog", *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout
