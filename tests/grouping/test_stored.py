"""Groups kept as rows (``catalog.grouping.stored``): after every kind of change the stored groups are the
groups
``dupes`` makes from all images, on real photos, on SQLite and on PostgreSQL; only what changed is
grouped again; and nothing depends on a refresh having run."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from catalog.grouping import stored
from catalog.grouping.copies import copy_counts
from catalog.grouping.options import Options
from catalog.grouping.reference import find_groups
from catalog.methods import get_method
from catalog.store import Catalog
from catalog.sync.indexer import index
from tests.conftest import SHARED_DATA

METHODS = ["exact", "ahash", "phash", "dhash", "whash"]


def library(root: Path, objects: int = 12, fruits: int = 12) -> Path:
    """UKBench objects (4 views each) and Fruits-360 frames: look-alikes, and no two files equal."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(objects * 4):
        shutil.copyfile(SHARED_DATA / "ukbench-500" / f"ukbench{k:05d}.jpg", root / f"u{k:03d}.jpg")
    for k in range(fruits):
        shutil.copyfile(SHARED_DATA / "fruits360-96" / f"{k:03d}.jpg", root / f"f{k:03d}.jpg")
    return root


def groups_of(found) -> list[list[tuple[str, float | None]]]:  # type: ignore[no-untyped-def]
    return [[(m.image.path, m.score) for m in g] for g in found.groups]


def assert_stored_equal_made(catalog: Catalog) -> int:
    """Every method's stored groups, read as ``dupes`` reads them, equal the groups made from all
    images; returns how many groups there are in all."""
    total = 0
    for name in METHODS:
        method = get_method(name)
        kept = stored.stored_grouping(catalog, method, None, Options())
        assert kept is not None, f"{name}: the stored groups do not answer"
        made = find_groups(catalog, name, None, Options())
        assert groups_of(kept) == groups_of(made), name
        assert (kept.threshold, kept.images, kept.transforms, kept.verified) == (
            made.threshold,
            made.images,
            made.transforms,
            made.verified,
        )
        total += len(made.groups)
        counted = stored.stored_copies(catalog, method, None, Options())
        assert counted is not None, f"{name}: the stored copy counts do not answer"
        assert counted[:2] == copy_counts(catalog, name)[:2]
        assert list(counted[2].items()) == list(copy_counts(catalog, name)[2].items()), name
    return total


def change(root: Path, rnd: random.Random, step: int, catalog: Catalog) -> str:
    """One change a person makes to a library: a copy, an edit, a removal, a move, a smaller copy, or
    a "not a duplicate" mark."""
    files = sorted(root.iterdir())
    f = rnd.choice(files)
    kind = rnd.choice(["copy", "edit", "remove", "move", "resize", "mark"])
    if kind == "copy":
        shutil.copyfile(f, root / f"c{step}-{f.name}")
    elif kind == "edit":
        with Image.open(f) as img:
            img.rotate(180).save(f)
    elif kind == "remove":
        f.unlink()
    elif kind == "move":
        f.rename(root / f"z{step}-{f.name}")
    elif kind == "resize":
        with Image.open(f) as img:
            img.resize((img.width // 2, img.height // 2)).save(root / f"r{step}-{f.stem}.png")
    else:
        g = rnd.choice(files)
        hashes = catalog.content_hashes([i for i, p in catalog.paths().items() if p in (str(f), str(g))])
        if len(set(hashes.values())) == 2:
            catalog.add_marks([tuple(sorted(hashes.values()))])  # type: ignore[list-item]
    return kind


@pytest.mark.parametrize("seed", [1, 2])
def test_stored_groups_equal_the_groups_made_after_random_changes(tmp_path, seed):
    root = library(tmp_path / "lib")
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        index(catalog, [str(root)], methods=METHODS, workers=1)
        assert assert_stored_equal_made(catalog) > 0
        rnd = random.Random(seed)
        for step in range(6):
            for _ in range(rnd.randint(1, 3)):
                change(root, rnd, step, catalog)
            index(catalog, [str(root)], workers=1)
            assert assert_stored_equal_made(catalog) > 0
            assert all(g["waiting"] == 0 for g in catalog.group_counts().values())


def test_a_refresh_regroups_only_what_changed(tmp_path):
    root = library(tmp_path / "lib", objects=20, fruits=0)
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        index(catalog, [str(root)], methods=["phash"], workers=1)
        phash = get_method("phash")
        assert stored.refresh(catalog, phash) == 0  # nothing changed since the index
        # Another program writes an image row (the triggers see every writer): its entry waits, and
        # dupes answers from the pairs meanwhile.
        with catalog.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE images SET mtime_ns = mtime_ns + 1 WHERE path = ?", (str(root / "u004.jpg"),)
            )
        assert catalog.count_regroup("phash") == 1
        assert stored.stored_grouping(catalog, phash, None, Options()) is None
        regrouped = stored.refresh(catalog, phash)
        assert 1 <= regrouped < 20, regrouped  # its component, not the 80 images
        assert catalog.count_regroup("phash") == 0
        kept = stored.stored_grouping(catalog, phash, None, Options())
        assert kept is not None and groups_of(kept) == groups_of(find_groups(catalog, "phash"))


def test_a_mark_made_without_an_index_is_answered_from_the_pairs(tmp_path):
    """A "not a duplicate" mark (the review page makes them) leaves entries: dupes answers from the
    pairs, with the mark, until the next refresh makes the groups again."""
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(SHARED_DATA / "ukbench-500" / "ukbench00000.jpg", root / "a.jpg")
    shutil.copyfile(root / "a.jpg", root / "b.jpg")
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        index(catalog, [str(root)], methods=["phash"], workers=1)
        phash = get_method("phash")
        kept = stored.stored_grouping(catalog, phash, None, Options())
        assert kept is not None and len(kept.groups) == 1
        # Byte-identical files share a content hash: mark a resized copy instead.
        with Image.open(root / "a.jpg") as img:
            img.resize((160, 120)).save(root / "c.png")
        index(catalog, [str(root)], workers=1)
        hashes = catalog.content_hashes(list(catalog.paths()))
        by_path = {catalog.paths()[i]: h for i, h in hashes.items()}
        catalog.add_marks([tuple(sorted((by_path[str(root / "a.jpg")], by_path[str(root / "c.png")])))])  # type: ignore[list-item]
        assert stored.stored_grouping(catalog, phash, None, Options()) is None
        made = find_groups(catalog, "phash")
        assert all(str(root / "c.png") not in {m.image.path for m in g} or len(g) < 3 for g in made.groups)
        stored.refresh(catalog, phash)
        kept = stored.stored_grouping(catalog, phash, None, Options())
        assert kept is not None and groups_of(kept) == groups_of(made)


def test_stored_groups_on_postgres_equal_the_groups_made(postgres_url, tmp_path):
    root = library(tmp_path / "lib", objects=10, fruits=8)
    with Catalog.open(postgres_url) as catalog:
        for table in ("code_pairs", "vector_pairs", "unpaired", "signatures", "images", "roots", "methods"):
            with catalog.engine.begin() as conn:  # a clean slate per run (the server is shared)
                conn.exec_driver_sql(f"DELETE FROM {table}")
        for table in ("group_members", "regroup"):
            with catalog.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {table}")
        index(catalog, [str(root)], methods=METHODS, workers=1)
        assert assert_stored_equal_made(catalog) > 0
        rnd = random.Random(3)
        for step in range(3):
            for _ in range(2):
                change(root, rnd, step, catalog)
            index(catalog, [str(root)], workers=1)
            assert assert_stored_equal_made(catalog) > 0
