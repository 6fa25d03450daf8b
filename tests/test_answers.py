"""Kept answers (``catalog.answers``): a ``dupes`` or ``copies`` asked again of an unchanged catalogue is
given from the file its first answer was kept in, and any write to what answers are made from (images
added, changed, moved or removed, marks, signatures; by this tool or by another program) makes a new one."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog.answers import KEEP, Answers, Question, asked, folder_of
from catalog.cli import app
from catalog.store import Catalog
from conftest import wait_until

runner = CliRunner()


def cli(db: Path, *args: str) -> str:
    result = runner.invoke(app, ["--db", str(db), *args])
    assert result.exit_code == 0, result.output
    return result.output


def kept_files(db: Path) -> list[Path]:
    folder = folder_of(f"sqlite:///{db}")
    assert folder is not None
    return sorted(folder.glob("*.out")) if folder.exists() else []


def tamper(db: Path) -> None:
    """Write a marker at the end of every kept answer: an answer given from its file shows it."""
    for path in kept_files(db):
        path.write_bytes(path.read_bytes() + b"KEPT\n")


@pytest.fixture
def library(db_path: Path, photo, pics: Path) -> Path:  # type: ignore[no-untyped-def]
    photo("Olympus_C960.jpg", "o.jpg")
    shutil.copyfile(pics / "o.jpg", pics / "o-copy.jpg")
    photo("Nikon_E950.jpg", "other.jpg")
    cli(db_path, "index", str(pics), "--methods", "phash,dhash")
    return pics


def test_an_unchanged_catalogue_gives_the_kept_answer(db_path: Path, library: Path):
    first = cli(db_path, "dupes", "-f", "json")
    [kept] = kept_files(db_path)
    assert kept.read_text() == first  # the whole answer, byte for byte
    assert cli(db_path, "dupes", "-f", "json") == first

    tamper(db_path)
    assert cli(db_path, "dupes", "-f", "json") == first + "KEPT\n"  # given from the file, not made again
    # Another question is another answer: format, method, threshold, options, command.
    for args in (
        ["dupes"],
        ["dupes", "-f", "csv"],
        ["dupes", "-m", "dhash"],
        ["dupes", "-t", "3"],
        ["dupes", "--grouping", "components"],
        ["dupes", "--in", str(library)],
        ["copies"],
    ):
        assert "KEPT" not in cli(db_path, *args), args
    assert len(kept_files(db_path)) == 8
    status = json.loads(cli(db_path, "status", "-f", "json"))["answers"]
    folder = folder_of(f"sqlite:///{db_path}")
    assert folder is not None
    # The answers, with the last answers and layouts kept to bring them up to date (catalog.patch): a
    # last answer is the kept answer itself (a second link) until the next change.
    held = {
        p.stat().st_ino: p.stat().st_size for p in folder.iterdir() if p.suffix in (".out", ".base", ".npz")
    }
    assert any(p.suffix == ".base" for p in folder.iterdir())
    assert status == {"kept": 8, "bytes": sum(held.values()), "folder": str(folder)}
    assert "answers:   8 kept (" in cli(db_path, "status")


@pytest.mark.parametrize("change", ["add", "modify", "move", "remove", "mark", "another program"])
def test_any_change_makes_a_new_answer(db_path: Path, library: Path, photo, change: str):  # type: ignore[no-untyped-def]
    before = json.loads(cli(db_path, "dupes", "-f", "json"))
    copies_before = cli(db_path, "copies", "-f", "json")
    tamper(db_path)
    if change == "add":
        shutil.copyfile(library / "o.jpg", library / "o-third.jpg")
    elif change == "modify":
        photo("Canon_IXUS.jpg", "o-copy.jpg")  # the copy becomes another picture
    elif change == "move":
        (library / "o-copy.jpg").rename(library / "o-moved.jpg")
    elif change == "remove":
        (library / "o-copy.jpg").unlink()
    if change == "mark":
        cli(db_path, "mark", "not-duplicate", str(library / "o.jpg"), str(library / "other.jpg"))
    elif change == "another program":  # a write the tool never saw: the triggers count it all the same
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE images SET size = size + 1 WHERE path = ?", (str(library / "o-copy.jpg"),))
    else:
        cli(db_path, "index", str(library))

    after_text = cli(db_path, "dupes", "-f", "json")
    assert "KEPT" not in after_text
    assert "KEPT" not in cli(db_path, "copies", "-f", "json")
    after = json.loads(after_text)
    paths = [sorted(Path(im["path"]).name for im in g["images"]) for g in after["groups"]]
    expected = {
        "add": [["o-copy.jpg", "o-third.jpg", "o.jpg"]],
        "modify": [],
        "move": [["o-moved.jpg", "o.jpg"]],
        "remove": [],
        "mark": [["o-copy.jpg", "o.jpg"]],
        "another program": [["o-copy.jpg", "o.jpg"]],
    }[change]
    assert paths == expected
    if change == "another program":
        sizes = {Path(im["path"]).name: im["size"] for im in after["groups"][0]["images"]}
        old = {Path(im["path"]).name: im["size"] for im in before["groups"][0]["images"]}
        assert sizes["o-copy.jpg"] == old["o-copy.jpg"] + 1
    if change == "mark":
        assert after == before  # the mark is between pictures never grouped: the answer's bytes stay
        assert cli(db_path, "copies", "-f", "json") == copies_before


def test_a_catalogue_restored_from_a_backup_never_gives_a_later_answer(db_path: Path, library: Path):
    """A backup of the catalogue restored, then changed as the lost copy was (one image added): its
    stamp must not meet the later answer's again. (A counter of changes would: the same number of
    changes since the backup. The stamp is drawn at random at every change.)"""
    cli(db_path, "dupes")
    backup = db_path.with_name("backup.db")
    shutil.copyfile(db_path, backup)
    shutil.copyfile(library / "o.jpg", library / "o-third.jpg")
    cli(db_path, "index", str(library))
    assert "o-third.jpg" in cli(db_path, "dupes")
    shutil.copyfile(backup, db_path)  # restored; the photo folder changes another way
    (library / "o-third.jpg").rename(library / "o-fourth.jpg")
    cli(db_path, "index", str(library))
    again = cli(db_path, "dupes")
    assert "o-fourth.jpg" in again and "o-third.jpg" not in again


def test_an_answer_not_printed_whole_is_not_kept(db_path: Path, library: Path):
    """An answer whose printing failed (a closed pipe, Ctrl-C, a full disk) is never kept, and leaves
    no temporary file."""
    with Catalog.open(f"sqlite:///{db_path}") as catalog:
        answers = Answers.of(catalog.url, catalog.changes_stamp())
    assert answers is not None
    question = Question("dupes", ("phash",))

    class Closed(Exception):
        pass

    out = open(os.devnull, "w")  # noqa: SIM115
    with out, pytest.raises(Closed), answers.keeping(question, out) as tee:
        tee.write("half an answer")
        raise Closed
    assert not answers.give(question, out)
    assert list(answers.folder.iterdir()) in ([], [answers.folder / "lock"])


def test_answers_are_pruned_and_their_questions_remembered(db_path: Path, library: Path):
    """At most ``KEEP`` answers of the present stamp; those of an older stamp go with the next one kept.
    The questions stay (the ``KEEP`` asked last), whatever the stamp: ``watch`` asks them again."""
    url = f"sqlite:///{db_path}"
    for threshold in range(KEEP + 3):
        cli(db_path, "dupes", "-t", str(threshold))
    assert len(kept_files(db_path)) == KEEP
    last = [["dupes", "--method", "phash", "--threshold", f"{t:.1f}"] for t in range(KEEP + 2, 2, -1)]
    assert [args[:5] for args in asked(url)] == last
    shutil.copyfile(library / "o.jpg", library / "o-third.jpg")
    cli(db_path, "index", str(library))
    cli(db_path, "copies")
    assert len(kept_files(db_path)) == 1
    assert asked(url)[0][0] == "copies" and [args[:5] for args in asked(url)[1:]] == last[:-1]


def test_kept_answers_stay_within_their_budget(tmp_path: Path):
    """Past the budget in bytes the oldest answers go; the newest is kept whatever its size."""
    answers = Answers(tmp_path / "c.db.answers", "stamp", budget=250)
    with open(os.devnull, "w") as out:
        paths = []
        for n, size in enumerate((100, 100, 100, 400)):
            question = Question("dupes", (str(n),))
            with answers.keeping(question, out) as tee:
                tee.write("x" * size)
            paths.append(answers.path(question, out))
            os.utime(paths[-1], ns=(10**18 + n, 10**18 + n))  # distinct ages, oldest first
            kept = sorted(p.name for p in answers.folder.glob("*.out"))
            if n < 2:
                assert kept == sorted(p.name for p in paths)
            elif n == 2:  # 300 bytes: the oldest goes
                assert kept == sorted(p.name for p in paths[1:])
            else:  # the newest alone is over the budget: kept, alone
                assert kept == [paths[3].name]


def test_a_kept_answer_through_a_pipe(db_path: Path, library: Path, tmp_path: Path):
    """The installed command, its output a file: the kept answer is copied by ``sendfile``, the same
    bytes as the answer first printed."""
    outputs = []
    for n in range(2):
        target = tmp_path / f"out{n}.json"
        with open(target, "wb") as out:
            subprocess.run(
                [sys.executable, "-m", "catalog", "--db", str(db_path), "dupes", "-f", "json"],
                stdout=out,
                check=True,
                timeout=120,
            )
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1] and json.loads(outputs[0])["groups"]
    [kept] = kept_files(db_path)
    assert kept.read_bytes() == outputs[0]


def test_a_server_catalogue_keeps_no_answers():
    assert folder_of("postgresql+psycopg://catalog@/postgres") is None
    assert Answers.of("postgresql+psycopg://catalog@/postgres", "1") is None


def test_watch_makes_the_kept_answers_again_once_changes_settle(db_path: Path, library: Path):
    """``watch`` sees the catalogue change (its own indexing, or any writer), waits for it to settle, and
    asks the kept questions again in a process of their own: the next ``dupes`` finds its answer made,
    with the change in it."""
    from test_watch import watching

    assert "1 group, 1 redundant copy" in command(db_path, "dupes")
    assert len(json.loads(command(db_path, "dupes", "-f", "json", "--in", str(library)))["groups"]) == 1
    url = f"sqlite:///{db_path}"
    with watching(db_path, library, methods=["phash", "dhash"], answers_delay=0.2) as watcher:
        shutil.copyfile(library / "o.jpg", library / "o-third.jpg")

        def made_again() -> bool:
            with Catalog.open(url) as catalog:
                stamp = catalog.changes_stamp()
            prefix = Answers(Path(), stamp or "")._prefix
            done = watcher.remaking.made >= 2 and watcher.remaking.took > 0
            return done and sum(p.name.startswith(prefix) for p in kept_files(db_path)) == 2

        assert wait_until(made_again, timeout=60)
        # The next remaking waits three times as long as this one took (at least the delay).
        assert watcher.answers_wait() == max(0.2, 3 * watcher.remaking.took)
    tamper(db_path)
    # Asked as watch asked them, from a process of its own (its output's encoding is part of the key).
    again = command(db_path, "dupes")
    assert again.endswith("KEPT\n")  # given from the file watch made
    assert "1 group, 2 redundant copies" in again and "o-third.jpg" in again
    from_json = command(db_path, "dupes", "-f", "json", "--in", str(library))
    assert from_json.endswith("KEPT\n")
    assert len(json.loads(from_json.removesuffix("KEPT\n"))["groups"][0]["images"]) == 3


def command(db: Path, *args: str) -> str:
    """``catalog ARGS`` as a process of its own: its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "catalog", "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout
