"""Folder rules (``catalog rules``) and ``resolve`` settling by them: real files, a real catalogue."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from catalog.actions.rules import FolderRules, decide
from catalog.store import ImageInfo
from tests.actions.test_settle import catalog, environment, snapshot, trash_files
from tests.conftest import PHOTOS


def _image(path: str) -> ImageInfo:
    return ImageInfo(id=0, path=path, size=1, width=1, height=1, format="JPEG", content_hash=None)


def test_the_deepest_rule_holds_and_preferred_copies_are_never_acted_on():
    rules = FolderRules.of([("/p", "prefer"), ("/p/WhatsApp", "avoid"), ("/keep", "prefer")])
    assert rules.rule_of("/p/WhatsApp/a.jpg") == ("/p/WhatsApp", "avoid")
    assert rules.rule_of("/p/a.jpg") == ("/p", "prefer")
    assert rules.rule_of("/pictures/a.jpg") is None  # a folder's name is not a prefix of another's
    group = [_image("/x/a.jpg"), _image("/p/WhatsApp/a.jpg"), _image("/p/a.jpg"), _image("/keep/a.jpg")]
    decided = decide(group, rules)
    assert (decided.keep, decided.act, decided.protected) == (2, [0, 1], [3])
    assert decide([_image("/p/WhatsApp/a.jpg"), _image("/p/WhatsApp/b.jpg")], rules).keep is None
    assert decide([_image("/x/a.jpg"), _image("/y/a.jpg")], rules).reason == "no folder rule reaches it"
    assert decide([_image("/x/a.jpg"), _image("/y/a.jpg")], rules, others=True).keep == 0
    # Every other copy in a preferred folder: nothing to do, and the group says so.
    both = decide([_image("/p/a.jpg"), _image("/keep/a.jpg")], rules)
    assert both.keep is None and both.reason == "every other copy is in a folder you prefer"


def library(root: Path) -> None:
    photos = sorted(PHOTOS.glob("*.jpg"))[:4]
    for folder in ("Camera", "Backup", "WhatsApp"):
        (root / folder).mkdir(parents=True)
    for photo in photos[:3]:  # in Camera/ and its backup, the first also in WhatsApp/
        shutil.copy2(photo, root / "Camera" / photo.name)
        shutil.copy2(photo, root / "Backup" / photo.name)
    shutil.copy2(photos[0], root / "WhatsApp" / photos[0].name)
    shutil.copy2(photos[3], root / "WhatsApp" / photos[3].name)  # only in WhatsApp/ and its backup
    shutil.copy2(photos[3], root / "Backup" / photos[3].name)


def test_rules_are_remembered_and_resolve_follows_them(tmp_path):
    env = environment(tmp_path)
    root = tmp_path / "lib"
    library(root)
    db = tmp_path / "c.db"
    catalog(db, env, "index", "--methods", "phash", str(root))
    assert catalog(db, env, "rules").stdout.startswith("no folder rules")
    catalog(db, env, "rules", "--prefer", str(root / "Backup"), "--avoid", str(root / "WhatsApp"))
    listed = json.loads(catalog(db, env, "rules", "--format", "json").stdout)["rules"]
    assert listed == [
        {"folder": str(root / "Backup"), "rule": "prefer"},
        {"folder": str(root / "WhatsApp"), "rule": "avoid"},
    ]
    plan = json.loads(catalog(db, env, "resolve", "--method", "exact", "--format", "json").stdout)
    assert plan["rules"] == {"by_rule": 4, "by_policy": 0, "kept_in_preferred": 0, "undecided": {}}
    assert {Path(a["keep"]).parent.name for a in plan["actions"]} == {"Backup"}
    assert sorted(Path(a["path"]).parent.name for a in plan["actions"]) == ["Camera"] * 3 + ["WhatsApp"] * 2
    # Without the rules, the keep order keeps the camera originals.
    plain = json.loads(catalog(db, env, "resolve", "--method", "exact", "--no-rules", "-f", "json").stdout)
    assert "rules" not in plain
    assert {Path(a["path"]).parent.name for a in plain["actions"]} == {"Backup", "WhatsApp"}
    before = snapshot(root)
    text = catalog(db, env, "resolve", "--method", "exact", "--apply").stdout
    assert "folder rules decided 4 groups, the keep policy 0 groups" in text
    assert len(trash_files(env)) == 5 and not any(k.startswith("Camera/") for k in snapshot(root))
    catalog(db, env, "undo")
    assert snapshot(root) == before
    catalog(db, env, "rules", "--remove", str(root / "Backup"))
    assert catalog(db, env, "rules").stdout.split() == ["avoid", str(root / "WhatsApp")]
    missing = catalog(db, env, "rules", "--remove", str(root / "Backup"), check=False)
    assert missing.returncode == 2 and "no rule for" in missing.stderr
    # Moving copies into the library would catalogue them again: refused, nothing moved.
    inside = catalog(
        db, env, "resolve", "--action", "move", "--to", str(root / "Dupes"), "--apply", check=False
    )
    assert inside.returncode == 2 and "inside the catalogued folder" in inside.stderr
    assert snapshot(root) == before


def test_a_rule_or_a_preferred_folder_given_through_a_symlinked_path_protects_the_folder(tmp_path):
    """A library indexed through a symbolic link (``~/Pictures`` -> ``/data/Pictures``) and a rule given
    as the folder's real path (``cd Pictures/Backup; catalog rules --prefer .``), or the other way round:
    the rule named the folder otherwise than the catalogued paths, matched nothing, and resolve planned
    to trash the preferred folder's files."""
    env = environment(tmp_path)
    real = tmp_path / "data" / "lib"
    library(real)
    (tmp_path / "Pictures").symlink_to(tmp_path / "data")
    linked = tmp_path / "Pictures" / "lib"
    db = tmp_path / "c.db"
    catalog(db, env, "index", "--methods", "exact", str(linked))

    def acted_on() -> set[str]:
        plan = json.loads(catalog(db, env, "resolve", "--method", "exact", "--format", "json").stdout)
        return {Path(a["path"]).parent.name for a in plan["actions"]}

    assert "Backup" in acted_on()
    catalog(db, env, "rules", "--prefer", str(real / "Backup"))  # the real path, as `.` gives it
    assert "Backup" not in acted_on()
    catalog(db, env, "rules", "--remove", str(real / "Backup"))
    preferring = [
        "resolve",
        "-m",
        "exact",
        "--no-rules",
        "--keep",
        f"prefer:{real / 'WhatsApp'}",
        "-f",
        "json",
    ]
    plan = json.loads(catalog(db, env, *preferring).stdout)
    assert not any(Path(a["path"]).parent.name == "WhatsApp" for a in plan["actions"])
    # Indexed by the real path, the rule given through the link.
    catalog(db, env, "forget", str(linked))
    catalog(db, env, "index", "--methods", "exact", str(real))
    catalog(db, env, "rules", "--prefer", str(linked / "Camera"))
    assert "Camera" not in acted_on() and "Backup" in acted_on()


def test_shortest_path_ties_keep_the_groups_reference():
    from catalog.actions.policies import KeepPolicy

    # Same length: the reference (position 0) stays first, not the path earlier in the alphabet.
    group = [_image("/lib/Photos/a.jpg"), _image("/lib/Backup/a.jpg"), _image("/lib/x/a.jpg")]
    assert KeepPolicy.parse(["shortest-path"]).order(group) == [2, 0, 1]
