"""Groups kept as rows (``catalog.grouping.stored``): after every kind of change the stored groups are the
groups
``dupes`` makes from all images, on real photos, on SQLite and on PostgreSQL; only what changed is
grouped again; and nothing depends on a refresh having run."""

from __future__ import annotations

import os
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


def assert_stored_equal_made(catalog: Catalog, methods: list[str] = METHODS) -> int:
    """Every method's stored groups, read as ``dupes`` reads them, equal the groups made from all
    images; returns how many groups there are in all."""
    total = 0
    for name in methods:
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


def test_a_refresh_reads_the_stored_pairs_saved_index_as_the_pairs_left_it(tmp_path):
    """The groups' refresh searches near codes through the stored pairs' saved index
    (``<catalogue>.phash.pairs.npy``): it asks for it by the pairs' key, so the file the pairs' refresh
    left is used as it is, not rebuilt from every code and saved under another key (then rebuilt again
    by the next index's pairs: a second at a million images, each time)."""
    from catalog.search.pairs import pairs_key
    from catalog.search.settled import _read_saved, cache_path

    root = library(tmp_path / "lib", objects=20, fruits=0)
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        index(catalog, [str(root)], methods=["phash"], workers=1)
        saved = cache_path(catalog, "phash")
        before = saved.stat().st_mtime_ns
        shutil.copyfile(root / "u004.jpg", root / "copy of u004.jpg")
        index(catalog, [str(root)], workers=1)
        assert catalog.count_regroup("phash") == 0
        seqs, codes, _, _ = _read_saved(saved, pairs_key(get_method("phash")))  # raises under another key
        assert len(seqs) == len(codes) > 0
        assert saved.stat().st_mtime_ns == before  # one new code: a tail read from the table, no rewrite


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
        # Groups written all at once come with the planner's statistics (not left to autovacuum).
        with catalog.engine.connect() as conn:
            analyzed = conn.exec_driver_sql(
                "SELECT relname, last_analyze FROM pg_stat_user_tables "
                "WHERE relname IN ('group_members', 'copy_counts')"
            ).all()
        assert len(analyzed) == 2 and all(when is not None for _, when in analyzed), analyzed
        rnd = random.Random(3)
        for step in range(3):
            for _ in range(2):
                change(root, rnd, step, catalog)
            index(catalog, [str(root)], workers=1)
            assert assert_stored_equal_made(catalog) > 0


def test_a_component_groups_the_same_whatever_the_rest_of_the_library(tmp_path):
    """The keep order cuts resolution and file-size tiers within each component of the graph of pairs:
    a component's groups depend on nothing outside it, so the stored groups, made again one component
    at a time, stay the groups made from every image. Three crops of one photo (A~B and B~C match, A
    and C do not), A's and C's files within 5 % of each other, and elsewhere two copies of another photo
    whose larger file once put A and C in different tiers."""
    root = tmp_path / "lib"
    root.mkdir()
    with Image.open(SHARED_DATA / "ukbench-500" / "ukbench00100.jpg") as img:
        rgb = img.convert("RGB")
        for name, k in (("A", 0), ("B", 24), ("C", 48)):
            rgb.crop((k, 0, 640, 480 - k * 480 // 640)).resize((640, 480)).save(
                root / f"{name}.jpg", quality=90
            )

    def pad(path: Path, size: int) -> None:
        with open(path, "ab") as handle:
            handle.write(b"\0" * (size - path.stat().st_size))

    pad(root / "A.jpg", 200_000)
    pad(root / "C.jpg", 196_000)
    for name, when in (("A", 2_000), ("B", 3_000), ("C", 1_000)):
        os.utime(root / f"{name}.jpg", (1_600_000_000 + when,) * 2)
    for k in range(3):
        shutil.copyfile(SHARED_DATA / "ukbench-500" / f"ukbench{300 + 4 * k:05d}.jpg", root / f"x{k}.jpg")
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        index(catalog, [str(root)], methods=["phash"], workers=1)
        ids, codes = catalog.upright_codes("phash")
        code = {Path(catalog.paths()[int(i)]).stem: int(c) for i, c in zip(ids, codes, strict=True)}
        distance = {
            pair: (code[pair[0]] ^ code[pair[1]]).bit_count() for pair in (("A", "B"), ("B", "C"), ("A", "C"))
        }
        assert distance[("A", "B")] <= 6 and distance[("B", "C")] <= 6 < distance[("A", "C")], distance
        assert_stored_equal_made(catalog, ["phash"])
        # Elsewhere: two byte-identical copies of another photo, a larger file than A's.
        with Image.open(SHARED_DATA / "ukbench-500" / "ukbench00200.jpg") as img:
            img.convert("RGB").resize((640, 480)).save(root / "D1.jpg", quality=90)
        pad(root / "D1.jpg", 208_000)
        shutil.copyfile(root / "D1.jpg", root / "D2.jpg")
        index(catalog, [str(root)], workers=1)
        assert_stored_equal_made(catalog, ["phash"])
        os.utime(root / "B.jpg", (1_600_004_000,) * 2)  # B's component made again on its own
        index(catalog, [str(root)], workers=1)
        assert_stored_equal_made(catalog, ["phash"])


def test_two_refreshes_at_once_never_lose_a_change(tmp_path):
    """A refresh that read the entries another refresh has since taken writes nothing, and the entries
    written meanwhile wait for the next refresh (entry ids are never reused)."""
    root = library(tmp_path / "lib", objects=4, fruits=0)
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        index(catalog, [str(root)], methods=["phash"], workers=1)
        phash = get_method("phash")

        def touch(name: str) -> None:
            with catalog.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE images SET mtime_ns = mtime_ns + 1 WHERE path = ?", (str(root / name),)
                )

        touch("u000.jpg")
        first, _ = catalog.regroup_entries("phash")
        assert stored.refresh(catalog, phash) > 0  # another refresh takes these entries
        touch("u004.jpg")  # and a writer adds new ones, after them
        later, _ = catalog.regroup_entries("phash")
        assert min(later) > max(first)
        key = stored.groups_key(phash)
        assert key is not None
        assert not catalog.replace_groups("phash", key, [], [], first)  # the late refresh: refused
        assert catalog.regroup_entries("phash")[0] == later
        stored.refresh(catalog, phash)
        assert_stored_equal_made(catalog, ["phash"])
