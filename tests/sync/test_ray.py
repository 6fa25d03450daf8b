"""Indexing through a Ray cluster (a real local one, started by ``catalog index --engine ray``) into the
real throwaway PostgreSQL server, against a local index into SQLite; several indexers into one
PostgreSQL catalogue at once, each holding its roots' locks in the database."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog.store import Catalog
from tests.helpers import run
from tests.search.test_pairs import METHODS, add_photos, assert_stored_equal_search

pytest.importorskip("ray", reason="the [ray] extra is not installed")
pytestmark = pytest.mark.slow


def clean(url: str) -> None:
    with Catalog.open(url) as catalog, catalog.engine.begin() as conn:
        for table in ("code_pairs", "unpaired", "signatures", "images", "roots", "methods"):
            conn.exec_driver_sql(f"DELETE FROM {table}")


def signatures_by_path(url: str) -> dict[tuple[str, str], bytes]:
    with Catalog.open(url, create=False) as catalog:
        paths = catalog.paths()
        found = {}
        for method in METHODS:
            ids, values = catalog.signatures(method)
            found.update({(paths[i], method): bytes(v) for i, v in zip(ids, values, strict=True)})
    return found


def groups(db: str) -> list[list[str]]:
    out = json.loads(run(db, "dupes", "--method", "phash", "-f", "json").stdout)
    return sorted(sorted(m["path"] for m in g["images"]) for g in out["groups"])


def test_ray_into_postgres_gives_the_signatures_and_groups_of_a_local_index(postgres_url, tmp_path):
    root = tmp_path / "lib"
    add_photos(root, 0, 40, seed=11)
    clean(postgres_url)
    methods = ",".join(METHODS)
    through_ray = json.loads(
        run(postgres_url, "index", str(root), "--engine", "ray", "--methods", methods, "-f", "json").stdout
    )
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    local = json.loads(run(local_db, "index", str(root), "--methods", methods, "-f", "json").stdout)
    assert through_ray["added"] == local["added"] == len(list(root.rglob("*.jpg")))
    assert signatures_by_path(postgres_url) == signatures_by_path(local_db)
    assert groups(postgres_url) == groups(local_db) and groups(local_db)
    assert assert_stored_equal_search(postgres_url) > 0


def test_two_indexers_on_two_roots_into_one_postgres_catalogue_at_once(postgres_url, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    add_photos(first, 0, 40, seed=12)
    add_photos(second, 40, 40, seed=13)
    in_both = sorted((first / "batch0000").iterdir())[0]
    (second / "shared.jpg").write_bytes(in_both.read_bytes())  # one picture in both roots
    clean(postgres_url)  # a new catalogue: both indexers record its methods at once
    command = [sys.executable, "-m", "catalog", "--db", postgres_url, "index"]
    indexers = [
        subprocess.Popen([*command, str(first), "--engine", "ray"], stderr=subprocess.PIPE, text=True),
        subprocess.Popen([*command, str(second)], stderr=subprocess.PIPE, text=True),
    ]
    for indexer in indexers:
        _, stderr = indexer.communicate(timeout=600)
        assert indexer.returncode == 0 and "Traceback" not in stderr, stderr
    on_disk = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.rglob("*.jpg")}
    with Catalog.open(postgres_url, create=False) as catalog:
        catalogued = [(im.path, im.content_hash) for im in catalog.image_info().values()]
    assert sorted(catalogued) == sorted(on_disk.items())  # every image once, with its content
    assert assert_stored_equal_search(postgres_url, ("phash",)) > 0


def test_a_root_another_indexer_holds_is_refused(postgres_url, tmp_path):
    import psycopg

    root = tmp_path / "held"
    add_photos(root, 0, 4, seed=14)
    key = int.from_bytes(hashlib.sha256(f"root:{root}".encode()).digest()[:8], "big", signed=True)
    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        refused = run(postgres_url, "index", str(root), check=False)
        assert refused.returncode == 3 and "being indexed by another process" in refused.stderr
    run(postgres_url, "index", str(root))  # the lock died with its connection
    assert Path(root).exists()


def test_the_cnn_runs_on_the_ray_workers_and_gives_the_local_features(tmp_path):
    pytest.importorskip("torch")
    root = tmp_path / "lib"
    add_photos(root, 0, 8, seed=15)
    through_ray = f"sqlite:///{tmp_path / 'ray.db'}"
    local = f"sqlite:///{tmp_path / 'local.db'}"
    run(through_ray, "index", str(root), "--engine", "ray", "--methods", "cnn")
    run(local, "index", str(root), "--methods", "cnn")
    features = []
    for url in (through_ray, local):
        with Catalog.open(url, create=False) as catalog:
            paths = catalog.paths()
            ids, values = catalog.signatures("cnn")
            features.append({paths[i]: bytes(v) for i, v in zip(ids, values, strict=True)})
    assert features[0].keys() == features[1].keys() and len(features[0]) == len(list(root.rglob("*.jpg")))
    for path, value in features[0].items():  # batches of other sizes may round a last bit differently
        ray_feature = np.frombuffer(value, dtype=np.float16).astype(np.float32)
        local_feature = np.frombuffer(features[1][path], dtype=np.float16).astype(np.float32)
        assert np.allclose(ray_feature, local_feature, atol=2e-3), path


def test_a_cluster_that_does_not_answer_is_a_one_line_error(tmp_path):
    import socket

    root = tmp_path / "lib"
    add_photos(root, 0, 2, seed=16)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    db = f"sqlite:///{tmp_path / 'c.db'}"
    refused = run(
        db, "index", str(root), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}", check=False
    )
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        == f"catalog: error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"
    )
    wrong = run(db, "index", str(root), "--engine", "ray", "--ray-address", "nonsense", check=False)
    assert wrong.returncode == 1 and "expected HOST:PORT" in wrong.stderr


def ray_processes() -> int:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum(1 for line in listing.splitlines() if "gcs_server" in line or "raylet" in line)


def test_ctrl_c_stops_a_ray_run_in_one_line_and_takes_its_cluster_down(tmp_path):
    import signal
    import sqlite3

    from tests.conftest import wait_until

    root = tmp_path / "lib"
    add_photos(root, 0, 500, seed=17)  # 750 files: the first write batch holds 200
    db = tmp_path / "c.db"
    before = ray_processes()
    command = [sys.executable, "-m", "catalog", "--db", str(db), "index", str(root), "--engine", "ray"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def committed() -> bool:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                return bool(conn.execute("SELECT count(*) FROM images").fetchone()[0])
        except sqlite3.OperationalError:
            return False

    assert wait_until(lambda: process.poll() is not None or committed(), 120)
    assert process.poll() is None, "the run ended before the first batch could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("catalog: interrupted; ")
    assert wait_until(lambda: ray_processes() <= before, 30)
    run(f"sqlite:///{db}", "index", str(root))  # the next run carries on
    with Catalog.open(f"sqlite:///{db}", create=False) as catalog:
        assert len(catalog.paths()) == len(list(root.rglob("*.jpg")))
