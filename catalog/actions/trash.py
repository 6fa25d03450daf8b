"""The desktop trash (freedesktop.org Trash specification, through send2trash), and finding a trashed
file again so that ``catalog undo`` can put it back.

send2trash moves a file to ``<trash>/files/<name>`` after writing ``<trash>/info/<name>.trashinfo``,
whose ``Path=`` line holds the original path (absolute, or relative to the trash's top folder). The
trash is the home trash (``$XDG_DATA_HOME/Trash``) for files on the home folder's file system, else
``<mount point>/.Trash/<uid>`` or ``<mount point>/.Trash-<uid>``. A file manager restores from the same
places, so a person can also restore without catalog.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes


@dataclass(frozen=True)
class Trashed:
    file: str  # <trash>/files/<name>
    info: str  # <trash>/info/<name>.trashinfo
    deleted: str  # its DeletionDate, as written (ISO, local time): sorts by time


def send(path: str) -> str | None:
    """Move ``path`` to the trash (raises OSError when that is impossible); returns where the file is in
    the trash, None if it cannot be found there.

    send2trash names the file after the original, or ``stem N.ext`` with the first free N; the name it
    will choose is worked out beforehand in each trash that may take the file and checked after, so
    finding the file costs a few ``stat`` calls instead of reading the trash (:func:`locate`, the way
    back when another process took that name meanwhile)."""
    from send2trash import send2trash

    wanted = os.fsencode(os.path.abspath(path))
    free = [
        (trash, top, _free_name(trash, os.fsencode(os.path.basename(path))))
        for trash, top in _trash_dirs(path)
    ]
    send2trash(path)
    for trash, top, name in free:
        original, _ = _read_info(os.path.join(os.fsencode(trash), b"info", name + b".trashinfo"))
        file = os.path.join(os.fsencode(trash), b"files", name)
        if original is not None and _is_path(original, top, wanted) and os.path.exists(file):
            return os.fsdecode(file)
    found = [t for t in locate(path) if os.path.exists(t.file)]
    return found[0].file if found else None


def _free_name(trash: str, name: bytes) -> bytes:
    """The name send2trash gives a file called ``name`` in ``trash`` now: ``name``, else ``stem N.ext``
    with the first N whose file and info file are both free."""
    files, info = os.path.join(os.fsencode(trash), b"files"), os.path.join(os.fsencode(trash), b"info")
    stem, ext = os.path.splitext(name)
    chosen, counter = name, 0
    while os.path.exists(os.path.join(files, chosen)) or os.path.exists(
        os.path.join(info, chosen + b".trashinfo")
    ):
        counter += 1
        chosen = stem + b" " + str(counter).encode("ascii") + ext
    return chosen


def _is_path(original: bytes, top: str, wanted: bytes) -> bool:
    """Whether an info file's ``Path=`` (absolute, or relative to the trash's top folder) is ``wanted``."""
    if not original.startswith(b"/"):
        original = os.path.join(os.fsencode(top), original)
    return os.path.normpath(original) == wanted


def entry_of(file: str, path: str) -> Trashed | None:
    """The trash entry of ``file`` (in a trash's ``files`` folder) if its info file names ``path`` as
    where it came from, else None. The trash may be another environment's than this process's: the
    journal names the very file."""
    trash = os.path.dirname(os.path.dirname(file))
    info = os.path.join(trash, "info", os.path.basename(file) + ".trashinfo")
    original, deleted = _read_info(os.fsencode(info))
    tops = [top for folder, top in _trash_dirs(path) if os.path.realpath(folder) == os.path.realpath(trash)]
    if not tops:  # a trash of another environment (another XDG_DATA_HOME: cron, a timer, another shell)
        tops = [os.path.dirname(trash), os.path.dirname(os.path.dirname(trash))]
    wanted = os.fsencode(os.path.abspath(path))
    if original is None or not any(_is_path(original, top, wanted) for top in tops):
        return None
    return Trashed(file, info, deleted)


def unwritable(path: str) -> str | None:
    """The folder of the home trash that cannot take ``path``'s file (it may not be written, nor the
    folder it would be made in), when the file is on the home trash's file system (send2trash then uses
    that trash, and fails); None otherwise. A trash on another file system is not looked at."""
    data_home = _data_home()
    try:  # send2trash takes the home trash for a file on the home folder's file system
        if os.stat(path).st_dev != os.stat(os.path.expanduser("~")).st_dev:
            return None
    except OSError:
        return None
    for folder in ("files", "info"):
        place = os.path.join(data_home, "Trash", folder)
        while not os.path.exists(place) and os.path.dirname(place) != place:
            place = os.path.dirname(place)
        if not os.access(place, os.W_OK):
            return place
    return None


def _data_home() -> str:
    return os.path.expanduser(os.environ.get("XDG_DATA_HOME", "~/.local/share"))


def _trash_dirs(path: str) -> list[tuple[str, str]]:
    """(trash folder, top folder its relative paths start from) that may hold ``path``'s file."""
    data_home = _data_home()
    found = [(os.path.join(data_home, "Trash"), data_home)]
    mount = os.path.realpath(os.path.dirname(path) or ".")
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    uid = str(os.getuid())
    found += [(os.path.join(mount, ".Trash", uid), mount), (os.path.join(mount, ".Trash-" + uid), mount)]
    return found


def locate(path: str) -> list[Trashed]:
    """Every trashed file whose original path was ``path``, newest first (an orphan info file, whose
    file never arrived, comes with ``file`` missing)."""
    name = os.fsencode(os.path.basename(path))
    stem = os.path.splitext(name)[0]
    wanted = os.fsencode(os.path.abspath(path))
    found = []
    for trash, top in _trash_dirs(path):
        info_dir = os.path.join(trash, "info")
        try:
            entries = list(os.scandir(os.fsencode(info_dir)))
        except OSError:
            continue
        for entry in entries:
            # send2trash names the file after the original (``name``, ``stem N.ext``): read only those.
            if not entry.name.startswith(stem) or not entry.name.endswith(b".trashinfo"):
                continue
            original, deleted = _read_info(entry.path)
            if original is None or not _is_path(original, top, wanted):
                continue
            file = os.path.join(os.fsencode(trash), b"files", entry.name[: -len(b".trashinfo")])
            found.append(Trashed(os.fsdecode(file), os.fsdecode(entry.path), deleted))
    found.sort(key=lambda t: t.deleted, reverse=True)
    return found


def _read_info(info: bytes) -> tuple[bytes | None, str]:
    try:
        with open(info, "rb") as f:
            lines = f.read(64 * 1024).splitlines()
    except OSError:
        return None, ""
    original, deleted = None, ""
    for line in lines:
        if line.startswith(b"Path="):
            original = unquote_to_bytes(line[5:].decode("ascii", "replace"))
        elif line.startswith(b"DeletionDate="):
            deleted = line[13:].decode("ascii", "replace")
    return original, deleted


def restore(trashed: Trashed, path: str) -> None:
    """Put a trashed file back at ``path`` (which must not exist) and drop its info file."""
    if os.path.lexists(path):
        raise FileExistsError(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.link(trashed.file, path)  # no overwrite, ever; then drop the trash's name
        os.unlink(trashed.file)
    except OSError:
        if os.path.lexists(path):
            raise
        import shutil

        shutil.move(trashed.file, path)  # another file system (the home trash for an outside file)
    forget(trashed)


def forget(trashed: Trashed) -> None:
    """Drop a trash entry's info file (its file is gone or back)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(trashed.info)
