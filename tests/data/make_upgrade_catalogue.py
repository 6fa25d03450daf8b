"""Make ``tests/data/catalogue-76bda6e.db``: a catalogue as the code of commit 76bda6e leaves it, which
``tests/cli/test_golden.py::test_upgrade_from_76bda6e`` opens with the current code (the migrations run when a
catalogue is opened) and whose answers it compares with golden files recorded before any redesign.

The committed file was made by this script at commit 76bda6e (the ``golden`` branch, whose ``catalog/``
and ``migrations/`` are 76bda6e's), with the repository's .venv, from the shared sample photos:

    git worktree add /tmp/catalog-76bda6e 76bda6e   # or any checkout whose catalog/ and migrations/ are it
    cp tests/data/make_upgrade_catalogue.py /tmp/catalog-76bda6e/tests/data/    # if it is not there
    cd /tmp/catalog-76bda6e && /path/to/.venv/bin/python tests/data/make_upgrade_catalogue.py

It runs the code of the checkout it lives in (not an installed ``catalog``: the repository root goes first
on ``sys.path``, and ``catalog.migrations`` is loaded from its ``migrations/``, which an editable install of
another checkout would otherwise supply), and refuses to run when ``catalog/`` or ``migrations/`` differ
from 76bda6e (``--any-commit`` overrides that, for experiments only).

What it does, in order (the catalogue stores absolute paths, so the library lives at a fixed place):

1. ``make_library()``: lays out LIBRARY_ROOT (``/tmp/catalog-upgrade-library``, emptied first) from
   ``../shared/data``: 4 camera photos in ``Camera/``, byte copies and altered copies (half size, grayscale,
   PNG) of some in ``Backup/`` and ``Downloads/``, one unreadable ``Downloads/broken.jpg``, 4 views of a
   UKBench object and 4 Fruits-360 frames in ``Samples/``; every file with a fixed modified time.
2. ``catalog index Camera Backup Downloads Samples --methods exact,ahash,phash,dhash,whash`` into a new
   catalogue, then what a user does next: ``dupes`` and ``copies`` (phash, dhash, exact; text and JSON),
   ``mark not-duplicate`` of two look-alike fruit frames, and ``resolve -m exact --keep oldest --action
   move --to MOVED_ROOT --apply`` (journaled).
3. Copies the catalogue (one file, its WAL checkpointed into it, still in WAL mode; the kept answers and
   lock files beside it are caches and stay out) to ``tests/data/catalogue-76bda6e.db``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

COMMIT = "76bda6e"
REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
LIBRARY_ROOT = Path("/tmp/catalog-upgrade-library")
MOVED_ROOT = Path("/tmp/catalog-upgrade-moved")
OUTPUT = Path(__file__).resolve().parent / f"catalogue-{COMMIT}.db"
METHODS = "exact,ahash,phash,dhash,whash"
BASE_TIME = 1_500_000_000  # 2017-07-14T02:40:00Z
DAY = 86_400

#: (path in the library, source under the shared data or None for junk bytes, alteration)
LIBRARY: list[tuple[str, str | None, str]] = [
    ("Camera/IMG_1001.jpg", "photos/Canon_IXUS.jpg", "copy"),
    ("Camera/IMG_1002.jpg", "photos/Olympus_C960.jpg", "copy"),
    ("Camera/IMG_1003.jpg", "photos/Nikon_E950.jpg", "copy"),
    ("Camera/IMG_1004.jpg", "photos/Ricoh_DC-3Z_(normal_res).jpg", "copy"),
    ("Backup/IMG_1001.jpg", "photos/Canon_IXUS.jpg", "copy"),
    ("Backup/IMG_1003.jpg", "photos/Nikon_E950.jpg", "copy"),
    ("Backup/IMG_1004.png", "photos/Ricoh_DC-3Z_(normal_res).jpg", "png"),
    ("Downloads/IMG_1001 (1).jpg", "photos/Canon_IXUS.jpg", "copy"),
    ("Downloads/olympus-small.jpg", "photos/Olympus_C960.jpg", "half"),
    ("Downloads/nikon-gray.jpg", "photos/Nikon_E950.jpg", "gray"),
    ("Downloads/broken.jpg", None, "junk"),
    ("Samples/ukbench00200.jpg", "ukbench-500/ukbench00200.jpg", "copy"),
    ("Samples/ukbench00201.jpg", "ukbench-500/ukbench00201.jpg", "copy"),
    ("Samples/ukbench00202.jpg", "ukbench-500/ukbench00202.jpg", "copy"),
    ("Samples/ukbench00203.jpg", "ukbench-500/ukbench00203.jpg", "copy"),
    ("Samples/fruit-020.jpg", "fruits360-96/020.jpg", "copy"),
    ("Samples/fruit-021.jpg", "fruits360-96/021.jpg", "copy"),
    ("Samples/fruit-022.jpg", "fruits360-96/022.jpg", "copy"),
    ("Samples/fruit-023.jpg", "fruits360-96/023.jpg", "copy"),
]
ROOTS = ("Camera", "Backup", "Downloads", "Samples")


def make_library(root: Path = LIBRARY_ROOT) -> Path:
    """Lay out LIBRARY below ``root`` (emptied first): the same bytes and modified times every time."""
    from PIL import Image, ImageOps

    shutil.rmtree(root, ignore_errors=True)
    for n, (relative, source, how) in enumerate(LIBRARY):
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_bytes(b"not a picture at all\x00" * 4)
        elif how == "copy":
            shutil.copyfile(SHARED_DATA / source, target)
        else:
            with Image.open(SHARED_DATA / source) as img:
                img.load()
                if how == "half":
                    img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS).save(
                        target, quality=80
                    )
                elif how == "gray":
                    ImageOps.grayscale(img).save(target, quality=90, exif=img.info.get("exif", b""))
                else:  # png
                    img.save(target)
        stamp = (BASE_TIME + n * DAY) * 10**9
        os.utime(target, ns=(stamp, stamp))
    return root


def _use_this_checkout() -> None:
    """Import ``catalog`` from this checkout, with its ``migrations/`` as ``catalog.migrations``."""
    sys.path.insert(0, str(REPO))
    import catalog

    assert Path(catalog.__file__).resolve().parent == REPO / "catalog", catalog.__file__
    spec = importlib.util.spec_from_file_location(
        "catalog.migrations",
        REPO / "migrations" / "__init__.py",
        submodule_search_locations=[str(REPO / "migrations")],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["catalog.migrations"] = module
    spec.loader.exec_module(module)
    catalog.migrations = module


def _check_commit() -> None:
    same = subprocess.run(
        ["git", "-C", str(REPO), "diff", "--quiet", COMMIT, "--", "catalog", "migrations"], check=False
    )
    if same.returncode != 0:
        sys.exit(f"catalog/ or migrations/ differ from {COMMIT}: run this at {COMMIT} (or pass --any-commit)")


def _catalog(db: Path, *args: str) -> None:
    from catalog.cli.app import app

    print(f"$ catalog {' '.join(args)}", flush=True)
    code = app(["--db", str(db), *args], prog_name="catalog", standalone_mode=False)
    if code not in (None, 0):  # (without standalone mode, an exit code is returned)
        sys.exit(f"catalog {' '.join(args)} exited with {code}")


def make_catalogue(output: Path = OUTPUT) -> Path:
    library = make_library()
    shutil.rmtree(MOVED_ROOT, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="catalog-upgrade-") as work:
        db = Path(work) / "catalog.db"
        home = Path(work) / "home"
        home.mkdir()
        os.environ["XDG_DATA_HOME"] = str(home)  # nothing goes to the desktop trash, but just in case
        _catalog(db, "index", *(str(library / r) for r in ROOTS), "--methods", METHODS, "--workers", "2")
        for method in ("phash", "dhash", "exact"):
            _catalog(db, "dupes", "--method", method)
            _catalog(db, "dupes", "--method", method, "--format", "json")
        _catalog(db, "copies", "--method", "phash")
        _catalog(db, "copies", "--method", "phash", "--format", "json")
        fruit = library / "Samples"
        _catalog(db, "mark", "not-duplicate", str(fruit / "fruit-020.jpg"), str(fruit / "fruit-023.jpg"))
        _catalog(
            db,
            "resolve",
            "-m",
            "exact",
            "--keep",
            "oldest",
            "--action",
            "move",
            "--to",
            str(MOVED_ROOT),
            "--apply",
        )
        _catalog(db, "status")
        conn = sqlite3.connect(db)  # one file: everything in the WAL written into it (still in WAL mode)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, output)
    print(f"wrote {output} ({output.stat().st_size:,} bytes)")
    return output


if __name__ == "__main__":
    if "--any-commit" not in sys.argv[1:]:
        _check_commit()
    _use_this_checkout()
    make_catalogue()
