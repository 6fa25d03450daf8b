"""Duplicate groups and copy counts on real photos and their altered copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from catalog.errors import UsageError
from catalog.grouping.copies import copy_counts
from catalog.grouping.options import Options
from catalog.grouping.reference import find_groups
from catalog.sync.indexer import index
from tests.conftest import PHOTOS, SMALL_PHOTOS
from tests.helpers import cli


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


@pytest.fixture
def panned(pics):  # type: ignore[no-untyped-def]
    """8 frames panning across a real photo, 4 % of its width apart: each is near the next (phash 12-16
    bits) and far from frames two or more steps away (24 bits or more): a chain of look-alikes."""
    with Image.open(PHOTOS / "Canon_IXUS.jpg") as opened:
        source = opened.convert("RGB")
    source.thumbnail((400, 400))
    w, h = source.size
    frames = []
    for k in range(8):
        x = k * w * 4 // 100
        path = pics / f"frame-{k}.jpg"
        source.crop((x, 0, x + w * 70 // 100, h)).save(path, quality=90)
        frames.append(str(path))
    return frames


def _upright(catalog, method):  # type: ignore[no-untyped-def]
    ids, values = catalog.signatures(method)
    paths = catalog.paths()
    return {paths[i]: int.from_bytes(v[:8], "big") for i, v in zip(ids, values, strict=True)}


def test_reference_groups_do_not_chain_but_components_do(catalog, panned):
    index(catalog, [str(Path(panned[0]).parent)], methods=["phash"])
    code = _upright(catalog, "phash")
    chain = find_groups(catalog, "phash", 16, Options(grouping="components"))
    assert [len(g) for g in chain.groups] == [8]
    reference, *others = chain.groups[0]
    assert any(m.score is not None and m.score > 16 for m in others)  # reached through the chain

    grouping = find_groups(catalog, "phash", 16)
    assert grouping.grouping == "reference" and len(grouping.groups) >= 2
    for group in grouping.groups:
        head, *members = group
        assert head.score is None and members
        for m in members:
            distance = (code[head.image.path] ^ code[m.image.path]).bit_count()
            assert m.score == distance <= 16
        assert [m.score for m in members] == sorted(m.score for m in members)  # best first


def test_the_reference_is_the_image_a_person_would_keep(db_path, pics, photo):
    original = photo("Canon_IXUS.jpg", "b/original.jpg")
    (pics / "a").mkdir()
    (pics / "c").mkdir()
    with Image.open(original) as img:
        img.resize((img.width // 2, img.height // 2)).save(pics / "a" / "half.jpg", quality=85)
        img.save(pics / "c" / "same-size.jpg", quality=60)  # smaller file at the same resolution
    assert cli(db_path, "index", str(pics), "--methods", "phash").exit_code == 0
    result = cli(db_path, "dupes", "-m", "phash", "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["grouping"] == "reference" and data["transforms"] is False
    (group,) = data["groups"]
    assert group["reference"] == str(original) == group["images"][0]["path"]
    assert "score" not in group["images"][0]
    assert {im["path"] for im in group["images"][1:]} == {
        str(pics / "c" / "same-size.jpg"),
        str(pics / "a" / "half.jpg"),
    }
    scores = [im["score"] for im in group["images"][1:]]
    assert scores == sorted(scores)  # best (fewest bits) first
    for im in group["images"]:
        assert {"path", "size", "width", "height", "modified"} <= set(im)
    assert all(isinstance(score, float) and score <= data["threshold"] for score in scores)
    text = cli(db_path, "dupes", "-m", "phash").output
    assert text.splitlines()[1].split()[0] == "reference" and str(original) in text.splitlines()[1]
    rows = cli(db_path, "dupes", "-m", "phash", "-f", "csv").output.splitlines()
    assert rows[0] == "group,score,similarity,path,size,width,height,modified"
    assert rows[1].startswith(f"1,,,{original},")


@pytest.mark.parametrize("method", ["ahash", "phash", "dhash", "whash"])
def test_transforms_find_mirrored_and_turned_copies(catalog, pics, photo, method):
    original = photo("Nikon_D70.jpg", "original.jpg")
    photo("Canon_IXUS.jpg", "other.jpg")
    with Image.open(original) as opened:
        img = ImageOps.exif_transpose(opened)
        img.thumbnail((800, 800))
        for name in ("FLIP_LEFT_RIGHT", "ROTATE_90", "ROTATE_180", "ROTATE_270", "TRANSPOSE"):
            img.transpose(Image.Transpose[name]).save(pics / f"{name.lower()}.jpg", quality=90)
    index(catalog, [str(pics)], methods=[method])
    plain = find_groups(catalog, method)
    assert all(len(g) < 6 for g in plain.groups)
    turned = find_groups(catalog, method, options=Options(transforms=True))
    assert turned.transforms
    assert [{m.image.path for m in g} for g in turned.groups] == [
        {str(original), *(str(p) for p in pics.glob("*.jpg") if p.stem not in ("original", "other"))}
    ]
    assert all(m.score is not None and m.score <= turned.threshold for m in turned.groups[0][1:])
    with pytest.raises(UsageError, match="does not apply"):
        find_groups(catalog, "exact", options=Options(transforms=True))


def test_in_and_against_answer_what_is_already_in_the_archive(db_path, pics, photo):
    original = photo("Canon_IXUS.jpg", "archive/original.jpg")
    photo("Nikon_E950.jpg", "downloads/unrelated.jpg")
    (pics / "elsewhere").mkdir()
    with Image.open(original) as img:
        img.save(pics / "downloads" / "copy.jpg", quality=70)
        img.save(pics / "elsewhere" / "copy.jpg", quality=75)
    assert cli(db_path, "index", str(pics), "--methods", "phash").exit_code == 0

    def dupes(*args: str) -> list[list[str]]:
        result = cli(db_path, "dupes", "-m", "phash", "-f", "json", *args)
        assert result.exit_code == 0, result.output
        return [[im["path"] for im in g["images"]] for g in json.loads(result.output)["groups"]]

    everything = dupes()
    assert [sorted(g) for g in everything] == [
        sorted([str(original), str(pics / "downloads" / "copy.jpg"), str(pics / "elsewhere" / "copy.jpg")])
    ]
    assert dupes("--in", str(pics / "downloads")) == everything
    assert dupes("--in", str(pics / "nowhere")) == []
    assert dupes("--in", str(pics / "downloads"), "--against", str(pics / "archive")) == [
        [str(original), str(pics / "downloads" / "copy.jpg")]
    ]
    result = cli(
        db_path,
        "copies",
        "-m",
        "phash",
        "-f",
        "json",
        "--in",
        str(pics / "downloads"),
        "--against",
        str(pics / "archive"),
    )
    counts = {im["path"]: im["copies"] for im in json.loads(result.output)["images"]}
    assert counts == {str(pics / "downloads" / "copy.jpg"): 1, str(pics / "downloads" / "unrelated.jpg"): 0}


def test_query_shows_the_verdict_at_the_threshold(db_path, pics, photo):
    original = photo("Canon_IXUS.jpg", "original.jpg")
    photo("Nikon_E950.jpg", "unrelated.jpg")
    with Image.open(original) as img:
        img.save(pics.parent / "probe.jpg", quality=70)
    assert cli(db_path, "index", str(pics), "--methods", "phash").exit_code == 0
    data = json.loads(
        cli(db_path, "query", str(pics.parent / "probe.jpg"), "-m", "phash", "-f", "json").output
    )
    assert data["threshold"] == 6
    assert [(r["path"], r["match"]) for r in data["results"]] == [
        (str(original), True),
        (str(pics / "unrelated.jpg"), False),
    ]
    strict = json.loads(
        cli(
            db_path, "query", str(pics.parent / "probe.jpg"), "-m", "phash", "--threshold", "0", "-f", "json"
        ).output
    )
    assert strict["threshold"] == 0
    assert strict["results"][0]["match"] is (strict["results"][0]["score"] == 0)


def test_a_bordered_copy_is_not_preferred_to_its_original(catalog, pics, photo):
    """A border adds pixels, not picture: the keep order measures the picture inside it (indexed as
    content_width x content_height) and prefers the copy without a frame."""
    from catalog.grouping.keep import keep_order

    original = photo("Nikon_E950.jpg", "original.jpg")
    with Image.open(original) as img:
        ImageOps.expand(img, border=img.width // 20, fill="white").save(pics / "framed.jpg", quality=95)
        img.resize((img.width // 2, img.height // 2)).save(pics / "half.jpg", quality=95)
    index(catalog, [str(pics)], methods=["phash"])
    info = {Path(im.path).name: im for im in catalog.image_info().values()}
    framed, plain = info["framed.jpg"], info["original.jpg"]
    assert (framed.width, framed.height) == (
        plain.width + 2 * (plain.width // 20),
        plain.height + 2 * (plain.width // 20),
    )
    assert abs(framed.content_width - plain.width) <= plain.width // 50
    assert abs(framed.content_height - plain.height) <= plain.height // 50
    assert (plain.content_width, plain.content_height) == (plain.width, plain.height)
    images = [info["half.jpg"], framed, plain]
    assert [images[k].path for k in keep_order(images)] == [plain.path, framed.path, info["half.jpg"].path]


def test_signatures_from_an_earlier_catalog_are_recomputed_by_the_next_index(catalog, pics, photo):
    photo("Canon_IXUS.jpg")
    index(catalog, [str(pics)], methods=["phash"])
    catalog.set_method("phash", "imagehash-4-phash-8-y64")  # what catalog stored before turned codes
    with pytest.raises(UsageError, match="earlier catalog .* run `catalog index` to recompute them"):
        find_groups(catalog, "phash")
    report = index(catalog, [str(pics)])
    assert any("phash signatures recomputed" in note for note in report.notes)
    ids, values = catalog.signatures("phash")
    assert len(ids) == 1 and len(values[0]) == 64  # the upright code and its 7 turns


def test_keep_order_tiers_resolution_within_five_percent_then_keeps_the_earliest_file():
    """A bigger file of the same picture made later is a re-encode (a HEIC or a quality-90 re-save of
    a camera JPEG is often bigger): the earlier file is kept. Before keep order 2, a file 5 % bigger
    came first."""
    from catalog.grouping.keep import keep_order
    from catalog.store import ImageInfo

    def image(name: str, w: int, h: int, size: int, mtime: int, content: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
        cw, ch = content or (w, h)
        return ImageInfo(0, name, size, w, h, "JPEG", None, mtime, cw, ch)

    original = image("original", 800, 600, 164_200, mtime=1)
    resaved = image("resaved-bigger", 800, 600, 168_000, mtime=2)  # 2 % bigger file, newer
    framed = image("framed", 880, 680, 170_000, mtime=3, content=(808, 604))
    crisper = image("larger-file", 800, 600, 250_000, mtime=4)  # 52 % bigger, made later
    half = image("half", 400, 300, 40_000, mtime=0)
    images = [half, framed, resaved, original]
    assert [images[k].path for k in keep_order(images)] == ["original", "resaved-bigger", "framed", "half"]
    images = [original, crisper, framed]
    assert [images[k].path for k in keep_order(images)] == ["original", "larger-file", "framed"]


def test_the_vectorised_keep_order_of_long_lists_is_the_same_order(monkeypatch):
    """Lists of MANY images or more are ordered with NumPy, and the first to keep is found without
    ordering; random lists with every kind of tie (sizes within 5 %, frames, EXIF or not, dates taken
    or not) come out exactly as the plain ordering."""
    import random

    import catalog.grouping.keep as groups
    from catalog.store import ImageInfo

    rng = random.Random(3)
    for _ in range(200):
        images = []
        for k in range(rng.randint(2, 300)):
            w, h = rng.choice([100, 103, 104, 110, 200, 210, 400, 401]), rng.choice([100, 101, 105, 300])
            inner = (w - 20, h - 20) if rng.random() < 0.2 else (w, h)
            taken = rng.choice([None, "2020-01-01T10:00:00", "2019-05-05T10:00:00+02:00", "not a date"])
            size = rng.choice([999, 1000, 1040, 1100, 5000, 5200])
            mtime = rng.choice([0, 10**18, 2 * 10**18])
            images.append(
                ImageInfo(k, f"/p/{rng.randint(0, 10**6)}-{k}.jpg", size, w, h, "JPEG", None, mtime,
                          *inner, taken, None, None, None, rng.choice([None, True, False]))
            )  # fmt: skip
        monkeypatch.setattr(groups, "MANY", 10**9)
        plain = groups.keep_order(images)
        monkeypatch.setattr(groups, "MANY", 2)
        assert groups.keep_order(images) == plain
        assert groups.first_to_keep(images) == plain[0]


def test_kept_verdicts_are_merged_keyed_and_a_damaged_file_is_ignored(tmp_path):
    """``catalog.search.verdicts``: two commands' verdicts merge in the file; a verdict is kept one way (the
    verifier is not symmetric); another verifier version, or a damaged file, starts empty."""
    from catalog.methods import get_method
    from catalog.search.verdicts import KeptVerdicts, verifier_key

    key = verifier_key(get_method("orb"))
    path = tmp_path / "c.db.orb.verdicts.npz"
    first, second = KeptVerdicts(path, key), KeptVerdicts(path, key)
    first.add("a" * 64, "b" * 64, True)
    second.add("c" * 64, "d" * 64, False)
    first.save()
    second.save()
    kept = KeptVerdicts(path, key)
    assert kept.known == {("a" * 64, "b" * 64): True, ("c" * 64, "d" * 64): False}
    assert kept.get("b" * 64, "a" * 64) is None
    assert KeptVerdicts(path, key + "-other").known == {}
    path.write_bytes(b"not a zip file")
    assert KeptVerdicts(path, key).known == {}
    killed = tmp_path / "c.db.orb.verdicts.npz.0123.tmp.npz"  # a saver killed before its rename
    killed.write_bytes(b"half")
    again = KeptVerdicts(path, key)
    again.add("e" * 64, "f" * 64, True)
    again.save()
    assert not killed.exists() and KeptVerdicts(path, key).known == {("e" * 64, "f" * 64): True}
