"""Walk roots and list image files with their size and mtime (no file is opened, except to sniff
files that have no ending).

Rules: hidden files and folders (dot-names) are skipped; symlinked folders are followed unless they lead
somewhere already walked (which also stops symlink loops); symlinked files are skipped, so a link never
shows up as a copy of its target (a link whose target is gone is reported: a picture may be lost); hard
links are noted (:func:`same_files`: a file is catalogued under one of its names). A folder that cannot
be read is reported, and the files the catalogue knows below it are kept (they may well still exist).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import UsageError
from catalog.ingest.formats import AVIF_SUFFIXES, HEIF_SUFFIXES, RAW_SUFFIXES, is_avif, is_heif

#: File endings looked at (lower case). Files without an ending are sniffed instead.
IMAGE_SUFFIXES = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".ico",
        ".tga",
        ".jp2",
        ".j2k",
        ".pcx",
        ".sgi",
        ".ras",
        ".psd",
        ".dds",
        ".icns",
        ".im",
        ".qoi",
    ]
    + sorted(HEIF_SUFFIXES | AVIF_SUFFIXES | RAW_SUFFIXES)
)
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


@dataclass
class ScanResult:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unreadable: list[str] = field(default_factory=list)  # folders whose content is unknown
    #: (device, inode) of each file with more than one name (hard links): see :func:`same_files`.
    links: dict[str, tuple[int, int]] = field(default_factory=dict)


def image_suffix(name: str) -> str | None:
    """The lower-case ending of a file worth looking at ("" when it has none), or None to skip it.
    Hidden and temporary files are skipped."""
    if name.startswith(".") or name.endswith("~"):
        return None
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix == "" or suffix in IMAGE_SUFFIXES else None


def looks_like_image(head: bytes) -> bool:
    """Sniff the first bytes of a file that has no ending."""
    return (
        head.startswith(_MAGIC)
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or is_heif(head)
        or is_avif(head)
    )


def scan(root: str, elsewhere: Sequence[str] = ()) -> ScanResult:
    """List the image files below ``root`` (an absolute folder or file path). ``elsewhere``: the other
    catalogued roots (real paths); a folder reached through a symbolic link that lies in one of them is
    not walked (its files are catalogued there: through the link, every one would be catalogued twice);
    the rest of what the link reaches is."""
    result = ScanResult()
    if os.path.isfile(root):
        _found(root, os.stat(root), result)
        return result
    visited: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited:
            if folder != root:
                result.problems.append((folder, "skipped: symlink to a folder already walked (loop?)"))
            continue
        visited.add(real)
        into = [r for r in elsewhere if real == r or real.startswith(r.rstrip(os.sep) + os.sep)]
        if into:  # reached through a symbolic link: through it, the other root's files again
            reason = f"skipped: the catalogued folder {into[0]}, reached through a symbolic link"
            result.problems.append((folder, reason + " (catalogued there)"))
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            result.problems.append((folder, f"cannot read folder: {exc.strerror or exc}"))
            result.unreadable.append(folder)
            continue
        for entry in entries:
            _visit(entry, stack, result)
    return result


def _visit(entry: os.DirEntry[str], stack: list[str], result: ScanResult) -> None:
    if entry.name.startswith("."):
        return
    try:
        if entry.is_dir():  # follows a symlink; loops are caught by the visited set in scan()
            stack.append(entry.path)
            return
        suffix = image_suffix(entry.name)
        if suffix is None:
            return
        if entry.is_symlink():
            if suffix and not os.path.exists(entry.path):
                result.problems.append((entry.path, "a symbolic link to nothing: its target is gone"))
            return
        if not entry.is_file():
            return
        if suffix == "" and not _sniff(entry.path):
            return
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        result.problems.append((entry.path, f"cannot stat: {exc.strerror or exc}"))
        return
    _found(entry.path, st, result)


def _found(path: str, st: os.stat_result, result: ScanResult) -> None:
    result.files[path] = (st.st_size, st.st_mtime_ns)
    if st.st_nlink > 1 and st.st_ino:
        result.links[path] = (st.st_dev, st.st_ino)


def same_files(links: Mapping[str, tuple[int, int]], rank: Callable[[str], Any]) -> dict[str, str]:
    """The hard links among ``links`` (path -> (device, inode)): each path that is the same file as
    another one, to the one of them that is catalogued (the lowest ``rank``). A file is catalogued
    once, under one of its names, as ``jdupes`` and czkawka count it: its other names are no copies
    (they free no space), and ``resolve --action hardlink`` leaves no group behind."""
    by_file: dict[tuple[int, int], list[str]] = {}
    for path, key in links.items():
        by_file.setdefault(key, []).append(path)
    doubles: dict[str, str] = {}
    for paths in by_file.values():
        if len(paths) > 1:
            first = min(paths, key=rank)
            doubles.update({path: first for path in paths if path != first})
    return doubles


def _sniff(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return looks_like_image(handle.read(16))
    except OSError:
        return False


def other_roots(root: str, roots: Iterable[str]) -> list[str]:
    """The real paths of ``roots`` a scan of ``root`` (a root, or a path in one) must not enter through a
    symbolic link: all but those that hold ``root`` or lie inside it (walked with it)."""
    real = os.path.realpath(root)

    def related(other: str) -> bool:
        return (
            other == real
            or other.startswith(real.rstrip(os.sep) + os.sep)
            or real.startswith(other.rstrip(os.sep) + os.sep)
        )

    return [r for r in (os.path.realpath(o) for o in roots) if not related(r)]


def normalise_roots(paths: Iterable[str]) -> list[str]:
    """Absolute roots, checked to exist, without roots nested in other given roots."""
    roots = []
    for path in paths:
        absolute = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(absolute):
            raise UsageError(f"no such file or folder: {path}")
        roots.append(absolute)
    roots = sorted(set(roots))
    return [r for r in roots if not any(r != o and r.startswith(o.rstrip("/") + "/") for o in roots)]
