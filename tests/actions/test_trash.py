"""Files of one name sent to a desktop trash that already holds others of that name (someone else's,
with a gap where one was restored): each journal entry names the trashed file that holds its bytes,
undo puts each back byte for byte, and the others' entries stay. A real trash in a temporary home."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

from PIL import Image

from tests.actions.test_settle import (
    UKBENCH,
    catalog,
    environment,
    journal_states,
    library,
    snapshot,
    trash_files,
)
from tests.conftest import wait_until


def _info_path(trash: Path, file: str) -> str:
    info = (trash / "info" / (Path(file).name + ".trashinfo")).read_text()
    return unquote(next(line[5:] for line in info.splitlines() if line.startswith("Path=")))


def test_same_named_files_each_land_where_the_journal_says_and_come_back(tmp_path):
    env = environment(tmp_path)
    trash = Path(env["XDG_DATA_HOME"]) / "Trash"
    (trash / "files").mkdir(parents=True)
    (trash / "info").mkdir()
    # Someone else's trash: IMG_0001.jpg and "IMG_0001 2.jpg" (the " 1" was restored: a gap).
    for name in ("IMG_0001.jpg", "IMG_0001 2.jpg"):
        (trash / "files" / name).write_bytes(b"not ours " + name.encode())
        (trash / "info" / f"{name}.trashinfo").write_text(
            f"[Trash Info]\nPath=/elsewhere/{name}\nDeletionDate=2026-01-01T00:00:00\n"
        )
    root = tmp_path / "lib"
    sources = sorted(UKBENCH.glob("*.jpg"))[:12:4]
    for n, source in enumerate(sources):
        for k in range(4):  # an original and three copies, every one called IMG_0001.jpg
            folder = root / f"set{n}" / f"card{k}"
            folder.mkdir(parents=True)
            if k % 2:
                with Image.open(source) as img:
                    img.save(folder / "IMG_0001.jpg", quality=90)
            else:
                shutil.copyfile(source, folder / "IMG_0001.jpg")
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root))
    before = snapshot(root)
    digests = {str(root / name): digest for name, digest in before.items()}
    applied = json.loads(
        catalog(db, env, "resolve", "--keep", "oldest", "--action", "trash", "--apply", "-f", "json").stdout
    )
    actions = applied["actions"]
    assert len(actions) == 9 and applied["skipped"] == []
    targets = [a["target"] for a in actions]
    assert len(set(targets)) == 9
    for action in actions:
        target = Path(action["target"])
        assert target.parent == trash / "files"
        assert hashlib.sha256(target.read_bytes()).hexdigest() == digests[action["path"]]
        assert _info_path(trash, action["target"]) == action["path"]
    assert "IMG_0001 1.jpg" in {Path(t).name for t in targets}  # the gap was filled
    undone = json.loads(catalog(db, env, "undo", "--all", "-f", "json").stdout)
    assert len(undone["restored"]) == 9 and undone["failed"] == []
    assert snapshot(root) == before
    assert trash_files(env) == ["IMG_0001 2.jpg", "IMG_0001.jpg"]
    assert sorted(p.name for p in (trash / "info").iterdir()) == [
        "IMG_0001 2.jpg.trashinfo",
        "IMG_0001.jpg.trashinfo",
    ]


def test_ctrl_c_during_apply_leaves_nothing_pending_and_undo_restores_every_byte(tmp_path):
    env = environment(tmp_path)
    root = library(tmp_path / "lib", originals=8, copies=10, seed=3)  # two batches
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root))
    before = snapshot(root)
    command = [sys.executable, "-m", "catalog", "--db", str(db), "resolve", "--keep", "oldest"]
    process = subprocess.Popen(
        [*command, "--action", "trash", "--apply"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_until(lambda: process.poll() is not None or sum(journal_states(db).values()) > 0, 60)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr.decode()
    states = journal_states(db)
    assert set(states) <= {"done"}, states  # no entry left pending: each batch is settled before exit
    if process.returncode != 0:  # stopped: one line, the shell's code for Ctrl-C, and what was done
        assert process.returncode == 130 and len(stderr.decode().strip().splitlines()) == 1, stderr
        done = states.get("done", 0)
        told = f"interrupted; {done} file{'s' if done != 1 else ''} acted on before it"
        assert not done or (told in stderr.decode() and "catalog undo --last" in stderr.decode()), stderr
    done = json.loads(catalog(db, env, "journal", "-f", "json").stdout)["entries"]
    assert len(done) == states.get("done", 0) == len(trash_files(env))
    assert all(not (Path(e["path"])).exists() and Path(e["target"]).exists() for e in done)
    catalog(db, env, "undo", "--all")
    assert snapshot(root) == before
    assert trash_files(env) == []


def test_undo_takes_only_its_own_trash_item_when_an_identical_one_took_its_name(tmp_path):
    """A copy is trashed, the trash emptied by hand, then a byte-identical copy of the same name is
    trashed under the same trash name: undoing the first finds it gone; the second comes back."""
    env = environment(tmp_path)
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    source = sorted(UKBENCH.glob("*.jpg"))[0]
    shutil.copyfile(source, root / "keep.jpg")
    shutil.copyfile(source, root / "a" / "IMG.jpg")
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root))
    policy = ["--keep", "oldest", "--action", "trash", "--apply", "-f", "json"]
    (first,) = json.loads(catalog(db, env, "resolve", *policy).stdout)["actions"]
    assert first["path"] == str(root / "a" / "IMG.jpg")
    trash = Path(env["XDG_DATA_HOME"]) / "Trash"
    for folder in ("files", "info"):  # the trash emptied by hand
        for item in (trash / folder).iterdir():
            item.unlink()
    (root / "b").mkdir()
    shutil.copyfile(source, root / "b" / "IMG.jpg")
    catalog(db, env, "index", str(root))
    (second,) = json.loads(catalog(db, env, "resolve", *policy).stdout)["actions"]
    assert second["path"] == str(root / "b" / "IMG.jpg") and second["target"] == first["target"]
    ids = {
        e["path"]: e["id"] for e in json.loads(catalog(db, env, "journal", "-f", "json").stdout)["entries"]
    }
    refused = catalog(db, env, "undo", str(ids[first["path"]]), "-f", "json", check=False)
    assert refused.returncode == 1, refused.stderr
    undone = json.loads(refused.stdout)
    assert undone["restored"] == [] and [f["reason"] for f in undone["failed"]] == ["no longer in the trash"]
    assert not (root / "a" / "IMG.jpg").exists() and Path(second["target"]).exists()
    undone = json.loads(catalog(db, env, "undo", str(ids[second["path"]]), "-f", "json").stdout)
    assert [r["path"] for r in undone["restored"]] == [second["path"]]
    assert (root / "b" / "IMG.jpg").read_bytes() == source.read_bytes()
    assert trash_files(env) == []


def _copies(tmp_path: Path, *names: str) -> tuple[dict[str, str], Path]:
    """A test home, and a library whose ``names`` are byte copies of one UKBench photo."""
    env = environment(tmp_path)
    root = tmp_path / "lib"
    root.mkdir()
    source = sorted(UKBENCH.glob("*.jpg"))[0]
    for name in names:
        shutil.copyfile(source, root / name)
    return env, root


def test_undo_all_puts_back_a_link_whose_file_a_later_action_trashed(tmp_path):
    """A copy made a hard link to the file kept, then that file trashed by a later run (keeping a
    re-encode; the link is another name of it, not catalogued): undoing all brings the file back first,
    then the copy's own bytes."""
    env, root = _copies(tmp_path, "x.jpg", "y.jpg")
    with Image.open(root / "x.jpg") as img:
        img.save(root / "z.jpg", quality=90)
    for age, name in enumerate(("x.jpg", "y.jpg", "z.jpg")):  # x the oldest, z the newest
        os.utime(root / name, (1_600_000_000 + age * 1000, 1_600_000_000 + age * 1000))
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root))
    before = snapshot(root)
    apply = ["--apply", "-f", "json"]
    (linked,) = json.loads(
        catalog(db, env, "resolve", "--keep", "oldest", "--action", "hardlink", *apply).stdout
    )["actions"]
    assert linked["path"] == str(root / "y.jpg") and os.path.samefile(root / "x.jpg", root / "y.jpg")
    # y is now another name of x, catalogued once: x goes to the trash, y stays as x's bytes.
    trashed = json.loads(catalog(db, env, "resolve", "--keep", "newest", "--action", "trash", *apply).stdout)
    assert [a["path"] for a in trashed["actions"]] == [str(root / "x.jpg")]
    undone = json.loads(catalog(db, env, "undo", "--all", "-f", "json").stdout)
    assert undone["failed"] == [] and len(undone["restored"]) == 2
    assert snapshot(root) == before and not os.path.samefile(root / "x.jpg", root / "y.jpg")


def test_a_hard_link_is_undone_after_the_kept_file_was_renamed_but_not_after_it_changed(tmp_path):
    """A hard link holds the bytes itself: undo needs no kept file (renamed here), only the same bytes."""
    env = environment(tmp_path)
    root = tmp_path / "lib"
    root.mkdir()
    sources = sorted(UKBENCH.glob("*.jpg"))[:2]
    for k, source in enumerate(sources):
        shutil.copyfile(source, root / f"x{k}.jpg")
        shutil.copyfile(source, root / f"y{k}.jpg")
        os.utime(root / f"x{k}.jpg", (1_600_000_000, 1_600_000_000))  # x the oldest: kept
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root), "--methods", "exact")
    before = snapshot(root)
    settle = ["resolve", "-m", "exact", "--keep", "oldest", "--action", "hardlink", "--apply", "-f", "json"]
    done = json.loads(catalog(db, env, *settle).stdout)["actions"]
    assert sorted(a["path"] for a in done) == [str(root / "y0.jpg"), str(root / "y1.jpg")]
    (root / "x0.jpg").rename(root / "kept.jpg")
    (root / "x1.jpg").rename(root / "kept1.jpg")
    with open(root / "kept1.jpg", "r+b") as edited:  # y1's bytes too: they are no longer the copy's
        edited.seek(100)
        edited.write(b"edited")
    undone = json.loads(catalog(db, env, "undo", "--all", "-f", "json", check=False).stdout)
    assert [r["path"] for r in undone["restored"]] == [str(root / "y0.jpg")]
    assert [f["path"] for f in undone["failed"]] == [str(root / "y1.jpg")]
    assert "changed since it became a hard link" in undone["failed"][0]["reason"]
    assert hashlib.sha256((root / "y0.jpg").read_bytes()).hexdigest() == before["y0.jpg"]
    assert not os.path.samefile(root / "y0.jpg", root / "kept.jpg")
    assert os.path.samefile(root / "y1.jpg", root / "kept1.jpg")  # left as it was


def test_undo_finds_the_trashed_files_from_another_environment_s_trash(tmp_path):
    """resolve run with one XDG_DATA_HOME (a timer, cron, another shell), undo with another: the journal
    names the trashed file, but undo looked only in its own environment's trash ("no longer in the
    trash")."""
    env, root = _copies(tmp_path, "a.jpg", "a copy.jpg")
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root), "--methods", "exact")
    before = snapshot(root)
    other = {**env, "XDG_DATA_HOME": str(tmp_path / "elsewhere")}
    trashed = json.loads(catalog(db, other, "resolve", "-m", "exact", "--apply", "-f", "json").stdout)
    assert [Path(a["target"]).parents[2] for a in trashed["actions"]] == [tmp_path / "elsewhere"]
    undone = json.loads(catalog(db, env, "undo", "-f", "json").stdout)
    assert len(undone["restored"]) == 1 and undone["failed"] == []
    assert snapshot(root) == before and not any((tmp_path / "elsewhere" / "Trash" / "info").iterdir())


def test_files_put_back_by_an_undo_killed_before_it_catalogued_them_are_catalogued_by_the_next(tmp_path):
    """kill -9 of ``undo`` after its files were back, before it catalogued them: the journal said undone,
    and nothing but a manual ``index`` brought them back into the catalogue. Here the undo stops exactly
    there (the put-back of :func:`catalog.actions.apply.undo`, without the caller's cataloguing); its
    entries stay ``undoing``, and the next command that settles the journal catalogues them."""
    from catalog.actions import apply as actions
    from catalog.store import Catalog

    env, root = _copies(tmp_path, "a.jpg", "a copy.jpg", "a copy 2.jpg")
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root), "--methods", "exact")
    grouped = catalog(db, env, "dupes", "-m", "exact").stdout
    catalog(db, env, "resolve", "-m", "exact", "--apply")
    with Catalog.open(f"sqlite:///{db}") as opened:
        entries = actions.entries_to_undo(opened, "last", [])
        outcome = actions.undo(opened, entries)  # the files are back; the process "dies" here
    assert len(outcome.restored) == 2 and len(list(root.iterdir())) == 3
    assert [e["state"] for e in json.loads(catalog(db, env, "journal", "-f", "json").stdout)["entries"]] == [
        "undoing",
        "undoing",
    ]
    assert catalog(db, env, "dupes", "-m", "exact").stdout != grouped  # not catalogued yet
    again = catalog(db, env, "undo")
    assert again.stderr.count("finished undoing trash") == 2
    assert catalog(db, env, "dupes", "-m", "exact").stdout == grouped
    states = [e["state"] for e in json.loads(catalog(db, env, "journal", "-f", "json").stdout)["entries"]]
    assert states == ["undone", "undone"]


def test_files_put_back_under_a_root_forgotten_since_stay_out_of_the_catalogue(tmp_path):
    """``forget ROOT`` after a resolve, then undo: the files came back, and were catalogued under no
    root (``roots`` listed none, ``status`` counted them)."""
    env, root = _copies(tmp_path, "a.jpg", "a copy.jpg")
    db = tmp_path / "c.db"
    catalog(db, env, "index", str(root), "--methods", "exact")
    catalog(db, env, "resolve", "-m", "exact", "--apply")
    catalog(db, env, "forget", str(root))
    assert len(json.loads(catalog(db, env, "undo", "-f", "json").stdout)["restored"]) == 1
    assert sorted(p.name for p in root.iterdir()) == ["a copy.jpg", "a.jpg"]
    assert json.loads(catalog(db, env, "status", "-f", "json").stdout)["images"] == 0
