"""Walk roots and list image files with their size and mtime (no file is opened, except to sniff
files that have no ending).

Rules: hidden files and folders (dot-names) are skipped; symlinked folders are followed unless they lead
somewhere already walked (which also stops symlink loops); symlinked files are skipped, so a link never
shows up as a copy of its target. A folder that cannot be read is reported, and the files the catalogue
knows below it are kept (they may well still exist).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from catalog.errors import UsageError
from catalog.imaging import IMAGE_SUFFIXES, looks_like_image


@dataclass
class ScanResult:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unreadable: list[str] = field(default_factory=list)  # folders whose content is unknown


def is_candidate(name: str) -> bool:
    """Should a file of this name be looked at? (Hidden and temporary files are not.)"""
    if name.startswith(".") or name.endswith("~"):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_SUFFIXES or suffix == ""


def scan(root: str) -> ScanResult:
    """List the image files below ``root`` (an absolute folder or file path)."""
    result = ScanResult()
    if os.path.isfile(root):
        st = os.stat(root)
        result.files[root] = (st.st_size, st.st_mtime_ns)
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
        if entry.is_dir(follow_symlinks=True):
            stack.append(entry.path)
            return
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            return
        if not is_candidate(entry.name):
            return
        if os.path.splitext(entry.name)[1] == "" and not _sniff(entry.path):
            return
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        result.problems.append((entry.path, f"cannot stat: {exc.strerror or exc}"))
        return
    result.files[entry.path] = (st.st_size, st.st_mtime_ns)


def _sniff(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return looks_like_image(handle.read(16))
    except OSError:
        return False


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
