"""A catalogue this user may read but not write (an archived or shared one, a read-only mount) answers
every question; the commands that write refuse in one line."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.actions.test_resolve_edges import WITHOUT_OVERRIDE
from tests.actions.test_settle import UKBENCH, catalog, environment


def _as_user(db: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """catalog run without root's power to pass over file permissions (tests here may run as root)."""
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    command = [*prefix, sys.executable, "-m", "catalog", "--db", str(db), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def _read_only(folder: Path) -> None:
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)


def test_a_read_only_catalogue_answers_and_refuses_writes_in_one_line(tmp_path):
    env = environment(tmp_path)
    lib, store = tmp_path / "lib", tmp_path / "store"
    lib.mkdir()
    store.mkdir()
    for k, source in enumerate(sorted(UKBENCH.glob("*.jpg"))[:3]):
        shutil.copyfile(source, lib / f"{k}.jpg")
        shutil.copyfile(source, lib / f"{k} copy.jpg")
    db = store / "c.db"
    catalog(db, env, "index", str(lib), "--methods", "phash")
    asked = [("dupes",), ("copies", "-f", "json"), ("dupes", "--threshold", "10"), ("resolve",), ("marks",)]
    answers = [catalog(db, env, *question).stdout for question in asked]
    try:
        _read_only(store)
        for question, answer in zip(asked, answers, strict=True):
            read = _as_user(db, env, *question)
            assert (read.returncode, read.stdout, read.stderr) == (0, answer, ""), question
        for writes in (("index", str(lib)), ("resolve", "--apply")):
            refused = _as_user(db, env, *writes)
            assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused
            assert refused.stderr.startswith("catalog: error:") and "writable" in refused.stderr
        # The file alone read-only, in a folder this user may write (the lock files are made): the
        # first write refuses in one line too.
        store.chmod(0o755)
        for path in store.iterdir():
            path.chmod(0o444 if path == db else 0o644)
        shutil.copyfile(lib / "0.jpg", lib / "new.jpg")
        for writes in (("index", str(lib)), ("resolve", "--apply")):
            refused = _as_user(db, env, *writes)
            assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused
            assert refused.stderr.startswith("catalog: error: the catalogue is read-only"), refused.stderr
        (lib / "new.jpg").unlink()
        # A writer at work (its WAL and index files beside the catalogue): read through them.
        store.chmod(0o755)
        (store / "c.db").chmod(0o644)
        with sqlite3.connect(db) as writer:
            writer.execute("PRAGMA journal_mode=WAL")
            renamed = str(lib / "renamed.jpg")  # as an index would after a rename: only in the WAL yet
            writer.execute("UPDATE images SET path = ? WHERE path = ?", (renamed, str(lib / "0 copy.jpg")))
            writer.commit()
            assert (store / "c.db-wal").exists()
            _read_only(store)
            (store / "c.db-shm").chmod(0o444)
            seen = _as_user(db, env, "dupes", "-f", "json")
            assert seen.returncode == 0 and renamed in seen.stdout, seen.stderr
    finally:
        store.chmod(0o755)
        for path in store.iterdir():
            path.chmod(0o644)


def test_a_read_only_catalogue_of_an_older_catalog_says_it_needs_an_upgrade(tmp_path):
    env = environment(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    db = store / "c.db"
    shutil.copyfile(Path(__file__).parents[1] / "data" / "catalogue-76bda6e.db", db)
    try:
        _read_only(store)
        refused = _as_user(db, env, "status")
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "read-only and was made by an older catalog" in refused.stderr
    finally:
        store.chmod(0o755)
