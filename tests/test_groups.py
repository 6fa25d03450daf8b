"""Duplicate groups and copy counts on real photos and their altered copies."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from catalog.groups import copy_counts, find_groups
from catalog.indexer import index
from conftest import SMALL_PHOTOS


@pytest.fixture
def copies_of_one_photo(photo, pics):  # type: ignore[no-untyped-def]
    """A real photo with a byte-identical, a re-encoded and a half-size copy, plus unrelated photos."""
    original = photo("Canon_IXUS.jpg", "original.jpg")
    (pics / "copy").mkdir()
    shutil.copyfile(original, pics / "copy" / "same-bytes.jpg")
    with Image.open(original) as img:
        img.save(pics / "copy" / "reencoded.jpg", quality=60)
        img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS).save(
            pics / "copy" / "half.png"
        )
    for name in SMALL_PHOTOS[1:]:
        photo(name, f"others/{name}")
    family = {str(original), *(str(p) for p in (pics / "copy").iterdir())}
    return family


def test_exact_groups_only_byte_identical_files(catalog, pics, copies_of_one_photo):
    index(catalog, [str(pics)])
    grouping = find_groups(catalog, "exact")
    assert [sorted(m.image.path for m in g) for g in grouping.groups] == [
        sorted([str(pics / "original.jpg"), str(pics / "copy" / "same-bytes.jpg")])
    ]


@pytest.mark.parametrize("method", ["ahash", "phash", "dhash", "whash"])
def test_near_duplicates_form_one_group_with_right_copy_counts(catalog, pics, copies_of_one_photo, method):
    index(catalog, [str(pics)])
    grouping = find_groups(catalog, method)
    assert [{m.image.path for m in g} for g in grouping.groups] == [copies_of_one_photo]
    _, _, copies = copy_counts(catalog, method)
    assert len(copies) == 4 + len(SMALL_PHOTOS) - 1
    assert all(copies[p] == 3 for p in copies_of_one_photo)
    assert all(n == 0 for p, n in copies.items() if p not in copies_of_one_photo)


def test_threshold_zero_groups_share_one_hash(catalog, pics, copies_of_one_photo, make_image):
    make_image("shapes.png", seed=7)
    index(catalog, [str(pics)], methods=["phash"])
    ids, values = catalog.signatures("phash")
    by_id = dict(zip(ids, values, strict=True))
    strict = find_groups(catalog, "phash", 0)
    assert strict.groups
    for group in strict.groups:
        assert len({by_id[m.image.id][:8] for m in group}) == 1  # one upright code
    loose = find_groups(catalog, "phash", 64)  # everything is within 64 bits of everything
    assert [len(g) for g in loose.groups] == [len(ids)]


def test_groups_are_largest_first(catalog, make_image, pics):
    a = make_image("a.png", seed=1)
    b = make_image("b.png", seed=2)
    for n in range(3):
        shutil.copyfile(a, pics / f"a{n}.png")
    shutil.copyfile(b, pics / "b0.png")
    index(catalog, [str(pics)], methods=["ahash"])
    sizes = [len(g) for g in find_groups(catalog, "exact").groups]
    assert sizes == [4, 2]


def test_unknown_method_or_missing_signatures_are_clear_errors(catalog, make_image, pics):
    from catalog.errors import UsageError

    make_image("a.jpg")
    index(catalog, [str(pics)], methods=["ahash"])
    with pytest.raises(UsageError, match="no dhash signatures"):
        find_groups(catalog, "dhash")
    with pytest.raises(UsageError, match="unknown method"):
        find_groups(catalog, "nope")
    with pytest.raises(UsageError, match="whole number"):
        find_groups(catalog, "ahash", 3.5)
