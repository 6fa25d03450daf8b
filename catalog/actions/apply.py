"""Actions on a user's files: planned, checked, journaled, carried out, and undone.

Every action is written to the catalogue's journal (``pending``) before the file is touched and marked
``done`` after, in the transaction that makes the catalogue follow the file. A process killed between
the two leaves a ``pending`` entry, which :func:`recover` settles from what is on disk before any later
action or undo: the action happened (``done``) or it did not (``rolled-back``). Undo works the same way
(``undoing`` -> ``undone``). Each file operation is one atomic step (a rename, a link renamed over the
copy), so there is no half-done file to find.

Safety, before each file is touched:

- the file is still the one the catalogue knows (size and modified time; its content hash too when
  ``verify_content``: for ``exact`` and for links), and the file kept instead exists, unchanged;
- the kept file is never acted on, and a group whose kept file is gone is left alone: the last copy of a
  picture is never removed;
- a path that leads out of the catalogued folders through a symlinked folder is not touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from catalog.actions import trash
from catalog.actions.policies import KeepPolicy
from catalog.errors import UsageError
from catalog.ingest.formats import RAW_SUFFIXES, SIDECAR_SUFFIXES
from catalog.store import Catalog, ImageInfo, now
from catalog.store.models import JournalEntry

ACTIONS = ("trash", "move", "hardlink", "symlink", "delete")
#: Actions that ``undo`` can reverse (a deleted file is gone).
UNDOABLE = ("trash", "move", "hardlink", "symlink")
#: Prefix of the temporary names next to a file being replaced (hidden: indexing and watch skip them).
TEMP = ".catalog-tmp-"


@dataclass(frozen=True)
class Step:
    """One planned action: ``image``'s file gets ``action``; ``keep`` is the file kept instead;
    ``target`` is where a moved file goes or what a link points to."""

    action: str
    image: ImageInfo
    keep: ImageInfo
    target: str | None = None
    #: For a sidecar (an ``.xmp``, an ``.aae``) that goes along with its image: that image's path.
    sidecar_of: str | None = None


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    #: Whether the RAW and the JPEG of one shot may be acted on as duplicates of each other.
    raw_pairs: bool = False


@dataclass
class Outcome:
    done: list[tuple[Step, str | None, int]] = field(default_factory=list)  # (step, target, journal id)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    batch: int | None = None


def make_plan(
    groups: Sequence[Sequence[ImageInfo]],
    policy: KeepPolicy | None,
    action: str,
    roots: Sequence[str],
    to: str | None = None,
    verify_content: bool = False,
    raw_pairs: bool = False,
) -> Plan:
    """What to do to each group (each in its own order, the reference first): keep the image the policy
    puts first (the group's first without a policy), act on the others, and on their sidecars (trash,
    move, delete). Every step is checked against the disk now (:func:`check`); :func:`apply` checks again
    just before acting. The RAW and the JPEG of one shot are left alone unless ``raw_pairs``."""
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}: use {', '.join(ACTIONS)}")
    if action == "move" and not to:
        raise UsageError("--action move needs --to DIR")
    if to and action != "move":
        raise UsageError("--to applies to --action move only")
    destination = os.path.abspath(os.path.expanduser(to)) if to else None
    real_roots = [os.path.realpath(r) for r in roots]
    if destination is not None:
        inside = _root_of(os.path.realpath(destination) + os.sep, real_roots)  # the root itself too
        if inside is not None:
            raise UsageError(
                f"{to} is inside the catalogued folder {inside}: moved copies would stay "
                "catalogued and be grouped again; move them to a folder outside it"
            )
    plan = Plan(raw_pairs=raw_pairs)
    folders: dict[str, _Folder] = {}
    for group in groups:
        order = policy.order(group) if policy is not None else list(range(len(group)))
        keep = group[order[0]]
        problem = unchanged(keep, False)
        for k in order[1:]:
            image = group[k]
            if problem is not None:
                plan.skipped.append((image.path, f"the file to keep, {keep.path}, {problem}"))
                continue
            target = _target(action, image, keep, roots, destination)
            reason = check(Step(action, image, keep, target), real_roots, verify_content, raw_pairs)
            if reason is not None:
                plan.skipped.append((image.path, reason))
                continue
            plan.steps.append(Step(action, image, keep, target))
            if action in ("trash", "move", "delete"):
                for sidecar in sidecars(image.path, folders):
                    info = _file_info(sidecar)
                    if info is not None:
                        side_target = _target(action, info, keep, roots, destination)
                        plan.steps.append(Step(action, info, keep, side_target, sidecar_of=image.path))
    return plan


def sidecars(path: str, folders: dict[str, _Folder] | None = None) -> list[str]:
    """The sidecar files that belong to the image at ``path`` alone: ``photo.jpg.xmp`` always, and
    ``photo.xmp`` / ``photo.aae`` unless another file of that name (the RAW of a RAW+JPEG pair) shares
    them. ``folders`` keeps each folder's listing for the next image of the same folder (a plan's)."""
    folder, name = os.path.split(path)
    found = folders.get(folder) if folders is not None else None
    if found is None:
        found = _Folder.read(folder)
        if folders is not None:
            folders[folder] = found
    stem = os.path.splitext(name)[0]
    own = sorted(found.sidecars.get(name, []))
    shares = [n for n in found.names.get(stem, []) if n != name]
    if not shares:
        own += sorted(found.sidecars.get(stem, []))
    return [os.path.join(folder, n) for n in own]


@dataclass
class _Folder:
    """A folder's file names by the name without their suffix: sidecars apart, the others apart."""

    sidecars: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: str) -> _Folder:
        found = cls()
        try:
            names = os.listdir(folder)
        except OSError:
            return found
        for n in names:
            base, ext = os.path.splitext(n)
            (found.sidecars if ext.lower() in SIDECAR_SUFFIXES else found.names).setdefault(base, []).append(
                n
            )
        return found


def _file_info(path: str) -> ImageInfo | None:
    """A sidecar as the steps see a file: its size, time and content hash now."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return ImageInfo(-1, path, st.st_size, None, None, "sidecar", file_hash(path), st.st_mtime_ns)


def _shot_pair(a: str, b: str) -> bool:
    """The RAW and the JPEG (or HEIC) of one shot: one folder, one name, one of them a RAW file."""
    (folder_a, name_a), (folder_b, name_b) = os.path.split(a), os.path.split(b)
    stem_a, ext_a = os.path.splitext(name_a)
    stem_b, ext_b = os.path.splitext(name_b)
    raw_a, raw_b = ext_a.lower() in RAW_SUFFIXES, ext_b.lower() in RAW_SUFFIXES
    return folder_a == folder_b and stem_a.lower() == stem_b.lower() and raw_a != raw_b


def _target(
    action: str, image: ImageInfo, keep: ImageInfo, roots: Sequence[str], destination: str | None
) -> str | None:
    if action == "move" and destination is not None:
        root = _root_of(image.path, roots)
        below = os.path.relpath(image.path, root) if root else image.path.lstrip(os.sep)
        return os.path.join(destination, below)
    if action in ("hardlink", "symlink"):
        return keep.path
    return None


def _root_of(path: str, roots: Sequence[str]) -> str | None:
    inside = [r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)]
    return max(inside, key=len) if inside else None


def unchanged(image: ImageInfo, verify_content: bool) -> str | None:
    """Why ``image``'s file is no longer the one the catalogue knows, or None."""
    try:
        st = os.lstat(image.path)
    except FileNotFoundError:
        return "is gone"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "is now a symlink"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_size != image.size or st.st_mtime_ns != image.mtime_ns:
        return "changed since it was catalogued (run catalog index)"
    if verify_content and file_hash(image.path) != image.content_hash:
        return "has other content than catalogued (run catalog index)"
    return None


def check(step: Step, real_roots: Sequence[str], verify_content: bool, raw_pairs: bool = False) -> str | None:
    """Why ``step`` must not happen now, or None."""
    image, keep = step.image, step.keep
    if image.path == keep.path:
        return "is the file to keep"
    if not raw_pairs and _shot_pair(image.path, keep.path):
        return (
            f"is the other half of a RAW+JPEG pair with {keep.path} (one shot): kept "
            "(--raw-pairs treats them as duplicates)"
        )
    links = step.action in ("hardlink", "symlink")
    problem = unchanged(keep, False)
    if problem is not None:
        return f"the file to keep, {keep.path}, {problem}"
    problem = unchanged(image, verify_content or links)
    if problem is not None:
        return problem
    real = os.path.realpath(image.path)
    if real_roots and not any(real.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots):
        return f"leads out of the catalogued folders through a symlink (to {real})"
    if links and image.content_hash != keep.content_hash:
        return "is not byte-identical to the file to keep: a link would change the picture (trash or move it)"
    if os.path.samefile(image.path, keep.path):
        return "is the same file as the one to keep (a hard link)"
    if step.action == "hardlink" and os.stat(image.path).st_dev != os.stat(keep.path).st_dev:
        return "is on another file system than the file to keep: a hard link cannot cross"
    if step.action == "move" and step.target is not None and os.path.lexists(step.target):
        return f"the destination {step.target} exists"
    return None


def file_hash(path: str) -> str | None:
    """SHA-256 of the file's bytes (as the catalogue's content hash), or None when unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


# -- carrying out --------------------------------------------------------------------------------------


def apply(
    catalog: Catalog,
    plan: Plan,
    roots: Sequence[str],
    verify_content: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Carry out the plan's steps, each checked again, journaled first and marked done after. The caller
    holds the actions lock (``catalog.lock.actions_lock``) and has run :func:`recover`."""
    outcome = Outcome(skipped=list(plan.skipped))
    if not plan.steps:
        return outcome
    real_roots = [os.path.realpath(r) for r in roots]
    outcome.batch = catalog.new_batch()
    acted: set[str] = set()
    for n, step in enumerate(plan.steps, 1):
        if step.sidecar_of is not None and step.sidecar_of not in acted:
            outcome.skipped.append((step.image.path, "its image was not acted on"))
            continue
        reason = check(step, real_roots, verify_content, plan.raw_pairs)
        if reason is not None:
            outcome.skipped.append((step.image.path, reason))
            continue
        with catalog.shield():  # a Ctrl-C waits for the action in hand; kill -9 is left to recover()
            entry_id = catalog.journal_add(
                JournalEntry(
                    batch=outcome.batch,
                    created_at=now(),
                    action=step.action,
                    path=step.image.path,
                    keep=step.keep.path,
                    target=step.target,
                    content_hash=step.image.content_hash or "",
                    size=step.image.size,
                    mtime_ns=step.image.mtime_ns,
                    state="pending",
                )
            )
            try:
                target = _carry_out(step, entry_id)
            except OSError as exc:
                catalog.journal_state(entry_id, "rolled-back")
                outcome.skipped.append((step.image.path, f"{step.action} failed: {exc.strerror or exc}"))
                continue
            moved_to = target if step.action == "move" and _root_of(target or "", roots) else None
            catalog.action_done(
                entry_id, step.image.path, moved_to, target, restat=_restat(step.action, step.image.path)
            )
        outcome.done.append((step, target, entry_id))
        acted.add(step.image.path)
        if progress is not None:
            progress(n, len(plan.steps))
    return outcome


def _restat(action: str, path: str) -> tuple[int, int] | None:
    """A hard link keeps its catalogue row (same bytes at the same path): its new size and time."""
    if action != "hardlink":
        return None
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _temp_beside(path: str, entry_id: int) -> str:
    return os.path.join(os.path.dirname(path), f"{TEMP}{entry_id}")


def _carry_out(step: Step, entry_id: int) -> str | None:
    """Do one step to the file; returns where it went (trash file, moved-to path, link target)."""
    path = step.image.path
    if step.action == "trash":
        trash.send(path)
        found = [t for t in trash.locate(path) if os.path.exists(t.file)]
        return found[0].file if found else None
    if step.action == "delete":
        os.unlink(path)
        return None
    if step.action == "move":
        assert step.target is not None
        _move(path, step.target, entry_id)
        return step.target
    # hardlink / symlink: made beside the copy under a hidden name, then renamed over it (atomic)
    temp = _temp_beside(path, entry_id)
    if step.action == "hardlink":
        os.link(step.keep.path, temp)
    else:
        os.symlink(step.keep.path, temp)
    os.replace(temp, path)
    return step.keep.path


def _move(source: str, target: str, entry_id: int) -> None:
    """Move a file without ever overwriting one: a rename on one file system; across file systems a copy
    under a hidden name, renamed into place, then the source removed."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        raise FileExistsError(0, "the destination exists", target)
    try:
        os.link(source, target)  # fails rather than overwrite; then drop the old name
        os.unlink(source)
        return
    except OSError as exc:
        if os.path.lexists(target) and os.path.samefile(source, target):
            os.unlink(source)
            return
        if exc.errno not in (18, 1, 95, 38):  # EXDEV, EPERM, EOPNOTSUPP, ENOSYS: no hard links here
            raise
    temp = _temp_beside(target, entry_id)
    shutil.copy2(source, temp)
    with open(temp, "rb") as f:
        os.fsync(f.fileno())
    os.rename(temp, target)
    os.unlink(source)


# -- recovery after a crash ---------------------------------------------------------------------------


def recover(catalog: Catalog) -> list[str]:
    """Settle the actions a killed process left ``pending`` or ``undoing``, from what is on disk.
    Returns one line per settled entry (for the user), and re-catalogues nothing: files put back are
    listed by :func:`restored_paths` for the caller to index."""
    notes = []
    for entry in catalog.journal(states=("pending", "undoing")):
        if entry.state == "pending":
            happened, target = _pending_happened(entry)
            if happened:
                moved_to = target if entry.action == "move" else None
                restat = _restat(entry.action, entry.path)
                catalog.action_done(entry.id, entry.path, moved_to, target, restat=restat)
                notes.append(f"finished {entry.action} of {entry.path} (interrupted)")
            else:
                catalog.journal_state(entry.id, "rolled-back")
                notes.append(f"rolled back {entry.action} of {entry.path} (interrupted before it happened)")
        else:
            if _undo_happened(entry):
                catalog.journal_state(entry.id, "undone")
                notes.append(f"finished undoing {entry.action} of {entry.path} (interrupted)")
            else:
                catalog.journal_state(entry.id, "done")
                notes.append(f"undo of {entry.action} of {entry.path} had not begun (interrupted)")
    return notes


def _is_original(entry: JournalEntry) -> bool:
    """The journaled file is at its path, as it was (size and modified time)."""
    try:
        st = os.lstat(entry.path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns


def _clear_temp(path: str, entry_id: int) -> None:
    temp = _temp_beside(path, entry_id)
    if os.path.lexists(temp):
        os.unlink(temp)


def _is_link_to_keep(entry: JournalEntry) -> bool:
    try:
        if entry.action == "symlink":
            return os.path.islink(entry.path) and os.readlink(entry.path) == entry.keep
        return not os.path.islink(entry.path) and os.path.samefile(entry.path, entry.keep)
    except OSError:
        return False


def _pending_happened(entry: JournalEntry) -> tuple[bool, str | None]:
    """Whether a ``pending`` action reached the disk, and its target."""
    if entry.action == "trash":
        trashed = trash.locate(entry.path)
        if _is_original(entry):
            for t in trashed:  # an info file written just before the kill, its file never moved
                if not os.path.exists(t.file):
                    trash.forget(t)
            return False, None
        found = [t for t in trashed if os.path.exists(t.file) and os.path.getsize(t.file) == entry.size]
        return True, found[0].file if found else None
    if entry.action == "delete":
        return not _is_original(entry), None
    if entry.action == "move":
        assert entry.target is not None
        _clear_temp(entry.target, entry.id)
        if _is_original(entry):
            if os.path.lexists(entry.target) and file_hash(entry.target) == entry.content_hash:
                os.unlink(entry.path)  # linked or copied into place, the source not yet removed
                return True, entry.target
            return False, None
        return True, entry.target
    _clear_temp(entry.path, entry.id)
    return _is_link_to_keep(entry), entry.keep


def _undo_happened(entry: JournalEntry) -> bool:
    """Whether an ``undoing`` entry's file is back (finishing a move back that copied but did not yet
    remove the moved file)."""
    _clear_temp(entry.path, entry.id)
    if entry.action == "move" and entry.target:
        _clear_temp(entry.target, entry.id)
    if not os.path.lexists(entry.path) or os.path.islink(entry.path):
        return False
    if entry.action in ("hardlink", "symlink"):
        return not _is_link_to_keep(entry) and file_hash(entry.path) == entry.content_hash
    if file_hash(entry.path) != entry.content_hash:
        return False
    if entry.action == "move" and entry.target and os.path.lexists(entry.target):
        os.unlink(entry.target)
    return True


# -- undo -----------------------------------------------------------------------------------------------


@dataclass
class UndoOutcome:
    restored: list[JournalEntry] = field(default_factory=list)
    failed: list[tuple[JournalEntry, str]] = field(default_factory=list)


def entries_to_undo(catalog: Catalog, which: str, ids: Sequence[int] = ()) -> list[JournalEntry]:
    """The done entries that ``which`` (``last``: the last batch with any; ``all``; ``ids``) names,
    newest first."""
    done = catalog.journal(states=("done",))
    if which == "ids":
        wanted = set(ids)
        known = {e.id for e in catalog.journal(ids=list(wanted))}
        unknown = sorted(wanted - known)
        if unknown:
            raise UsageError(f"no journal entry {', '.join(map(str, unknown))} (see `catalog journal`)")
        done = [e for e in done if e.id in wanted]
    elif which == "last" and done:
        last = max(e.batch for e in done)
        done = [e for e in done if e.batch == last]
    return sorted(done, key=lambda e: e.id, reverse=True)


def undo(catalog: Catalog, entries: Sequence[JournalEntry]) -> UndoOutcome:
    """Put each entry's file back, byte for byte (the caller holds the actions lock and has run
    :func:`recover`). A file that cannot be put back is reported, never forced."""
    outcome = UndoOutcome()
    for entry in entries:
        if entry.action not in UNDOABLE:
            outcome.failed.append((entry, "a deleted file cannot be restored"))
            continue
        reason = _undo_problem(entry)
        if reason is not None:
            outcome.failed.append((entry, reason))
            continue
        with catalog.shield():
            catalog.journal_state(entry.id, "undoing")
            try:
                _undo_one(entry)
            except OSError as exc:
                catalog.journal_state(entry.id, "done")
                outcome.failed.append((entry, f"cannot put it back: {exc.strerror or exc}"))
                continue
            if entry.action == "move" and entry.target:
                catalog.action_done(entry.id, entry.target, entry.path, None, state="undone")
            else:
                catalog.journal_state(entry.id, "undone")
        outcome.restored.append(entry)
    return outcome


def _undo_problem(entry: JournalEntry) -> str | None:
    if entry.action in ("trash", "move") and os.path.lexists(entry.path):
        return f"{entry.path} exists again: not overwritten"
    if entry.action == "trash":
        if not [t for t in trash.locate(entry.path) if _trashed_is(entry, t.file)]:
            return "no longer in the trash"
    elif entry.action == "move":
        if not entry.target or file_hash(entry.target) != entry.content_hash:
            return f"{entry.target} is gone or changed"
    else:
        if not _is_link_to_keep(entry):
            return f"{entry.path} is no longer the link catalog made"
        if file_hash(entry.keep) != entry.content_hash:
            return f"the kept file {entry.keep} is gone or changed: the copy's bytes cannot be rebuilt"
    return None


def _trashed_is(entry: JournalEntry, file: str) -> bool:
    try:
        return os.path.getsize(file) == entry.size and file_hash(file) == entry.content_hash
    except OSError:
        return False


def _undo_one(entry: JournalEntry) -> None:
    if entry.action == "trash":
        found = [t for t in trash.locate(entry.path) if _trashed_is(entry, t.file)]
        trash.restore(found[0], entry.path)
    elif entry.action == "move":
        assert entry.target is not None
        _move(entry.target, entry.path, entry.id)
    else:  # a link: the kept file's bytes (identical, checked) under a hidden name, renamed over it
        temp = _temp_beside(entry.path, entry.id)
        shutil.copyfile(entry.keep, temp)
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, entry.path)
    os.utime(entry.path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
