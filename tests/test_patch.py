"""Kept answers brought up to date (``catalog.patch``): after a change, ``dupes`` makes its answer from
the last one kept and the images changed since, and that answer is the one a whole ``dupes`` makes,
byte for byte, after every kind of change; what it cannot follow is made whole."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text
from typer.testing import CliRunner

from catalog.answers import folder_of
from catalog.cli import app
from catalog.store import Catalog
from conftest import SHARED_DATA

runner = CliRunner()


def cli(db: Path, *args: str) -> str:
    result = runner.invoke(app, ["--db", str(db), *args])
    assert result.exit_code == 0, result.output
    return result.output


def made_whole(db: Path, fmt: str, command: str = "dupes") -> str:
    """The answer ``command`` makes from every image (the kept answers set aside meanwhile)."""
    folder = folder_of(f"sqlite:///{db}")
    assert folder is not None
    aside = folder.with_name(folder.name + ".aside")
    if folder.exists():
        folder.rename(aside)
    try:
        return cli(db, command, "-f", fmt)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if aside.exists():
            aside.rename(folder)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """40 UKBench photos (10 scenes of 4 shots, which phash does not group) and 20 Fruits-360 photos
    (groups of 2-4 at phash's threshold), with a copy."""
    root = tmp_path / "library"
    root.mkdir()
    for name in sorted(p.name for p in (SHARED_DATA / "ukbench-500").glob("*.jpg"))[:40]:
        shutil.copyfile(SHARED_DATA / "ukbench-500" / name, root / name)
    for name in sorted(p.name for p in (SHARED_DATA / "fruits360-96").glob("*.jpg"))[:20]:
        shutil.copyfile(SHARED_DATA / "fruits360-96" / name, root / f"fruit-{name}")
    Image.open(root / "ukbench00004.jpg").resize((200, 150)).save(root / "small-copy.jpg", quality=70)
    return root


def changes(root: Path) -> list[tuple[str, object]]:
    """Each kind of change a library sees, one per step."""

    def add_copies() -> None:
        for k, name in enumerate(["ukbench00001.jpg", "fruit-000.jpg", "fruit-008.jpg"]):
            if (root / name).exists():
                Image.open(root / name).resize((240, 180)).save(root / f"new-copy-{k}.jpg", quality=60)
        shutil.copyfile(root / "ukbench00020.jpg", root / "exact copy é.jpg")

    def modify() -> None:  # a photo edited into another picture
        Image.open(root / "ukbench00008.jpg").rotate(90).save(root / "small-copy.jpg", quality=80)
        Image.open(root / "fruit-001.jpg").rotate(90).save(root / "fruit-001.jpg", quality=80)

    def move() -> None:
        (root / "moved").mkdir()
        os.rename(root / "ukbench00002.jpg", root / "moved" / "a.jpg")
        os.rename(root / "fruit-004.jpg", root / "zz-last.jpg")  # a reference moves to the end

    def remove() -> None:
        (root / "ukbench00005.jpg").unlink()
        (root / "new-copy-1.jpg").unlink()
        (root / "fruit-005.jpg").unlink()

    def join_two() -> None:  # one picture between two scenes' copies: their components join
        a = Image.open(root / "fruit-012.jpg")
        b = Image.open(root / "fruit-014.jpg").resize(a.size)
        Image.blend(a, b, 0.5).save(root / "between.jpg", quality=90)

    def unreadable() -> None:
        (root / "fruit-013.jpg").write_bytes(b"not a picture any more")

    return [
        ("add", add_copies),
        ("modify", modify),
        ("move", move),
        ("remove", remove),
        ("join", join_two),
        ("unreadable", unreadable),
    ]


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("command", ["dupes", "copies"])
def test_an_answer_brought_up_to_date_is_the_answer_made(
    db_path: Path, library: Path, command: str, fmt: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    cli(db_path, "index", str(library), "--methods", "phash")
    first = cli(db_path, command, "-f", fmt)
    assert first == made_whole(db_path, fmt, command)
    for name, change in changes(library):
        change()  # type: ignore[operator]
        cli(db_path, "index", str(library), "--methods", "phash")
        caplog.clear()
        answer = cli(db_path, command, "-f", fmt)
        assert any("brought up to date" in r.message for r in caplog.records), name
        assert answer == made_whole(db_path, fmt, command), name
        assert cli(db_path, command, "-f", fmt) == answer  # and kept
    assert answer != first


def test_the_groups_of_untouched_components_come_from_the_last_answer(db_path: Path, library: Path):
    cli(db_path, "index", str(library), "--methods", "phash")
    groups = json.loads(cli(db_path, "dupes", "-f", "json"))["groups"]
    folder = folder_of(f"sqlite:///{db_path}")
    assert folder is not None
    [base] = folder.glob("*.base")
    data = base.read_bytes()
    [name] = [Path(g["reference"]).name for g in groups if "fruit-016" in g["reference"]]
    untouched = b'"reference": "' + str(library / name).encode()
    assert untouched in data
    # The same number of bytes (the layout checks the file's size), marked.
    base.write_bytes(data.replace(untouched, untouched.replace(b"fruit", b"FRUIT")))
    shutil.copyfile(
        SHARED_DATA / "photos" / sorted(os.listdir(SHARED_DATA / "photos"))[0], library / "new.jpg"
    )
    Image.open(library / "ukbench00001.jpg").save(library / "another.jpg", quality=50)
    cli(db_path, "index", str(library), "--methods", "phash")
    answer = cli(db_path, "dupes", "-f", "json")
    assert name.replace("fruit", "FRUIT") in answer  # copied from the last answer
    assert str(library / "another.jpg") in answer  # the new copy's group made


def test_what_the_log_cannot_follow_is_made_whole(
    db_path: Path, library: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    cli(db_path, "index", str(library), "--methods", "phash")
    backup = db_path.with_name("backup.db")
    shutil.copyfile(db_path, backup)
    cli(db_path, "dupes", "-f", "json")

    # The log dropped past the answer's mark.
    Image.open(library / "ukbench00001.jpg").save(library / "c1.jpg", quality=50)
    cli(db_path, "index", str(library), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db_path}") as catalog:
        catalog.prune_changes(0)
    caplog.clear()
    assert cli(db_path, "dupes", "-f", "json") == made_whole(db_path, "json")
    assert not any("brought up to date" in r.message for r in caplog.records)

    # The catalogue restored from a backup older than the answer, then changed as much again: its log
    # reaches the answer's number again, with other rows.
    shutil.copyfile(db_path, backup)
    Image.open(library / "ukbench00001.jpg").save(library / "c3.jpg", quality=45)
    cli(db_path, "index", str(library), "--methods", "phash")
    cli(db_path, "dupes", "-f", "json")
    with Catalog.open(f"sqlite:///{db_path}") as catalog:
        mark = catalog.change_mark()
    shutil.copyfile(backup, db_path)
    for k in range(3):
        Image.open(library / "fruit-000.jpg").save(library / f"f{k}.jpg", quality=40 + k)
    cli(db_path, "index", str(library), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db_path}") as catalog:
        restored = catalog.change_mark()
    assert mark is not None and restored is not None and restored[0] > mark[0]
    caplog.clear()
    assert cli(db_path, "dupes", "-f", "json") == made_whole(db_path, "json")
    assert not any("brought up to date" in r.message for r in caplog.records)

    # Marks: made whole.
    answer = cli(db_path, "dupes", "-f", "json")
    Image.open(library / "ukbench00001.jpg").save(library / "c2.jpg", quality=40)
    cli(db_path, "index", str(library), "--methods", "phash")
    first, second = str(library / "ukbench00000.jpg"), str(library / "ukbench00001.jpg")
    cli(db_path, "mark", "not-duplicate", first, second)
    caplog.clear()
    assert cli(db_path, "dupes", "-f", "json") == made_whole(db_path, "json") != answer
    assert not any("brought up to date" in r.message for r in caplog.records)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_changes_keep_both_answers_equal_to_the_answers_made(
    db_path: Path, library: Path, seed: int, caplog: pytest.LogCaptureFixture
):
    """Rounds of random changes (copies made, photos edited, moved and removed, several at once)."""
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    rng = random.Random(seed)
    cli(db_path, "index", str(library), "--methods", "phash")
    for command in ("dupes", "copies"):
        cli(db_path, command, "-f", "json")
    for round_ in range(6):
        for _ in range(rng.randint(1, 4)):
            files = sorted(p for p in library.rglob("*.jpg"))
            source = rng.choice(files)
            kind = rng.choice(["copy", "edit", "move", "remove"])
            if kind == "copy":
                picture = Image.open(source)
                picture.resize((picture.width * 3 // 4, picture.height * 3 // 4)).save(
                    library / f"r{round_}-{rng.randint(0, 10**6)}.jpg", quality=rng.randint(40, 90)
                )
            elif kind == "edit":
                Image.open(source).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(source, quality=85)
            elif kind == "move":
                source.rename(library / f"moved-{rng.randint(0, 10**6)}-{source.name}")
            else:
                source.unlink()
        cli(db_path, "index", str(library), "--methods", "phash")
        for command in ("dupes", "copies"):
            assert cli(db_path, command, "-f", "json") == made_whole(db_path, "json", command), (
                round_,
                command,
            )


def test_a_damaged_layout_or_answer_is_made_whole(
    db_path: Path, library: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    cli(db_path, "index", str(library), "--methods", "phash")
    cli(db_path, "dupes", "-f", "json")
    folder = folder_of(f"sqlite:///{db_path}")
    assert folder is not None
    [plan] = folder.glob("*.plan.npz")
    plan.write_bytes(plan.read_bytes()[:100])  # cut short
    Image.open(library / "fruit-000.jpg").save(library / "d1.jpg", quality=50)
    cli(db_path, "index", str(library), "--methods", "phash")
    caplog.clear()
    answer = cli(db_path, "dupes", "-f", "json")
    assert not any("brought up to date" in r.message for r in caplog.records)
    assert answer == made_whole(db_path, "json")
    # The answer made whole kept a new layout; its answer shortened: made whole again.
    [base] = folder.glob("*.base")
    with open(base, "r+b") as file:
        file.truncate(base.stat().st_size - 10)
    Image.open(library / "fruit-000.jpg").save(library / "d2.jpg", quality=45)
    cli(db_path, "index", str(library), "--methods", "phash")
    caplog.clear()
    assert cli(db_path, "dupes", "-f", "json") == made_whole(db_path, "json")
    assert not any("brought up to date" in r.message for r in caplog.records)
    assert not list(folder.glob("*.tmp"))
    # The stored pairs' saved index (read to find the codes changed images reach) cut short: rebuilt.
    [index] = db_path.parent.glob("*.phash.pairs.npz")
    index.write_bytes(index.read_bytes()[:100])
    Image.open(library / "fruit-000.jpg").save(library / "d3.jpg", quality=42)
    cli(db_path, "index", str(library), "--methods", "phash")
    caplog.clear()
    assert cli(db_path, "dupes", "-f", "json") == made_whole(db_path, "json")
    assert any("brought up to date" in r.message for r in caplog.records)


def test_the_writers_keep_the_newest_rows_of_the_log(db_path: Path, library: Path):
    cli(db_path, "index", str(library), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db_path}") as catalog:
        mark = catalog.change_mark()
        assert mark is not None
        catalog.prune_changes(5)
        assert catalog.change_mark() == mark  # the newest row stays
        assert catalog.changed_since(mark, 10) == []
        with catalog.session() as session:
            assert session.execute(text("SELECT count(*) FROM image_changes")).scalar() == 5
    (library / "fruit-001.jpg").unlink()
    cli(db_path, "index", str(library), "--methods", "phash")
    with Catalog.open(f"sqlite:///{db_path}") as catalog:
        changed = catalog.changed_since(mark, 10)
        assert changed is not None and len(changed) == 1  # the image removed (its row and signature)
        assert catalog.changed_since(mark, 1) is None  # more rows than asked for (row and signature)
        assert catalog.changed_since((mark[0], mark[1] ^ 1), 10) is None  # another token


@pytest.mark.parametrize("command", ["dupes", "copies"])
def test_a_lower_threshold_is_brought_up_to_date_at_that_threshold(
    db_path: Path, library: Path, command: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    cli(db_path, "index", str(library), "--methods", "phash")
    asked = (command, "--threshold", "3", "-f", "text")
    cli(db_path, *asked)
    for k, name in enumerate(["fruit-000.jpg", "fruit-008.jpg", "fruit-012.jpg"]):
        Image.open(library / name).resize((90, 90)).save(library / f"t{k}.jpg", quality=60 + 10 * k)
        cli(db_path, "index", str(library), "--methods", "phash")
        caplog.clear()
        answer = cli(db_path, *asked)
        assert any("brought up to date" in r.message for r in caplog.records)
        folder = folder_of(f"sqlite:///{db_path}")
        assert folder is not None
        folder.rename(folder.with_name("aside"))
        try:
            assert answer == cli(db_path, *asked)
        finally:
            shutil.rmtree(folder)
            folder.with_name("aside").rename(folder)
    assert "threshold 3" in answer or command == "copies"


def test_a_catalogue_upgraded_from_before_the_log_is_brought_up_to_date_from_its_first_answer(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
):
    """A catalogue at revision 0008 (kept answers, no log) opened by this version: the log starts with a
    row, so its first answer keeps a layout, and the next change is brought up to date."""
    from alembic import command
    from sqlalchemy import create_engine

    from catalog.migrate import alembic_config

    db = tmp_path / "old.db"
    config = alembic_config()
    with create_engine(f"sqlite:///{db}").begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
    with Catalog.open(f"sqlite:///{db}") as catalog:  # upgraded here
        assert catalog.change_mark() is not None
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    cli(db, "index", str(library), "--methods", "phash")
    cli(db, "dupes", "-f", "json")
    Image.open(library / "fruit-000.jpg").save(library / "u1.jpg", quality=55)
    cli(db, "index", str(library), "--methods", "phash")
    caplog.clear()
    assert cli(db, "dupes", "-f", "json") == made_whole(db, "json")
    assert any("brought up to date" in r.message for r in caplog.records)


def test_a_layout_that_does_not_fit_its_answer_is_made_whole(
    db_path: Path, library: Path, caplog: pytest.LogCaptureFixture
):
    from catalog.patch import Plan

    cli(db_path, "index", str(library), "--methods", "phash")
    cli(db_path, "dupes", "-f", "json")
    folder = folder_of(f"sqlite:///{db_path}")
    assert folder is not None
    [path] = folder.glob("*.plan.npz")
    plan = Plan.load(path)
    assert plan is not None
    plan.arrays["labels"] = plan.arrays["labels"][:1]  # a whole file, but not this answer's layout
    plan.save(path)
    Image.open(library / "fruit-000.jpg").save(library / "w1.jpg", quality=55)
    cli(db_path, "index", str(library), "--methods", "phash")
    caplog.set_level(logging.DEBUG, logger="catalog.patch")
    assert cli(db_path, "dupes", "-f", "json") == made_whole(db_path, "json")
    assert any("made whole" in r.message for r in caplog.records)
    assert not list(folder.glob("*.tmp"))
