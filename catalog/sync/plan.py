"""What one scope of an index run must read: new files, changed ones, and catalogued ones lacking a
method's signature or their photo facts; and, for each new file, the content hashes that make decoding
it unnecessary (a file moved here, a byte-identical twin already catalogued: a backup, a file put back).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from catalog.grouping.keep import copy_place
from catalog.ingest.scan import same_files
from catalog.ingest.worker import Task, ending
from catalog.store import Catalog, KnownFile, Scope

if TYPE_CHECKING:
    from catalog.ingest.scan import ScanResult


@dataclass
class Plan:
    tasks: list[Task]
    known: dict[str, KnownFile]
    #: Files of roots that are gone from the disk: candidates for a move into this scope (a root moved
    #: or renamed), shared by every scope of one run; claimed ones are popped.
    elsewhere: dict[str, KnownFile]
    missing: dict[str, KnownFile]  # vanished paths, still candidates for a move
    unchanged: int = 0
    #: Catalogued files read again for a method's signature or their photo facts only.
    backfilled: int = 0
    #: (path, why) of the files found that are another name of a file catalogued (hard links).
    linked: list[tuple[str, str]] = field(default_factory=list)


#: A new file is offered the catalogued twins of its size and ending only when at most this many
#: images have them (see :func:`plan_scope`).
MOST_TWINS = 8


def plan_scope(
    catalog: Catalog,
    scope: Scope,
    found: ScanResult,
    methods: tuple[str, ...],
    keep: frozenset[str] = frozenset(),
    elsewhere: dict[str, KnownFile] | None = None,
    written: frozenset[str] = frozenset(),
) -> Plan:
    """Classify the files ``found`` in ``scope`` against the catalogue. ``keep``: paths neither read nor
    dropped this time; ``elsewhere``: files of absent roots that may have moved here; ``written``:
    files changed whatever their size and time say (a watcher saw them written)."""
    known = catalog.known_files(scope)
    elsewhere = {} if elsewhere is None else elsewhere
    lacking = catalog.ids_lacking(scope, methods)
    unknowable = tuple(folder.rstrip("/") + "/" for folder in found.unreadable)
    doubles = hard_links(catalog, found, known)
    files = {path: stat for path, stat in found.files.items() if path not in doubles}
    missing = {
        path: info
        for path, info in known.items()
        if path not in files and path not in keep and not path.startswith(unknowable)
    }
    hashes_by_size: dict[int, set[str]] = {}
    for info in [*missing.values(), *elsewhere.values()]:
        if info.content_hash and info.error is None:
            hashes_by_size.setdefault(info.size, set()).add(info.content_hash)
    # A new file byte-identical to a catalogued image with the same ending (a backup copied beside its
    # original, a backup drive indexed beside the library) takes that image's row instead of being
    # decoded. Sizes many images share (uncompressed scans, RAW files) are left out: each file would
    # carry all their hashes to the workers.
    new_kinds = {(size, ending(path)) for path, (size, _) in files.items() if path not in known}
    catalogued = catalog.twins({size for size, _ in new_kinds}, methods, MOST_TWINS) if new_kinds else []
    twins: dict[tuple[int, str], set[str]] = {}
    for size, path, content in catalogued:
        # Not a file of this scope changed or gone since: its row is rewritten or dropped in this run
        # (a copy kept before its original was edited would find no twin, and be decoded after all).
        if path not in known or files.get(path) == (known[path].size, known[path].mtime_ns):
            twins.setdefault((size, ending(path)), set()).add(content)
    offered = {  # one set per kind, shared by its tasks
        (size, suffix): frozenset(hashes_by_size.get(size, set()) | twins.get((size, suffix), set()))
        for size, suffix in new_kinds
    }
    tasks = []
    unchanged = backfilled = 0
    for path, (size, mtime_ns) in files.items():
        old = known.get(path)
        if old is None:
            tasks.append(Task(path, size, mtime_ns, methods, offered[size, ending(path)]))
        elif (old.size, old.mtime_ns) != (size, mtime_ns) or path in written:
            reusable = old.content_hash if old.error is None and old.id not in lacking else None
            tasks.append(Task(path, size, mtime_ns, methods, frozenset([reusable] if reusable else [])))
        elif old.id in lacking:
            tasks.append(Task(path, size, mtime_ns, tuple(lacking[old.id])))
            backfilled += 1
        elif old.error is None and old.has_exif is None:  # catalogued before photo facts were read
            tasks.append(Task(path, size, mtime_ns, ()))
            backfilled += 1
        else:
            unchanged += 1
    linked = sorted((path, _LINKED.format(first)) for path, first in doubles.items())
    return Plan(tasks, known, elsewhere, missing, unchanged, backfilled, linked)


#: Why a hard link is skipped (``status`` lists it): :func:`other_names` reads the name catalogued back.
_LINKED = "the same file as {} (a hard link), catalogued once"
#: How every such reason ends.
HARD_LINK = _LINKED.split("{}")[1]


def other_names(catalog: Catalog, paths: Iterable[str]) -> list[str]:
    """The other names, skipped as hard links, of the files catalogued at ``paths`` or below them: when
    such a file goes (deleted, moved away), one of its other names is the file, to catalogue. A run over
    ``paths`` alone (a watcher's events, ``index PATH``) looks at them too."""
    given = {path.rstrip(os.sep) or os.sep for path in paths}
    head, tail = _LINKED.split("{}")
    found = []
    for path, problem in catalog.skipped(starting=head):
        if problem.endswith(tail):
            first = problem[len(head) : -len(tail)]
            while first not in given and first != (parent := os.path.dirname(first)):
                first = parent  # the name catalogued, then each folder above it
            if first in given:
                found.append(path)
    return found


def link_rank(path: str) -> tuple[bool, str]:
    """Which name of a hard-linked file is catalogued, the lowest first: not in a folder of copies nor
    named as a copy, then by path."""
    return copy_place(path) is not None, path


def hard_links(catalog: Catalog, found: ScanResult, known: dict[str, KnownFile]) -> dict[str, str]:
    """The files ``found`` that are another name of a file catalogued under a path kept (``same_files``),
    each to that path: a name catalogued outside this scope first (it stays), then one catalogued here,
    then by :func:`link_rank`. Only files with more than one name are looked at."""
    links = {path: key for path, key in found.links.items() if path in found.files}
    if not links:
        return {}
    outside = set()
    keys = set(links.values())
    sizes = {found.files[path][0] for path in links}
    for path in catalog.paths_of_sizes(sizes):
        if path in found.files or path in known:
            continue
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in keys:
            links[path] = key
            outside.add(path)
    return same_files(links, lambda path: (path not in outside, path not in known, *link_rank(path)))
