"""Where a million-image ``dupes -f json`` spends its time, and the least each read can cost here.

Issue 23 asks for every ``dupes`` and ``copies`` under 2 s at a million images. On ``scale.py``'s
catalogue (bursts 0.3) the stored groups hold about 880,000 members, and the answer lists each with
eleven facts. This script times, on one catalogue (``--db``, or one filled and indexed here as
``scale.py`` fills it):

- the whole command, ``catalog dupes --method phash -f json`` (best of ``--runs``, peak RSS);
- importing what the command imports, in a fresh interpreter;
- the two reads the stored answer makes, as the catalogue makes them (``group_rows``, ``image_table``
  of the members), each in this process;
- the same rows fetched by Python's ``sqlite3`` with nothing built from them (the driver's floor);
- with ``adbc-driver-sqlite`` and ``pyarrow`` importable (not dependencies of catalog), the same rows
  read into Arrow columns by a C driver: what a reader without Python objects per value costs.

    .venv/bin/python benchmarks/answer_floor.py [--db FILE] [--n 1000000] [--runs 2]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from scale import make_codes, sample_codes, signatures  # noqa: E402

from catalog.store import Catalog  # noqa: E402
from common import fill_catalogue, run_catalog  # noqa: E402

#: The image table's columns as ``Catalog.image_table`` reads them.
COLUMNS = (
    "id, path, size, coalesce(width, -1), coalesce(height, -1), format, content_hash, mtime_ns, "
    "coalesce(content_width, -1), coalesce(content_height, -1), taken, camera_make, camera_model, "
    "has_gps, has_exif"
)
MEMBERS = "SELECT image_id, reference_id, rank, score FROM group_members WHERE method = 'phash'"
TABLE = f"SELECT {COLUMNS} FROM images WHERE error IS NULL"


def timed(work) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _arrow(connection, sql: str):  # type: ignore[no-untyped-def]
    """``sql``'s rows as one Arrow table, read by the ADBC driver."""
    cursor = connection.cursor()
    cursor.execute(sql)
    return cursor.fetch_arrow_table()


def build(path: Path, n: int) -> None:
    """A catalogue as ``scale.py`` makes it (real-distribution phash codes, bursts 0.3), indexed once."""
    rng = np.random.default_rng(2026)
    fill_catalogue(f"sqlite:///{path}", "phash", signatures(make_codes(sample_codes(30), n, 0.3, rng)))
    (path.parent / "nothing").mkdir()
    seconds, peak, _ = run_catalog(
        "--db", str(path), "index", str(path.parent / "nothing"), "--methods", "phash"
    )
    print(f"(built {n:,} images: first index {seconds:.1f} s, {peak:,.0f} MB)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db", help="a catalogue indexed with phash (else one is built in a temporary folder)"
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    work = None
    if args.db:
        db = Path(args.db)
    else:
        work = Path(tempfile.mkdtemp(prefix="catalog-floor-"))
        db = work / "big.db"
        build(db, args.n)
    rows: list[tuple[str, float, str]] = []
    try:
        runs = [
            run_catalog("--db", str(db), "dupes", "--method", "phash", "-f", "json") for _ in range(args.runs)
        ]
        best = min(runs, key=lambda r: r[0])
        rows.append(
            (
                "dupes -f json, whole command",
                best[0],
                f"{best[1]:,.0f} MB peak, {len(best[2].encode()):,} bytes",
            )
        )
        imports = "import catalog.cli.app, catalog.grouping.stored, catalog.cli.listing"
        seconds, _ = timed(lambda: subprocess.run([sys.executable, "-P", "-c", imports], check=True))
        rows.append(("importing the command's modules (fresh interpreter)", seconds, ""))
        with Catalog.open(f"sqlite:///{db}", create=False) as catalog:
            seconds, members = timed(lambda: catalog.group_rows("phash"))
            count = len(members[0])
            rows.append(("group_rows (the stored members)", seconds, f"{count:,} rows"))
            seconds, table = timed(lambda: catalog.image_table(grouped_by="phash"))
            rows.append(("image_table of the members", seconds, f"{len(table):,} rows"))
        with sqlite3.connect(db) as raw:
            seconds, got = timed(lambda: raw.execute(MEMBERS).fetchall())
            rows.append(("sqlite3 fetchall, members (no arrays built)", seconds, f"{len(got):,} rows"))
            seconds, got = timed(lambda: raw.execute(TABLE).fetchall())
            rows.append(("sqlite3 fetchall, every image's 15 columns", seconds, f"{len(got):,} rows"))
        try:
            import adbc_driver_sqlite.dbapi as adbc  # type: ignore[import-not-found]
        except ImportError:
            missing = "pip install adbc-driver-sqlite pyarrow"
            rows.append(("adbc-driver-sqlite (not installed)", float("nan"), missing))
        else:
            with adbc.connect(str(db)) as connection:
                for label, sql in (("members", MEMBERS), ("every image's 15 columns", TABLE)):
                    seconds, got = timed(lambda sql=sql: _arrow(connection, sql))
                    rows.append((f"ADBC into Arrow, {label}", seconds, f"{got.num_rows:,} rows"))
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | seconds | |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for label, seconds, note in rows:
        print(f"| {label:<{width}} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()
