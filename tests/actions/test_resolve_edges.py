"""Edges of ``resolve`` and ``undo`` a person trying the tool met: the dry run must say what the apply
then does, a failed move must leave no second copy, and a delete run must not block ``undo``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.actions.test_settle import catalog, environment
from tests.conftest import PHOTOS

PHOTO = PHOTOS / "Canon_IXUS.jpg"
#: Root without its power to pass over file permissions (tests here run as root).
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def files(*folders: Path) -> list[str]:
    return sorted(str(p) for f in folders if f.exists() for p in f.rglob("*") if p.is_file())


def acted_lines(out: str) -> list[str]:
    """The per-file lines of resolve's text, with "would move" and "moved" alike."""
    return [line.replace("would move", "moved").strip() for line in out.splitlines()[:-1]]


def test_a_dry_run_says_what_the_apply_does_when_destinations_collide(tmp_path):
    """Two copies moved to one --to path (a Backup/ folder in each of two roots), and a copy whose sidecar
    cannot follow it: the dry run said "would move" for all, the apply moved one and skipped the others,
    and moved an image without its sidecar."""
    roots = [tmp_path / "A", tmp_path / "B"]
    for root in roots:
        (root / "Pictures").mkdir(parents=True)
        (root / "Backup").mkdir()
        shutil.copy2(PHOTO, root / "Pictures" / "IXUS.jpg")
        shutil.copy2(PHOTO, root / "Backup" / "IXUS.jpg")
    (roots[0] / "Backup" / "IXUS.jpg.xmp").write_text("<x:xmpmeta/>")
    out = tmp_path / "out"
    (out / "Backup").mkdir(parents=True)
    (out / "Backup" / "IXUS.jpg.xmp").write_text("another picture's edits")
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", *map(str, roots), "--methods", "phash")
    ask = ("resolve", "--method", "phash", "--action", "move", "--to", str(out))
    dry = catalog(db, env, *ask).stdout
    applied = catalog(db, env, *ask, "--apply").stdout
    assert acted_lines(dry) == acted_lines(applied), (dry, applied)
    assert f"its sidecar {roots[0] / 'Backup' / 'IXUS.jpg.xmp'} cannot go along" in dry
    assert (roots[0] / "Backup" / "IXUS.jpg").exists() and (roots[0] / "Backup" / "IXUS.jpg.xmp").exists()
    moved = [out / "Backup" / "IXUS.jpg", out / "Backup" / "IXUS.jpg.xmp", out / "Pictures" / "IXUS.jpg"]
    assert files(out) == [str(p) for p in moved]  # B's Backup copy took the destination both wanted


def test_a_move_that_cannot_remove_its_source_leaves_no_second_copy(tmp_path):
    """The source folder is read-only: the hard link into --to was made, removing the source failed, and
    the link stayed (a full copy across file systems) while the journal said "rolled-back". The plan now
    skips such a file; the move itself still leaves no second copy when the folder turns read-only
    between the check and the act."""
    lib = tmp_path / "lib"
    (lib / "Pictures").mkdir(parents=True)
    (lib / "Backup").mkdir()
    shutil.copy2(PHOTO, lib / "Pictures" / "IXUS.jpg")
    shutil.copy2(PHOTO, lib / "Backup" / "IXUS.jpg")
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), "--methods", "phash")
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []  # root passes over permissions: not a user
    (lib / "Backup").chmod(0o555)
    try:
        done = subprocess.run(
            [
                *prefix, sys.executable, "-m", "catalog", "--db", str(db),
                "resolve", "--method", "phash", "--action", "move", "--to", str(tmp_path / "out"), "--apply",
            ],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        move = "from catalog.actions.apply import _move; import sys; _move(sys.argv[1], sys.argv[2], 1)"
        source, target = lib / "Backup" / "IXUS.jpg", tmp_path / "out" / "x.jpg"
        raced = subprocess.run(
            [*prefix, sys.executable, "-c", move, str(source), str(target)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
    finally:
        (lib / "Backup").chmod(0o755)
    assert done.returncode == 0 and "is in a folder that may not be written" in done.stdout, done
    assert "undo:" not in done.stdout  # nothing was done: nothing to undo
    assert raced.returncode != 0 and "PermissionError" in raced.stderr
    assert files(tmp_path / "out") == []
    assert files(lib) == [str(lib / "Backup" / "IXUS.jpg"), str(lib / "Pictures" / "IXUS.jpg")]


def test_undo_passes_over_a_run_that_deleted_files(tmp_path):
    """A trash run, then a delete run: plain ``undo`` picked the delete run every time ("a deleted file
    cannot be restored") and never reached the trash run."""
    lib = tmp_path / "lib"
    for folder in ("P", "Backup", "Downloads"):
        (lib / folder).mkdir(parents=True)
    shutil.copy2(PHOTO, lib / "P" / "a.jpg")
    shutil.copy2(PHOTO, lib / "Backup" / "a.jpg")
    shutil.copy2(PHOTOS / "Canon_EOS_D60.jpg", lib / "P" / "b.jpg")
    shutil.copy2(PHOTOS / "Canon_EOS_D60.jpg", lib / "Downloads" / "b.jpg")
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), "--methods", "phash")
    catalog(db, env, "resolve", "--method", "phash", "--in", str(lib / "Backup"), "--apply")
    catalog(db, env, "resolve", "--method", "phash", "--in", str(lib / "Downloads"), "--action", "delete",
            "--apply", "--yes-delete")  # fmt: skip
    undone = catalog(db, env, "undo")
    assert f"restored  {lib / 'Backup' / 'a.jpg'}  (was trashed)" in undone.stdout
    assert (lib / "Backup" / "a.jpg").read_bytes() == PHOTO.read_bytes()
    assert catalog(db, env, "undo", "--all").returncode == 0


def test_a_read_only_photo_is_skipped_by_the_dry_run_as_by_the_trash(tmp_path):
    """The desktop trash (send2trash) refuses a file it may not write: photos copied with ``cp -p`` from a
    read-only card are 0444. The dry run said "would trash", the apply "trash failed"."""
    lib = tmp_path / "lib"
    (lib / "Pictures").mkdir(parents=True)
    (lib / "Backup").mkdir()
    shutil.copy2(PHOTO, lib / "Pictures" / "IXUS.jpg")
    shutil.copy2(PHOTO, lib / "Backup" / "IXUS.jpg")
    (lib / "Backup" / "IXUS.jpg").chmod(0o444)
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), "--methods", "phash")
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    ask = [*prefix, sys.executable, "-m", "catalog", "--db", str(db), "resolve", "--method", "phash"]
    dry = subprocess.run(ask, capture_output=True, text=True, env=env).stdout
    applied = subprocess.run([*ask, "--apply"], capture_output=True, text=True, env=env).stdout
    assert acted_lines(dry) == acted_lines(applied) and "is read-only" in dry, (dry, applied)
    assert (lib / "Backup" / "IXUS.jpg").exists()


def test_a_trash_that_may_not_be_written_is_named_by_the_dry_run_as_by_the_apply(tmp_path):
    """A home trash this user may not write: the dry run said "would trash", the apply "trash failed:
    Permission denied", naming no folder."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(PHOTO, lib / "IXUS.jpg")
    shutil.copyfile(PHOTO, lib / "IXUS copy.jpg")
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), "--methods", "phash")
    trash = Path(env["XDG_DATA_HOME"]) / "Trash"
    trash.mkdir(parents=True, exist_ok=True)
    trash.chmod(0o555)
    try:
        prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
        ask = [*prefix, sys.executable, "-m", "catalog", "--db", str(db), "resolve", "--method", "phash"]
        dry = subprocess.run(ask, capture_output=True, text=True, env=env).stdout
        applied = subprocess.run([*ask, "--apply"], capture_output=True, text=True, env=env).stdout
    finally:
        trash.chmod(0o755)
    assert acted_lines(dry) == acted_lines(applied), (dry, applied)
    assert f"the desktop trash cannot take it: {trash} may not be written" in dry
    assert files(lib) == [str(lib / "IXUS copy.jpg"), str(lib / "IXUS.jpg")]


def test_the_dry_run_skips_what_the_apply_cannot_do_a_read_only_folder_and_a_name_too_long(tmp_path):
    """A copy in a folder this user may not write, and one whose name leaves no room for the trash's
    ``.trashinfo``: the dry run said "would trash", the apply "trash failed"."""
    lib = tmp_path / "lib"
    for folder in ("Pictures", "Locked", "Long"):
        (lib / folder).mkdir(parents=True)
    shutil.copyfile(PHOTO, lib / "Pictures" / "IXUS.jpg")
    shutil.copyfile(PHOTO, lib / "Locked" / "IXUS.jpg")
    shutil.copyfile(PHOTO, lib / "Long" / ("x" * 246 + ".jpg"))
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), "--methods", "phash")
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    ask = [*prefix, sys.executable, "-m", "catalog", "--db", str(db), "resolve", "--method", "phash"]
    (lib / "Locked").chmod(0o555)
    try:
        dry = subprocess.run(ask, capture_output=True, text=True, env=env).stdout
        applied = subprocess.run([*ask, "--apply"], capture_output=True, text=True, env=env).stdout
    finally:
        (lib / "Locked").chmod(0o755)
    assert acted_lines(dry) == acted_lines(applied), (dry, applied)
    assert f"is in a folder that may not be written ({lib / 'Locked'})" in dry
    assert "its name is too long for the desktop trash" in dry
    assert len(files(lib)) == 3


def test_a_move_never_puts_a_copy_into_another_catalogued_root(tmp_path):
    """``--to`` above another root: the copies of one root landed in the other, catalogued and grouped
    again."""
    lib, backup = tmp_path / "lib", tmp_path / "Backup"
    (lib / "Backup").mkdir(parents=True)
    backup.mkdir()
    shutil.copyfile(PHOTO, lib / "IXUS.jpg")
    shutil.copyfile(PHOTO, lib / "Backup" / "IXUS.jpg")  # would go to tmp_path/Backup/IXUS.jpg
    shutil.copyfile(PHOTOS / "Canon_EOS_D60.jpg", backup / "D60.jpg")
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), str(backup), "--methods", "phash")
    moved = catalog(db, env, "resolve", "-m", "phash", "--action", "move", "--to", str(tmp_path), "--apply")
    assert f"is in the catalogued folder {backup}: it would be grouped again" in moved.stdout
    assert files(backup) == [str(backup / "D60.jpg")] and (lib / "Backup" / "IXUS.jpg").exists()


def test_a_file_that_links_made_by_catalog_point_to_is_never_taken_away(tmp_path):
    """``resolve --action symlink``, then ``resolve --keep newest``: the second run trashed the file the
    first run's links point to, leaving them pointing at nothing (the original only in the trash)."""
    lib = tmp_path / "lib"
    (lib / "Backup").mkdir(parents=True)
    shutil.copyfile(PHOTO, lib / "IXUS.jpg")
    shutil.copyfile(PHOTO, lib / "Backup" / "IXUS.jpg")
    with Image.open(PHOTO) as img:
        img.save(lib / "IXUS small.jpg", quality=80)
    os.utime(lib / "IXUS.jpg", (1_500_000_000, 1_500_000_000))
    os.utime(lib / "IXUS small.jpg", (1_700_000_000, 1_700_000_000))  # the newest
    db, env = tmp_path / "c.db", environment(tmp_path)
    catalog(db, env, "index", str(lib), "--methods", "phash")
    catalog(db, env, "resolve", "-m", "phash", "--keep", "oldest", "--action", "symlink", "--apply")
    assert os.readlink(lib / "Backup" / "IXUS.jpg") == str(lib / "IXUS.jpg")
    for apply in ([], ["--apply"]):
        out = catalog(db, env, "resolve", "-m", "phash", "--keep", "newest", *apply).stdout
        assert f"{lib / 'IXUS.jpg'}: symbolic links that catalog made point to it (1)" in out
    assert (lib / "IXUS.jpg").exists() and (lib / "Backup" / "IXUS.jpg").exists()  # the link resolves
