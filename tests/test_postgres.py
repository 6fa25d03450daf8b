"""The same code on PostgreSQL: a throwaway server in tmp_path (unix socket only, no TCP), or the
server named by CATALOG_TEST_POSTGRES_URL. Skipped, with the reason, where neither is available."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from catalog.groups import copy_counts, find_groups
from catalog.indexer import index
from catalog.store import Catalog, Scope


def _postgres_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres_url():  # type: ignore[no-untyped-def]
    if os.environ.get("CATALOG_TEST_POSTGRES_URL"):
        yield os.environ["CATALOG_TEST_POSTGRES_URL"]
        return
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    user = None
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
    base = Path(tempfile.mkdtemp(prefix="catalog-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if user is not None:
        for path in (base, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    as_user = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, timeout=120, **as_user)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "catalog", "--no-sync")
    run(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"),
        "-o", f"-k {sockets} -c listen_addresses='' -c fsync=off", "start",
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://catalog@/postgres?host={sockets}"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_index_dupes_copies_move_and_delete_on_postgres(postgres_url, photo, pics, make_image):
    original = photo("Olympus_C960.jpg", "a/o.jpg")
    shutil.copyfile(original, pics / "a" / "o-copy.jpg")
    photo("Nikon_E950.jpg", "b/other.jpg")
    (pics / "bad.jpg").write_bytes(b"not an image")
    with Catalog.open(postgres_url) as catalog:
        for table in ("code_pairs", "signatures", "images", "roots", "methods"):  # a clean slate per run
            with catalog.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {table}")
        report = index(catalog, [str(pics)], methods=["phash", "dhash"])
        assert report.added == 3 and [p for p, _ in report.errors] == [str(pics / "bad.jpg")]
        groups = find_groups(catalog, "exact").groups
        assert [{m.image.path for m in g} for g in groups] == [
            {str(original), str(pics / "a" / "o-copy.jpg")}
        ]
        _, _, copies = copy_counts(catalog, "phash")
        assert copies[str(original)] == 1 and copies[str(pics / "b" / "other.jpg")] == 0

        (pics / "b" / "other.jpg").rename(pics / "moved.jpg")
        (pics / "a" / "o-copy.jpg").unlink()
        report = index(catalog, [str(pics)])
        assert (report.moved, report.removed, report.unchanged) == (1, 1, 2)
        assert set(catalog.paths().values()) == {str(original), str(pics / "moved.jpg")}
        assert catalog.ids_lacking(Scope(folders=(str(pics),)), ["phash", "dhash"]) == {}


def test_stored_pairs_on_postgres_equal_a_full_search(postgres_url, tmp_path):
    from tests.test_pairs import METHODS, add_photos, assert_stored_equal_search

    root = tmp_path / "lib"
    add_photos(root, 0, 40, seed=5)
    with Catalog.open(postgres_url) as catalog:
        for table in ("code_pairs", "signatures", "images", "roots", "methods"):
            with catalog.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {table}")
        report = index(catalog, [str(root)], methods=list(METHODS))
        assert report.paired > 0
        (root / "batch0000").rename(root / "moved")
        for path in sorted((root / "moved").glob("*.jpg"))[:5]:
            path.unlink()
        add_photos(root, 40, 20, seed=6)
        report = index(catalog, [str(root)])
        assert report.moved > 0 and report.removed == 5 and report.paired > 0
        assert find_groups(catalog, "phash").groups
    assert assert_stored_equal_search(postgres_url) > 0
