"""A step is checked against the steps checked before it in the same batch, which the disk does not show
yet: the file to keep, the file acted on and a move's destination. Real files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from catalog.actions.plan import Step, check, file_hash
from catalog.store import ImageInfo
from tests.actions.test_settle import UKBENCH


def _info(path: Path) -> ImageInfo:
    st = os.stat(path)
    return ImageInfo(-1, str(path), st.st_size, None, None, "JPEG", file_hash(str(path)), st.st_mtime_ns)


def test_a_step_sees_what_the_steps_before_it_will_do(tmp_path):
    source = sorted(UKBENCH.glob("*.jpg"))[0]
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        shutil.copyfile(source, tmp_path / name)
    a, b, c = (_info(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.jpg"))
    roots = [str(tmp_path)]
    moved = str(tmp_path / "moved" / "b.jpg")
    step = Step("move", b, a, target=moved)
    assert check(step, roots, False) is None
    assert check(step, roots, False, busy={moved}) == f"the destination {moved} exists"
    assert check(step, roots, False, busy={a.path}) == f"the file to keep, {a.path}, is acted on by this run"
    assert check(step, roots, False, busy={b.path}) == "is acted on by this run already"
    assert check(Step("trash", c, a), roots, False, busy={b.path, moved}) is None
