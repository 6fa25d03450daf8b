"""Near pairs kept at indexing time (catalog.search.pairs): the stored rows always equal a full search.

Real photos (UKBench) and altered copies of them, real catalogues on disk, real `catalog index`
processes killed with SIGKILL at moments the test observes in the database.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.grouping.reference import find_groups
from catalog.methods import get_method
from catalog.search.bits import hamming_pairs
from catalog.search.kinds import near_pairs
from catalog.search.pairs import pairs_key, refresh, stored_pairs, stored_threshold
from catalog.store import Catalog
from tests.conftest import wait_until
from tests.helpers import run

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
UKBENCH = DATA / "ukbench-500"
METHODS = ("phash", "dhash", "ahash")


def add_photos(root: Path, first: int, count: int, seed: int) -> None:
    """UKBench photos ``first`` .. ``first + count`` and, for every other one, an altered copy (smaller,
    re-encoded, or slightly brighter)."""
    rng = random.Random(seed)
    sources = sorted(UKBENCH.glob("*.jpg"))[first : first + count]
    folder = root / f"batch{first:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    for n, source in enumerate(sources):
        shutil.copyfile(source, folder / source.name)
        if n % 2:
            with Image.open(source) as img:
                picture = img.convert("RGB")
                kind = rng.choice(["small", "quality", "bright"])
                if kind == "small":
                    picture = picture.resize((picture.width // 2, picture.height // 2))
                elif kind == "bright":
                    picture = picture.point(lambda v: min(255, v + 12))
                picture.save(folder / f"{source.stem}-copy.jpg", quality=rng.choice([70, 85]))


def code_pairs_from_rows(catalog: Catalog, method: str) -> set[tuple[int, int, int]]:
    """Every stored pair among codes that some image has now: (low code, high code, distance)."""
    _, present = catalog.upright_codes(method)
    present_set = set(np.unique(present).tolist())
    seqs, codes, near, distances = catalog.code_pairs(method)
    code_of = dict(zip(seqs.tolist(), codes.tolist(), strict=True))
    found = set()
    for code, blob, dist in zip(codes.tolist(), near, distances, strict=True):
        for target, d in zip(np.frombuffer(blob, "<u4").tolist(), list(dist), strict=True):
            other = code_of.get(target)
            if other is not None and code in present_set and other in present_set:
                found.add((min(code, other), max(code, other), d))
    return found


def code_pairs_by_search(catalog: Catalog, method: str, threshold: int) -> set[tuple[int, int, int]]:
    _, codes = catalog.upright_codes(method)
    unique = np.unique(codes)
    i, j = hamming_pairs(unique, threshold)
    distance = np.bitwise_count(unique[i] ^ unique[j])
    return {
        (min(a, b), max(a, b), d)
        for a, b, d in zip(unique[i].tolist(), unique[j].tolist(), distance.tolist(), strict=True)
    }


def pending_codes(db: Path, method: str) -> int:
    with Catalog.open(f"sqlite:///{db}", create=False) as catalog:
        _, codes = catalog.upright_codes(method)
        _, settled = catalog.settled_codes(method)
    return len(set(codes.tolist()) - set(settled.tolist()))


def assert_stored_equal_search(db: Path | str, methods: tuple[str, ...] = METHODS) -> int:
    """Every present code has its row, and the rows' pairs equal a full search; returns the pairs.
    ``db``: a SQLite file or a catalogue URL."""
    pairs = 0
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    with Catalog.open(url, create=False) as catalog:
        for name in methods:
            method = get_method(name)
            threshold = stored_threshold(method)
            assert threshold is not None
            assert catalog.pairs_key(name) == pairs_key(method)
            _, codes = catalog.upright_codes(name)
            _, settled = catalog.settled_codes(name)
            assert set(np.unique(codes).tolist()) <= set(settled.tolist()), f"{name}: codes left pending"
            stored = code_pairs_from_rows(catalog, name)
            assert stored == code_pairs_by_search(catalog, name, threshold), name
            pairs += len(stored)
    return pairs


def groups_json(db: Path, method: str) -> list[list[str]]:
    out = json.loads(run(db, "dupes", "--method", method, "-f", "json").stdout)
    return sorted(sorted(m["path"] for m in g["images"]) for g in out["groups"])


def test_index_stores_the_pairs_and_every_change_keeps_them_equal_to_a_search(tmp_path):
    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 0, 60, seed=1)
    index = run(db, "index", str(root), "--methods", ",".join(METHODS), "-f", "json")
    assert json.loads(index.stdout)["paired"] > 0
    assert assert_stored_equal_search(db) > 0
    # Stored pairs and a full search give the same groups.
    with Catalog.open(f"sqlite:///{db}") as catalog:
        for name in METHODS:
            stored = find_groups(catalog, name)
            catalog.reset_pairs(name, "none")  # another key: dupes searches in full
            searched = find_groups(catalog, name)
            assert stored.groups == searched.groups and stored.groups, name
            refresh(catalog, get_method(name))
    # Changes: new photos, a deleted one, one whose content changed, a moved folder.
    add_photos(root, 60, 30, seed=2)
    victims = sorted((root / "batch0000").glob("*.jpg"))
    victims[0].unlink()
    shutil.copyfile(sorted(UKBENCH.glob("*.jpg"))[200], victims[3])
    os.rename(root / "batch0000", root / "moved")
    run(db, "index", str(root))
    assert assert_stored_equal_search(db) > 0


def test_readers_search_pending_codes_and_an_old_catalogue_gets_its_pairs_on_the_next_index(tmp_path):
    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 100, 40, seed=3)
    run(db, "index", str(root))
    before = groups_json(db, "phash")
    assert before
    with Catalog.open(f"sqlite:///{db}") as catalog:
        method = get_method("phash")
        full = near_pairs(catalog, method, 6)
        # Half of the rows gone (as if their refresh had not run): readers search those codes.
        seqs, _ = catalog.settled_codes("phash")
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM code_pairs WHERE seq > ?", (int(np.median(seqs)),))
        part = stored_pairs(catalog, method, 6)
        assert part is not None
        ids, inverse, left, right, distances, _ = part
        searched = {(int(a), int(b)) for a, b in zip(full.left, full.right, strict=True)}
        # Class numbers are those of np.unique over the codes, as in the full search.
        assert {(int(a), int(b)) for a, b in zip(left, right, strict=True)} == searched
        # A catalogue made before stored pairs: no key. Answers still come (full search).
        catalog.reset_pairs("phash", "none")
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE methods SET pairs_key = NULL WHERE name = 'phash'")
        assert stored_pairs(catalog, method, 6) is None
    assert groups_json(db, "phash") == before
    index = json.loads(run(db, "index", str(root), "-f", "json").stdout)
    assert index["paired"] > 0 and index["added"] == 0
    with Catalog.open(f"sqlite:///{db}") as catalog:
        assert catalog.pairs_key("phash") == pairs_key(get_method("phash"))
        assert catalog.settled_codes("phash")[0].size > 0
    assert groups_json(db, "phash") == before
    # A threshold wider than the stored one, and turned copies, are searched in full.
    wide = json.loads(run(db, "dupes", "--method", "phash", "--threshold", "12", "-f", "json").stdout)
    assert sum(len(g["images"]) for g in wide["groups"]) >= sum(len(g) for g in before)


def progress(db: Path) -> int:
    """Signatures plus stored code rows: grows with every transaction of an index run."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            signatures = conn.execute("SELECT count(*) FROM signatures").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM code_pairs").fetchone()[0]
            return int(signatures) + int(rows)
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
def test_kill_9_at_20_random_moments_of_indexing_then_the_stored_pairs_equal_a_full_search(tmp_path):
    """Each round lets the indexer commit a random number of transactions (the test holds SQLite's write
    lock in between, so the indexer waits at its next write), then kills it: in start-up, while it
    decodes or waits to write its signatures, or between the stored rows of two methods. A run that got
    all its writes through before the kill ends by itself; rounds go on until 20 kills landed."""
    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 0, 40, seed=4)
    run(db, "index", str(root), "--methods", ",".join(METHODS), "--workers", "1")
    rng = random.Random(20261125)
    command = [sys.executable, "-m", "catalog", "--db", str(db), "index", str(root), "--workers", "1"]
    killed, first, lock = 0, 40, sqlite3.connect(db, timeout=60, isolation_level=None)
    for round_ in range(60):  # until 20 kills landed (a run let through all its writes ends by itself)
        if killed == 20:
            break
        # New work every round: new photos, and now and then a deleted or rewritten file.
        add_photos(root, first, 12, seed=round_)
        first += 12
        files = sorted(root.rglob("*.jpg"))
        if round_ % 3 == 1:
            rng.choice(files).unlink()
        elif round_ % 3 == 2:
            shutil.copyfile(sorted(UKBENCH.glob("*.jpg"))[rng.randrange(500)], rng.choice(files))
        lock.execute("BEGIN IMMEDIATE")
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(rng.randint(0, 3)):  # let that many of its writes through, one at a time
            before = progress(db)
            lock.execute("COMMIT")

            def moved(process: subprocess.Popen[bytes] = process, before: int = before) -> bool:
                return process.poll() is not None or progress(db) > before

            wait_until(moved, 120)
            lock.execute("BEGIN IMMEDIATE")
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        lock.execute("COMMIT")
        _, stderr = process.communicate()
        assert b"Traceback" not in stderr
    lock.close()
    assert killed == 20
    run(db, "index", str(root))
    assert assert_stored_equal_search(db) > 0


def test_the_saved_index_of_settled_codes_is_checked_and_rebuilt_when_it_does_not_match(tmp_path):
    from catalog.search.settled import Settled, cache_path

    method = get_method("phash")
    threshold = int(stored_threshold(method) or 0)

    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 0, 30, seed=8)
    run(db, "index", str(root), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db}") as catalog:
        saved = cache_path(catalog, "phash")
    assert saved.exists() and not list(saved.parent.glob("*.tmp"))
    whole = saved.read_bytes()
    saved.write_bytes(b"not an index")  # damaged: rebuilt from the table
    add_photos(root, 30, 20, seed=9)
    run(db, "index", str(root))
    assert assert_stored_equal_search(db, ("phash",)) > 0
    # Damaged in other ways: each rebuilt, never read as an index or raised.
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0x10  # a bit inside the arrays: their CRC tells
    huge = whole.replace(b"'shape': (", b"'shape': (99999999999", 1)  # a header asking for 800 GB
    for damaged in (bytes(flipped), huge, b"PK\x03\x04" + bytes(200), b"PK\x05\x06" + bytes(200)):
        saved.write_bytes(damaged)
        with Catalog.open(f"sqlite:///{db}") as catalog:
            rebuilt = Settled.load(catalog, "phash", pairs_key(method), threshold)
        assert saved.read_bytes() != damaged and len(rebuilt.codes) > 0
    saved.write_bytes(whole[: len(whole) * 2 // 3])  # cut short (a full disk): rebuilt as well
    old_layout = saved.with_suffix(".npz")
    old_layout.write_bytes(b"PK a zip of the layout before")  # left by an older catalog: removed
    old_lock = old_layout.with_name(old_layout.name + ".lock")
    old_lock.write_bytes(b"")  # its lock file too
    add_photos(root, 60, 10, seed=11)
    run(db, "index", str(root))
    assert assert_stored_equal_search(db, ("phash",)) > 0
    assert not old_layout.exists() and not old_lock.exists()
    # A saved index of another table (rows it names are gone): rebuilt, not trusted.
    stale = saved.read_bytes()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM code_pairs WHERE seq > (SELECT min(seq) + 5 FROM code_pairs)")
        conn.execute("INSERT INTO unpaired (method, image_id) SELECT method, image_id FROM signatures")
    saved.write_bytes(stale)
    add_photos(root, 50, 10, seed=10)
    index = json.loads(run(db, "index", str(root), "-f", "json").stdout)
    assert index["paired"] > 0
    assert assert_stored_equal_search(db, ("phash",)) > 0


def test_rows_of_codes_no_image_has_are_dropped_once_they_are_a_tenth(tmp_path):
    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 0, 40, seed=18)
    run(db, "index", str(root), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db}") as catalog:
        before = len(catalog.settled_codes("phash")[0])
    for path in sorted(root.rglob("*.jpg"))[:20]:  # a third of the photos gone
        path.unlink()
    add_photos(root, 40, 4, seed=19)
    run(db, "index", str(root))
    with Catalog.open(f"sqlite:///{db}") as catalog:
        _, codes = catalog.upright_codes("phash")
        _, settled = catalog.settled_codes("phash")
    assert set(settled.tolist()) == set(codes.tolist()) and len(settled) < before
    assert assert_stored_equal_search(db, ("phash",)) > 0


def test_the_saved_index_is_read_once_per_file_and_again_when_it_changes(tmp_path):
    """An index run loads the stored pairs' saved index twice (for the pairs, then for the groups): the
    second load reuses the tables the first built from the same file, and a file rewritten since is
    read again; either way the rows written after it come as the tail."""
    from catalog.search.settled import Settled, cache_path

    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 0, 24, seed=3)
    run(db, "index", str(root), "--methods", "phash")
    method = get_method("phash")
    with Catalog.open(f"sqlite:///{db}") as catalog:
        key, limit = pairs_key(method), int(stored_threshold(method) or 0)
        first = Settled.load(catalog, "phash", key, limit)
        again = Settled.load(catalog, "phash", key, limit)
        assert again.index is first.index and len(first.codes) > 0 and not len(again.tail_codes)
        first.save(catalog, "phash", key)  # rewritten (another modification time): what it wrote is kept
        assert Settled.load(catalog, "phash", key, limit).index is first.index
        os.utime(cache_path(catalog, "phash"), ns=(1, 1))  # changed behind this process's back
        reread = Settled.load(catalog, "phash", key, limit)
        assert reread.index is not first.index and np.array_equal(reread.codes, first.codes)
    add_photos(root, 24, 6, seed=4)
    run(db, "index", str(root), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db}") as catalog:
        grown = Settled.load(catalog, "phash", key, limit)
        assert len(grown.codes) + len(grown.tail_codes) > len(first.codes)


def test_near_codes_answer_each_question_as_a_full_search_does_when_asked_again_and_again(tmp_path):
    """A groups' refresh asks the stored pairs' index about overlapping sets of codes: each code is
    searched once and kept, and every answer, first or kept, equals a search of every code (pairs with
    their query numbers, sorted, a repeated query answered at each of its places)."""
    from catalog.search.kinds import search_for

    root, db = tmp_path / "lib", tmp_path / "c.db"
    add_photos(root, 0, 40, seed=5)
    run(db, "index", str(root), "--methods", "phash")
    method = get_method("phash")
    threshold = int(method.default_threshold)
    with Catalog.open(f"sqlite:///{db}") as catalog:
        near = search_for(method).near_codes(catalog)
        _, codes = catalog.upright_codes("phash")
    every = np.unique(codes)

    def expected(queries: np.ndarray) -> tuple[list[int], list[int]]:
        q, c = [], []
        for n, code in enumerate(queries.tolist()):
            hits = every[np.bitwise_count(every ^ np.uint64(code)) <= threshold]
            q += [n] * len(hits)
            c += sorted(hits.tolist())
        return q, c

    rng = np.random.default_rng(5)
    outside = rng.integers(0, 2**63, size=3, dtype=np.uint64)  # codes no image has
    asked = [every[:10], every[5:25], np.concatenate([every[20:], outside, every[:3]]), every, every[[3, 3]]]
    # A walk of small steps, as a component's frontier goes (each step kept as a level, merged).
    asked += [every[k : k + 2] for k in range(0, len(every), 2)] + [every[::-1], every[7:9]]
    near_ones = 0
    for queries in asked:
        q, c = near.pairs(queries)
        assert (q.tolist(), c.tolist()) == expected(queries)
        assert np.array_equal(near.codes(queries), np.unique(c))
        near_ones += int(np.sum(np.bincount(q, minlength=len(queries)) > 1))
    assert near_ones > 0  # some code has a neighbour other than itself


def test_a_save_removes_its_own_stale_temporary_files_and_no_other_catalogues(tmp_path):
    """A saver killed before its rename leaves ``<index>.<id>.tmp``: the next save removes it, and only
    its own: a "[1]" in a catalogue's name is not a pattern that takes another catalogue's file."""
    root, db = tmp_path / "lib", tmp_path / "photos[1].db"
    add_photos(root, 0, 6, seed=12)
    own = tmp_path / "photos[1].db.phash.pairs.npy.0123.tmp"
    other = tmp_path / "photos1.db.phash.pairs.npy.4567.tmp"  # another catalogue's save under way
    own.write_bytes(b"killed")
    other.write_bytes(b"being written")
    run(db, "index", str(root), "--methods", "phash")
    assert (tmp_path / "photos[1].db.phash.pairs.npy").exists()
    assert not own.exists() and other.read_bytes() == b"being written"
