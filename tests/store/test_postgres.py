"""The same code on PostgreSQL: a throwaway server (the ``postgres_url`` fixture in conftest.py)."""

from __future__ import annotations

import shutil

from catalog.grouping.copies import copy_counts
from catalog.grouping.reference import find_groups
from catalog.store import Catalog, Scope
from catalog.sync.indexer import index


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
        summary = catalog.summary()  # status's one pass (a CASE per fact, grouped by a condition)
        assert (summary.images, summary.errors, summary.formats) == (3, 1, {"JPEG": 3})
        assert summary.with_exif == 3 and summary.with_gps == 0
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
    from tests.search.test_pairs import METHODS, add_photos, assert_stored_equal_search

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


def test_folders_whose_names_are_like_patterns_are_told_apart_on_postgres(postgres_url, tmp_path, make_image):
    """On PostgreSQL a folder's images are found with LIKE 'folder/%' (served by a text_pattern_ops
    index): names holding _, % and \\ must match themselves only."""
    roots = [tmp_path / "pics" / name for name in ("a_b", "aXb", "c%d", "cZZd", "e\\f", "e\\\\f")]
    for n, root in enumerate(roots):
        make_image(f"{root.name}/pic.png", seed=n)
    with Catalog.open(postgres_url) as catalog:
        for table in ("code_pairs", "unpaired", "vector_pairs", "signatures", "images", "roots", "methods"):
            with catalog.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {table}")
        assert index(catalog, [str(r) for r in roots], methods=["phash"]).added == len(roots)
        for root in (roots[0], roots[2], roots[4]):
            (root / "pic.png").unlink()
            report = index(catalog, [str(root)])
            assert (report.removed, report.unchanged) == (1, 0), root.name
        assert sorted(catalog.paths().values()) == sorted(str(r / "pic.png") for r in roots[1::2])
