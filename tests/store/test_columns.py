"""Grouping and printing on columns give what the per-image code gives.

A real SQLite catalogue of synthetic images (random facts with many ties, hostile names, near and
identical phash codes); the compiled reference grouping (``catalog.grouping.kernels``, used from 20,000
classes on) against the Python loop, and the column formatting of ``dupes`` and ``copies`` against
the per-image formatting it replaced.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import insert

from catalog.cli.listing import copies_json, group_json, group_lines, iso_seconds
from catalog.cli.output import _ENCODE
from catalog.grouping.copies import copy_counts
from catalog.grouping.keep import why_kept
from catalog.grouping.options import Options, Scope
from catalog.grouping.reference import _plain_groups, find_groups
from catalog.methods import get_method
from catalog.search.kinds import near_pairs
from catalog.store.models import Image, Signature
from catalog.text import human_size, shown


def _iso_time(mtime_ns: int) -> str:
    """The modified time as ``dupes`` printed it image by image."""
    from datetime import UTC

    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat(timespec="seconds")


def _member_fields(member) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """A group member's JSON object as ``dupes`` made it image by image."""
    im = member.image
    fields = {
        "path": im.path, "size": im.size, "width": im.width, "height": im.height, "format": im.format,
        "content_hash": im.content_hash, "modified": _iso_time(im.mtime_ns), "taken": im.taken,
        "camera": im.camera, "exif": im.has_exif, "gps": im.has_gps,
    }  # fmt: skip
    if member.score is not None:
        fields["score"] = member.score
    return fields


NAMES = ["plain", 'quo"te', "back\\slash", "new\nline", "ünïcode 写真", "tab\there", "bad\udcff"]


def fill(catalog, n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` images in clusters of near and identical codes, with facts drawn from small sets so
    that the keep order meets every kind of tie."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 2**63, size=max(n // 6, 1), dtype=np.int64).astype(np.uint64)
    codes = bases[rng.integers(0, len(bases), n)]
    flips = rng.random((n, 64)) < rng.choice([0.0, 0.02, 0.05], size=(n, 1))
    codes ^= np.packbits(flips, axis=1).view(">u8").astype(np.uint64).ravel()
    catalog.set_method("phash", get_method("phash").version)
    images, signatures = [], []
    for i in range(n):
        sizes = [(640, 480), (660, 495), (800, 600), (None, None), (320, 240)]
        width, height = sizes[rng.integers(len(sizes))]
        framed = width is not None and rng.random() < 0.3  # 800x600 framed: a 640x480 picture
        images.append(
            {
                "id": i + 1,
                "path": f"/lib/{rng.integers(0, 9)}/{NAMES[i % len(NAMES)]}-{i:04d}.jpg",
                "size": int(rng.choice([1000, 1040, 1100, 50_000, 2_000_000])),
                "mtime_ns": int(rng.choice([0, 10**18, 1_700_000_000_999_999_500, -5_000_000_000])),
                "content_hash": f"{rng.integers(0, n // 3):064x}",
                "width": width,
                "height": height,
                "content_width": int(width * 0.8) if framed and width else None,
                "content_height": int(height * 0.8) if framed and height else None,
                "format": rng.choice(["JPEG", "PNG", None]),
                "taken": rng.choice([None, "2021-05-01T10:00:00", "2021-05-01T10:00:00+02:00", "garbage"]),
                "camera_make": rng.choice([None, "Canon", "NIKON"]),
                "camera_model": rng.choice([None, "Canon EOS 20D", "D700"]),
                "has_gps": rng.choice([None, True, False]),
                "has_exif": rng.choice([None, True, False]),
                "indexed_at": datetime(2026, 1, 1),
            }
        )
        value = int(codes[i]).to_bytes(8, "big") * 8
        signatures.append({"image_id": i + 1, "method": "phash", "value": value})
    with catalog.engine.begin() as conn:
        conn.execute(insert(Image), images)
        conn.execute(insert(Signature), signatures)


def listed(groups):  # type: ignore[no-untyped-def]
    return [[(m.image.path, m.score) for m in g] for g in groups]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("inside", [(), ("/lib/3", "/lib/5")])
def test_compiled_grouping_equals_the_python_loop(catalog, seed, inside):
    fill(catalog, 700, seed)
    scope = Scope.of(inside)
    method = get_method("phash")
    for threshold in (0, 6, 12):
        python = find_groups(catalog, "phash", threshold, Options(scope=scope))  # few classes: Python
        assert python.groups, "the catalogue must hold groups to compare"
        compiled = _plain_groups(catalog, near_pairs(catalog, method, threshold), method, scope)
        assert listed(compiled.members()) == listed(python.groups)


def test_dupes_json_and_text_are_the_per_image_formatting(catalog):
    fill(catalog, 400, 11)
    found = find_groups(catalog, "phash", 8)
    table = found.table
    columns = (table.images, table.member, table.starts, table.score)
    made = list(group_json(*columns))
    assert len(made) == len(found.groups) > 10
    whys = why_kept(table.images, table.member, table.starts)  # the keep order's words: tests/grouping
    for line, group, why in zip(made, found.groups, whys, strict=True):
        fields = [_member_fields(m) for m in group]
        expected = _ENCODE({"reference": group[0].image.path, "why": why, "images": fields})
        assert line == expected
        assert json.loads(line)["reference"] == group[0].image.path
    lines = list(group_lines(*columns))
    expected_lines = []
    for n, group in enumerate(found.groups, 1):
        expected_lines.append(f"group {n}: {len(group)} images, keeping the {whys[n - 1]}")
        for m in group:
            im = m.image
            mark = "reference" if m.score is None else f"{m.score:9.4g}"
            shape = f"{im.width}x{im.height}, " if im.width is not None else ""
            day = _iso_time(im.mtime_ns)[:10]
            expected_lines.append(f"  {mark:>9}  {shown(im.path)}  ({shape}{human_size(im.size)}, {day})")
    assert lines == expected_lines


def test_copies_on_columns(catalog):
    fill(catalog, 400, 5)
    _, _, copies = copy_counts(catalog, "phash", 8)
    found = find_groups(catalog, "phash", 8)
    assert len(copies) == 400
    # Every image of a group has the group's other members as copies, at least (reference grouping
    # counts every direct match, which a group's members are).
    for group in found.groups:
        reference = group[0].image.path
        assert copies[reference] >= len(group) - 1
    counts = list(copies.values())
    assert counts == sorted(counts, reverse=True)
    infos = {im.path: im for im in catalog.image_info().values()}
    made = copies_json(copies.images, copies.listed, copies.counts)
    for line, (path, n) in zip(made, copies.items(), strict=True):
        im = infos[path]
        facts = {"taken": im.taken, "camera": im.camera, "exif": im.has_exif, "gps": im.has_gps}
        assert line == _ENCODE({"path": path, "copies": n, **facts})


def test_iso_seconds_rounds_as_datetime_does():
    values = [0, 1, -1, 999_999_499, 999_999_500, 999_999_501, 1_700_000_000_999_999_500, -5_000_000_000]
    values += [1_699_999_999_999_999_999, 10**18, -999_999_500, -1_500_000_000]
    rng = np.random.default_rng(3)
    values += rng.integers(-(10**18), 4 * 10**18, 2000).tolist()
    assert iso_seconds(np.asarray(values, dtype=np.int64)) == [_iso_time(v) for v in values]


@pytest.mark.parametrize("higher", [True, False])
def test_compiled_best_of_each_pair_equals_the_sorts(higher):
    from catalog.search import kernels as reference
    from catalog.search.matches import best_per_pair as _best_per_pair

    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 300, 20_000), rng.integers(0, 300, 20_000)
    scores = rng.integers(0, 6, 20_000) / 5  # many ties, many pairs listed several times
    a, b, scores = a[a != b], b[a != b], scores[a != b]
    low, high, best = _best_per_pair(a, b, scores, higher)  # sorts (under a million pairs)
    assert len(low) < len(a)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    compiled = reference.best_per_pair(int(hi.max()) + 1, lo, hi, scores, higher)
    assert np.array_equal(compiled[0], low) and np.array_equal(compiled[1], high)
    assert np.array_equal(compiled[2], best)


def _same_tables(a, b) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import fields

    for field in fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


def test_image_table_read_in_background_equals_the_table_read_here(catalog):
    """The table a forked reader sends (text columns joined for the journey, hostile names included)
    is the table read here, after the first read asked of it; a reader that fails (its catalogue cannot
    be opened) leaves the reading to this process."""
    import pickle

    from catalog.grouping.early import EarlyReads
    from catalog.store import Catalog
    from catalog.store.columns import ImageTable

    fill(catalog, 700, 3)
    here = catalog.image_table()
    codes = catalog.upright_codes("phash")
    assert any("\udcff" in p for p in here.path) and None in here.format
    with EarlyReads(catalog, background_from=0) as reads:
        reads.start(lambda opened: opened.upright_codes("phash"))
        assert reads._reader is not None  # a forked reader, not this process
        first = reads.first()
        assert isinstance(first, tuple) and all(map(np.array_equal, first, codes))
        assert reads.first() is None  # asked once
        _same_tables(reads.table(), here)
    with EarlyReads(catalog, background_from=0) as reads:  # the first read never asked for
        reads.start(lambda opened: opened.upright_codes("phash"))
        _same_tables(reads.table(), here)
    with EarlyReads(catalog, background_from=0) as reads:  # the first read only: the table is read here
        reads.start(lambda opened: opened.upright_codes("phash"), table=False)
        first = reads.first()
        assert isinstance(first, tuple) and all(map(np.array_equal, first, codes))
        assert reads._reader is not None and reads._reader.next() is None  # it sent nothing more
    with EarlyReads(catalog, background_from=10**9) as reads:  # a small catalogue: read here
        reads.start(lambda opened: opened.upright_codes("phash"))
        assert reads._reader is None and reads.first() is None
        _same_tables(reads.table(), here)
    lost = Catalog(catalog.engine, "sqlite:////nonexistent/folder/none.db")
    with EarlyReads(lost, background_from=0) as reads:
        reads.start(lambda opened: opened.upright_codes("phash"))
        assert reads._reader is not None
        assert reads.first() is None
        _same_tables(reads.table(), here)
    empty = pickle.loads(pickle.dumps(ImageTable.of([])))
    assert len(empty) == 0 and empty.path == []


def test_classes_of_byte_identical_files_are_numbered_by_their_first_image(catalog):
    """A vector method's classes (one per content hash, found through the shared hashes alone) are
    numbered as a dictionary of hashes in id order numbers them, also for ids that leave out some
    holders of a shared hash."""
    from catalog.search.kinds import hash_classes as _hash_classes

    fill(catalog, 700, 5)
    every = np.asarray(catalog.signature_ids("phash"), dtype=np.int64)
    hashes = {i: h for i, h in ((r[0], r[1]) for r in catalog.shared_content_hashes())}
    assert hashes
    for ids in (every, every[::2], every[every % 7 != 0]):
        first: dict[str, int] = {}
        expected = [first.setdefault(hashes.get(i) or f"id:{i}", len(first)) for i in ids.tolist()]
        class_of, count = _hash_classes(catalog, ids)
        assert class_of.tolist() == expected and count == len(first) < len(ids)


def test_lines_made_on_both_cores_are_the_lines_made_on_one(catalog):
    """From ``PARALLEL_FROM`` listed images on, the second half of ``dupes``' and ``copies``' lines is
    made by a forked process: joined as the writer joins them, the output is the same (group numbers
    included); a child that fails leaves its half to this process."""
    import os

    from catalog.cli.listing import (
        all_copies_json,
        all_copies_lines,
        all_group_json,
        all_group_lines,
        copies_lines,
        in_halves,
    )
    from catalog.cli.output import ITEM_SEPARATOR
    from catalog.grouping.early import EarlyReads

    fill(catalog, 700, 8)
    table = find_groups(catalog, "phash", 8).table
    columns = (table.images, table.member, table.starts, table.score)
    assert len(table) > 20
    one = ITEM_SEPARATOR.join(group_json(*columns))
    assert ITEM_SEPARATOR.join(all_group_json(*columns, ITEM_SEPARATOR, parallel_from=0)) == one
    assert ITEM_SEPARATOR.join(all_group_json(*columns, ITEM_SEPARATOR)) == one  # small: here
    assert "\n".join(all_group_lines(*columns, parallel_from=0)) == "\n".join(group_lines(*columns))
    copies = copy_counts(catalog, "phash", 8)[2]
    made = (copies.images, copies.listed, copies.counts)
    assert ITEM_SEPARATOR.join(
        all_copies_json(*made, ITEM_SEPARATOR, parallel_from=0)
    ) == ITEM_SEPARATOR.join(copies_json(*made))
    assert "\n".join(all_copies_lines(*made, parallel_from=0)) == "\n".join(copies_lines(*made))
    here = os.getpid()

    def fails_in_a_child(begin: int, end: int) -> list[str]:
        if os.getpid() != here:
            raise RuntimeError("the child fails")
        return [f"line {k}" for k in range(begin, end)]

    assert list(in_halves(10, fails_in_a_child, 4, "\n")) == [f"line {k}" for k in range(10)]
    # Not from a thread other than the main one (a server's worker): all made here, one by one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:

        def lines(begin: int, end: int) -> list[str]:
            return [f"line {k}" for k in range(begin, end)]

        assert list(in_halves(10, lines, 4, "\n"))[-1] == "\n".join(lines(4, 10))  # main thread: forked
        made = pool.submit(lambda: list(in_halves(10, lines, 4, "\n"))).result()
        assert made == lines(0, 10)
        reads = EarlyReads(catalog, background_from=0)
        pool.submit(reads.start).result()
        assert reads._reader is None


def test_scores_round_as_python_rounds_them():
    """Scores a float32 holds (rounded by NumPy) and others (by ``round``) alike: as ``round(x, 6)``,
    ties (multiples of 1/128 are ties at the sixth decimal) and tiny values included."""
    from catalog.grouping.reference import _round, _rounded

    rng = np.random.default_rng(9)
    narrow = (
        np.concatenate(
            [
                rng.random(200_000),
                rng.random(50_000) * 64,
                np.arange(-512, 512) / 128,
                np.arange(0, 20_000) / 2**20,
                rng.standard_normal(50_000) * 1e-5,
                np.arange(0, 65),
            ]
        )
        .astype(np.float32)
        .astype(np.float64)
    )
    for scores in (narrow, rng.random(20_000), np.asarray([0.1, 1 / 3, 2.675, 0.0])):
        assert _rounded(scores).tolist() == [_round(v) for v in scores.tolist()]
