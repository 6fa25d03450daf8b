"""Kept answers brought up to date: after a change, a ``dupes`` or ``copies`` answer is made from the
last one kept and the images changed since, instead of from every image again.

A million photos' answer takes about ten seconds to make: a million rows read, grouped, 262 MB of
JSON written. A change of a few thousand images touches a few of its groups or lines:

- ``dupes``: reference groups never reach across the components of the graph of pairs (two images in
  one group are joined by pairs), so only the components changed images were in, or reach now, can
  have other groups. They are grouped again with every pair among their images
  (:func:`catalog.groups.regroup`);
- ``copies`` (reference grouping: the images that match each one directly): only the changed images
  and those within the threshold of a changed image's code, before or now, have other counts. They
  are counted again from the codes the catalogue holds now.

When such an answer (reference grouping of a hash method's stored pairs; no marks, folders or
verification; JSON or text, written as UTF-8) is kept, its **layout** is kept beside it: every image,
with its upright code (and for ``dupes`` the component of its class); each group's or line's bytes in
the answer and what orders it (size and reference path; copies); and where the catalogue's log of
changed images stood (``Catalog.change_mark``, read before the answer was made). Asked again after a
change, the command reads the images changed since (``Catalog.changed_since``), finds the codes they
reach through the stored pairs' index (``catalog.pairs.Settled``), makes the groups or lines that
change, and writes the new answer: the other groups' and lines' bytes copied from the last answer by
the kernel, the new ones where the whole answer puts them (largest group first, then by reference
path; most copies first, then by path). It is kept as the answer of the new stamp, with its layout,
and given.

Anything this cannot follow makes the answer whole again: marks, codes whose pairs are not stored yet,
a log that no longer reaches back (the writers keep its last ``catalog.indexer.KEEP_CHANGES`` rows; a
catalogue restored from a backup), more than ``MAX_CHANGES`` rows of it, an answer without groups.
Tests hold the answer brought up to date to the answer made, byte for byte, after every kind of change.

The layout (``<question>.plan.npz``) and its answer (``<question>.base``, a hard link to the kept answer,
so that pruning other stamps' answers leaves it) live in the kept answers' folder, which
:mod:`catalog.answers` owns; both are written under its lock, atomically.
"""

from __future__ import annotations

import bisect
import codecs
import errno
import json
import logging
import mmap
import os
import re
import uuid
import zipfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import numpy as np

from catalog.text import groups_summary, json_escaped

if TYPE_CHECKING:
    from catalog.answers import Answers, Question
    from catalog.groups import CopyCounts, Grouping, GroupTable, Pairs
    from catalog.store import Catalog

log = logging.getLogger("catalog.patch")

#: The layout file's format.
VERSION = 1

#: Rows of the log of changed images past which the answer is made whole instead: a bound on what one
#: answer reads of the log (where bringing up to date stops paying was not measured).
MAX_CHANGES = 100_000

#: Lines before the first item of a JSON answer (``{``, its fields, the list's name) and after the last
#: (``]``, ``}``), by command; the indent of each item's line.
_JSON_HEAD = {"dupes": 7, "copies": 4}
_JSON_TAIL, _JSON_INDENT = 2, 4


@dataclass
class Plan:
    """A kept answer's layout (see the module's text). ``arrays``:

    - ``dupes``: ``ids``, ``codes``, ``labels`` (every image compared, sorted by id: its upright code,
      its component); ``group_label``, ``group_size``, ``group_start``, ``group_end`` (each group in
      the answer's order: its component, size and bytes); ``paths``: each group's reference;
    - ``copies``: ``ids``, ``codes``, ``coded`` (every image listed, sorted by id: its upright code,
      whether it has one); ``line_id``, ``line_count``, ``line_start``, ``line_end`` (each image in
      the answer's order: its id, copies and bytes).
    """

    command: str
    mark: tuple[int, int]
    code: str
    fmt: str
    method: str
    threshold: float
    head: int  # the answer's bytes before the first item
    tail: int  # and from here on, after the last (JSON) or the summary line (dupes' text)
    arrays: dict[str, np.ndarray]
    paths: list[str]
    base_inode: int = 0
    base_size: int = 0

    def save(self, path: Path) -> None:
        facts = {
            "version": VERSION,
            "command": self.command,
            "mark": list(self.mark),
            "code": self.code,
            "fmt": self.fmt,
            "method": self.method,
            "threshold": self.threshold,
            "base": [self.base_inode, self.base_size],
            "head": self.head,
            "tail": self.tail,
        }
        paths = [p.encode("utf-8", "surrogatepass") for p in self.paths]
        ends = np.cumsum([len(p) for p in paths], dtype=np.int64)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "wb") as file:
            np.savez(
                file,
                facts=np.frombuffer(json.dumps(facts).encode(), dtype=np.uint8),
                path_bytes=np.frombuffer(b"".join(paths), dtype=np.uint8),
                path_ends=ends,
                **self.arrays,  # type: ignore[arg-type]
            )
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Plan | None:
        try:
            with np.load(path, allow_pickle=False) as saved:
                facts = json.loads(saved["facts"].tobytes())
                if facts.get("version") != VERSION:
                    return None
                blob = saved["path_bytes"].tobytes()
                ends = saved["path_ends"].tolist()
                starts = [0, *ends[:-1]][: len(ends)]
                paths = [
                    blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts, ends, strict=True)
                ]
                arrays = {k: saved[k] for k in saved.files if k not in ("facts", "path_bytes", "path_ends")}
                return cls(
                    command=str(facts["command"]),
                    mark=(int(facts["mark"][0]), int(facts["mark"][1])),
                    code=str(facts["code"]),
                    fmt=str(facts["fmt"]),
                    method=str(facts["method"]),
                    threshold=float(facts["threshold"]),
                    head=int(facts["head"]),
                    tail=int(facts["tail"]),
                    arrays=arrays,
                    paths=paths,
                    base_inode=int(facts["base"][0]),
                    base_size=int(facts["base"][1]),
                )
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, zipfile.BadZipFile):
            return None


def plan_path(answers: Answers, question: Question, out: TextIO) -> Path:
    return answers.question_path(question, out).with_suffix(".plan.npz")


def base_path(answers: Answers, question: Question, out: TextIO) -> Path:
    return answers.question_path(question, out).with_suffix(".base")


def keep_groups_layout(answers: Answers, question: Question, out: TextIO, found: Grouping, fmt: str) -> None:
    """Keep the layout of the ``dupes`` answer just kept for ``question`` (if it was kept, and
    ``found`` has a layout), so that the next ``dupes`` after a change brings it up to date."""
    layout = found.layout
    table = found.table
    if layout is None or not len(table):
        return
    sizes = np.diff(table.starts).astype(np.int64)
    references = table.member[table.starts[:-1]]
    arrays = {
        "ids": layout.image_ids,
        "codes": layout.codes,
        "labels": layout.labels,
        "group_label": layout.labels[np.searchsorted(layout.image_ids, table.images.id[references])],
        "group_size": sizes,
    }
    paths = [table.images.path[p] for p in references.tolist()]
    _keep_layout(answers, question, out, fmt, found.method, found.threshold, arrays, paths, sizes)


def keep_copies_layout(
    answers: Answers,
    question: Question,
    out: TextIO,
    method: str,
    threshold: float,
    counts: CopyCounts,
    fmt: str,
) -> None:
    """Keep the layout of the ``copies`` answer just kept for ``question`` (as
    :func:`keep_groups_layout`)."""
    if counts.layout is None or not len(counts.listed):
        return
    ids, codes, coded = counts.layout
    arrays = {
        "ids": ids,
        "codes": codes,
        "coded": coded,
        "line_id": counts.images.id[counts.listed],
        "line_count": counts.counts.astype(np.int64),
    }
    _keep_layout(answers, question, out, fmt, method, threshold, arrays, [], None)


def _keep_layout(
    answers: Answers,
    question: Question,
    out: TextIO,
    fmt: str,
    method: str,
    threshold: float,
    arrays: dict[str, np.ndarray],
    paths: list[str],
    sizes: np.ndarray | None,
) -> None:
    """Under the folder's lock: find where each item lies in the kept answer, link the answer as the
    question's base and write its plan."""
    from catalog.answers import code_stamp
    from catalog.lock import try_lock

    if answers.mark is None or fmt not in ("json", "text") or not _utf8(out):
        return
    with suppress(OSError, ValueError), try_lock(answers.folder / "lock") as locked:
        if not locked:
            return
        kept = answers.path(question, out)
        with open(kept, "rb") as file:
            data = np.frombuffer(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)
        places = _places(data, question.command, fmt, sizes, len(arrays.get("line_id", ())))
        if places is None:
            return
        starts, ends, head, tail = places
        prefix = "group" if question.command == "dupes" else "line"
        arrays = {**arrays, f"{prefix}_start": starts, f"{prefix}_end": ends}
        plan = Plan(
            question.command,
            answers.mark,
            code_stamp(),
            fmt,
            method,
            float(threshold),
            head,
            tail,
            arrays,
            paths,
        )
        _keep_plan(answers, question, out, kept, plan)


def _keep_plan(answers: Answers, question: Question, out: TextIO, kept: Path, plan: Plan) -> None:
    """The answer ``kept`` linked as the question's base and its plan written (under the folder's lock)."""
    base = base_path(answers, question, out)
    plan_file = plan_path(answers, question, out)
    plan_file.unlink(missing_ok=True)  # never a plan beside another base
    linked = base.with_name(f"{base.name}.{uuid.uuid4().hex}.tmp")
    try:
        os.link(kept, linked)
        os.replace(linked, base)
        status = base.stat()
    except OSError:
        linked.unlink(missing_ok=True)
        return
    plan.base_inode, plan.base_size = status.st_ino, status.st_size
    plan.save(plan_file)


def _places(
    data: np.ndarray, command: str, fmt: str, sizes: np.ndarray | None, lines: int
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Where each item (a group of ``sizes``, or each of ``lines`` images) lies in an answer: (starts,
    ends, bytes before the first, where the end begins); None when the answer is not laid out as
    expected (a path with a line break in text)."""
    breaks = np.flatnonzero(data == 10)
    items = len(sizes) if sizes is not None else lines
    line_starts = np.concatenate([[0], breaks[:-1] + 1])
    if fmt == "json":
        head = _JSON_HEAD[command]
        if len(breaks) != head + items + _JSON_TAIL:
            return None
        at = np.arange(head, head + items)
        starts = line_starts[at] + _JSON_INDENT
        ends = breaks[at] - 1  # before the comma
        ends[-1] += 1  # the last has none
        if (data[starts] != ord("{")).any() or (data[ends - 1] != ord("}")).any():
            return None
        return starts, ends, int(starts[0]), int(ends[-1])
    if sizes is None:  # copies: a line per image, nothing else
        if len(breaks) != items:
            return None
        return line_starts, breaks + 1, 0, int(breaks[-1]) + 1
    headings = np.concatenate([[0], np.cumsum(sizes + 1)[:-1]])
    if len(breaks) != int(np.sum(sizes + 1)) + 1:
        return None
    starts = line_starts[headings + 1]
    ends = breaks[headings + sizes] + 1
    if (data[line_starts[headings]] != ord("g")).any():
        return None
    return starts, ends, 0, int(ends[-1])


def bring_up_to_date(catalog: Catalog, answers: Answers, question: Question, out: TextIO) -> bool:
    """Make ``question``'s answer from its last kept one and the images changed since, keep it (with
    its layout) and print it to ``out``: True; False (nothing printed) when it must be made whole."""
    from catalog.answers import code_stamp

    plan = Plan.load(plan_path(answers, question, out))
    if (
        not _utf8(out)
        or plan is None
        or plan.command != question.command
        or plan.code != code_stamp()
        or answers.mark is None
        or plan.fmt not in ("json", "text")
    ):
        return False
    target = answers.path(question, out)
    temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(base_path(answers, question, out), "rb") as base:
            status = os.fstat(base.fileno())
            if (status.st_ino, status.st_size) != (plan.base_inode, plan.base_size):
                return False
            made = _update(catalog, plan, base, out)
            if made is None:
                return False
            pieces, new_plan = made
            with open(temporary, "wb") as file:
                _write(file, base, pieces)
        new_plan.mark = answers.mark
        answers.keep_file(
            question,
            temporary,
            target,
            answers.question_path(question, out),
            then=lambda kept: _keep_plan(answers, question, out, kept, new_plan),
        )
    except OSError:
        return False
    except (ValueError, IndexError, KeyError) as error:  # a layout that does not fit: nothing printed yet
        log.warning("the kept answer could not be brought up to date (%s): it is made whole", error)
        return False
    finally:  # interrupted, refused or not kept: no half answer left behind
        temporary.unlink(missing_ok=True)
    # Not kept (another command kept an answer at that moment): made whole.
    return answers.give(question, out)


#: A piece of an answer: bytes made now, or a range of the last answer's bytes.
Piece = bytes | tuple[int, int]


def _update(catalog: Catalog, plan: Plan, base: BinaryIO, out: TextIO) -> tuple[list[Piece], Plan] | None:
    """The pieces of the answer brought up to date, and its layout; None when it must be made whole."""
    from catalog.methods import get_method
    from catalog.pairs import pairs_key, stored_threshold

    method = get_method(plan.method)
    limit = stored_threshold(method)
    if (
        method.kind != "bits"
        or limit is None
        or plan.threshold > limit
        or catalog.pairs_key(method.name) != pairs_key(method)
        or catalog.count_unpaired(method.name)
        or catalog.marks()
    ):
        return None
    changed = catalog.changed_since(plan.mark, MAX_CHANGES)
    if changed is None:
        return None
    near = _Near(catalog, plan.method, pairs_key(method), int(limit), int(plan.threshold))
    if plan.command == "dupes":
        return _update_groups(catalog, plan, np.asarray(changed, dtype=np.int64), near, out)
    return _update_copies(catalog, plan, np.asarray(changed, dtype=np.int64), near, base, out)


class _Near:
    """The present codes within the answer's threshold of given codes: the stored pairs' index
    (``catalog.pairs.Settled``), which holds every present code when none is unpaired."""

    def __init__(self, catalog: Catalog, method: str, key: str, limit: int, threshold: int):
        from catalog.pairs import Settled
        from catalog.search import CodeIndex

        settled = Settled.load(catalog, method, key, limit)
        self.parts = [
            (settled.codes, settled.index),
            (settled.tail_codes, CodeIndex(settled.tail_codes, limit)),
        ]
        self.threshold = threshold

    def pairs(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query numbers, codes) of every code within the threshold of each query (itself included if
        it has a row)."""
        found_q, found_c = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.uint64)]
        if len(queries):
            for codes, index in self.parts:
                for q, p, d in index.near(queries):
                    within = d <= self.threshold
                    found_q.append(q[within].astype(np.int64))
                    found_c.append(codes[p[within]])
        q, c = np.concatenate(found_q), np.concatenate(found_c)
        order = np.lexsort((c, q))  # each pair once, should a code have two rows
        q, c = q[order], c[order]
        first = np.ones(len(q), dtype=bool)
        first[1:] = (q[1:] != q[:-1]) | (c[1:] != c[:-1])
        return q[first], c[first]

    def codes(self, queries: np.ndarray) -> np.ndarray:
        """The codes within the threshold of any query, sorted, each once."""
        return np.unique(self.pairs(queries)[1])


def _update_groups(
    catalog: Catalog, plan: Plan, changed: np.ndarray, near: _Near, out: TextIO
) -> tuple[list[Piece], Plan] | None:
    """``dupes``: the components the changed images were in or reach now grouped again."""
    from catalog.groups import Layout, regroup
    from catalog.methods import get_method

    a = plan.arrays
    now_ids, now_codes = catalog.codes_of(plan.method, changed.tolist())
    was = _sorted_in(a["ids"], changed)  # compared before, changed since
    reached = _sorted_in(a["codes"], near.codes(now_codes))
    labels = np.unique(np.concatenate([a["labels"][was], a["labels"][reached]]))
    labels = labels[labels >= 0]
    old = _sorted_in(a["labels"], labels) | was | reached
    # The images of those components now: the unchanged ones with their codes, the changed ones with
    # theirs.
    stay = old & ~was
    ids = np.concatenate([a["ids"][stay], now_ids])
    pairs = _pairs(ids, np.concatenate([a["codes"][stay], now_codes]), int(plan.threshold))
    table = regroup(catalog, pairs, get_method(plan.method))
    layout = Layout.of(pairs)
    # The groups of the other components stay as they were; the new ones go where they sort.
    kept = np.flatnonzero(~_sorted_in(a["group_label"], labels))
    made = _rendered(table, plan.fmt, out)
    if not len(kept) + len(made):
        return None
    log.debug(
        "brought up to date: %d changed image(s), %d of %d group(s) kept, %d made",
        len(changed),
        len(kept),
        len(a["group_size"]),
        len(made),
    )
    new_sizes = np.diff(table.starts).astype(np.int64)
    new_paths = [table.images.path[p] for p in table.member[table.starts[:-1]].tolist()]
    inserts = _insertions(a["group_size"][kept], [plan.paths[g] for g in kept.tolist()], new_sizes, new_paths)
    from_made, which = _merge(kept, inserts)
    size = np.empty(len(from_made), dtype=np.int64)
    size[from_made], size[~from_made] = new_sizes, a["group_size"][kept]
    encoding, errors = _encoding(out)
    between: bytes | list[bytes] = _SEPARATOR
    if plan.fmt == "text":  # each group's heading, numbered where it now stands
        between = [
            f"group {n}: {k} images\n".encode(encoding, errors) for n, k in enumerate(size.tolist(), 1)
        ]
    pieces, starts, ends = _assemble(
        plan.head, made, from_made, which, a["group_start"], a["group_end"], between
    )
    if plan.fmt == "json":
        pieces.append((plan.tail, plan.base_size))
    else:
        images = len(a["ids"]) - int(was.sum()) + len(now_ids)
        summary = groups_summary(
            len(size), int(size.sum()), plan.method, plan.threshold, False, False, images
        )
        pieces.append(f"{summary}\n".encode(encoding, errors))
    # The layout of the answer made: the unchanged images' as they were, the regrouped ones' anew.
    first_label = int(max(a["labels"].max(initial=-1), a["group_label"].max(initial=-1))) + 1
    new_labels = np.where(layout.labels >= 0, layout.labels + first_label, -1)
    new_group_label = new_labels[
        np.searchsorted(layout.image_ids, table.images.id[table.member[table.starts[:-1]]])
    ]
    keep = ~old
    at = np.searchsorted(a["ids"][keep], layout.image_ids)
    group_label = np.empty(len(size), dtype=np.int64)
    group_label[~from_made] = a["group_label"][kept]
    group_label[from_made] = new_group_label
    arrays = {
        "ids": np.insert(a["ids"][keep], at, layout.image_ids),
        "codes": np.insert(a["codes"][keep], at, layout.codes),
        "labels": np.insert(a["labels"][keep], at, new_labels),
        "group_label": group_label,
        "group_size": size,
        "group_start": starts,
        "group_end": ends,
    }
    paths = [
        new_paths[g] if m else plan.paths[g] for g, m in zip(which.tolist(), from_made.tolist(), strict=True)
    ]
    return pieces, Plan(
        "dupes",
        plan.mark,
        plan.code,
        plan.fmt,
        plan.method,
        plan.threshold,
        plan.head,
        int(ends[-1]),
        arrays,
        paths,
    )


def _insertions(
    sizes: np.ndarray, paths: Sequence[str], new_sizes: np.ndarray, new_paths: list[str]
) -> np.ndarray:
    """Where each new item goes among the kept ones, both in the answer's order (largest group or most
    copies first, then by path): how many kept items come before it. ``paths`` may read each kept
    item's path only when the bisection asks for it."""
    larger = -sizes
    lows = np.searchsorted(larger, -new_sizes, "left").tolist()
    highs = np.searchsorted(larger, -new_sizes, "right").tolist()
    return np.asarray(
        [bisect.bisect_left(paths, p, lo, hi) for p, lo, hi in zip(new_paths, lows, highs, strict=True)],
        dtype=np.int64,
    )


def _merge(kept: np.ndarray, inserts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each item of the answer made, in order: (made now?, which), ``which`` being a kept item's number
    in the last answer or a made item's number."""
    count = len(kept) + len(inserts)
    from_made = np.zeros(count, dtype=bool)
    from_made[inserts + np.arange(len(inserts))] = True
    which = np.empty(count, dtype=np.int64)
    which[~from_made], which[from_made] = kept, np.arange(len(inserts))
    return from_made, which


def _assemble(
    head: int,
    made: list[bytes],
    from_made: np.ndarray,
    which: np.ndarray,
    old_starts: np.ndarray,
    old_ends: np.ndarray,
    between: bytes | list[bytes],
) -> tuple[list[Piece], np.ndarray, np.ndarray]:
    """The pieces of an answer from its head to its last item, and where each item now lies.
    ``between``: the bytes before every item but the first (JSON's separator; nothing in ``copies``'
    text), or the bytes before each item (``dupes``' text headings). Kept items side by side in the last
    answer, with the same bytes between them, are one range of its bytes."""
    count = len(from_made)
    lengths = np.empty(count, dtype=np.int64)
    lengths[from_made] = [len(m) for m in made]
    lengths[~from_made] = (old_ends - old_starts)[which[~from_made]]
    if isinstance(between, bytes):
        gaps = np.full(count, len(between), dtype=np.int64)
        gaps[:1] = 0
    else:
        gaps = np.asarray([len(b) for b in between], dtype=np.int64)
    starts = head + np.cumsum(gaps) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pieces: list[Piece] = [(0, head)]
    if isinstance(between, bytes):
        cut = np.ones(count, dtype=bool)
        cut[1:] = from_made[1:] | from_made[:-1] | (which[1:] != which[:-1] + 1)
        bounds = [*np.flatnonzero(cut).tolist(), count]
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            if begin:
                pieces.append(between)
            first = int(which[begin])
            pieces.append(
                made[first] if from_made[begin] else (int(old_starts[first]), int(old_ends[which[end - 1]]))
            )
    else:
        for n, (m, g) in enumerate(zip(from_made.tolist(), which.tolist(), strict=True)):
            pieces += [between[n], made[g] if m else (int(old_starts[g]), int(old_ends[g]))]
    return pieces, starts, starts + lengths


class _PrintedPaths(Sequence[str]):
    """The paths of a ``copies`` answer's kept lines (``kept``, in order), read from its bytes when
    asked for."""

    def __init__(self, view: mmap.mmap, fmt: str, kept: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        self.view, self.fmt, self.kept, self.starts, self.ends = view, fmt, kept, starts, ends

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, k):  # type: ignore[no-untyped-def, override]
        line = int(self.kept[k])
        return _line_path(self.view, self.fmt, int(self.starts[line]), int(self.ends[line]))


def _update_copies(
    catalog: Catalog, plan: Plan, changed: np.ndarray, near: _Near, base: BinaryIO, out: TextIO
) -> tuple[list[Piece], Plan] | None:
    """``copies``: the changed images, and those whose copies they were or are now, counted again; each
    line placed where the whole answer puts it (most copies first, then path)."""
    from catalog import listing

    a = plan.arrays
    ids, codes, coded = a["ids"], a["codes"], a["coded"]
    now_ids, now_codes = catalog.codes_of(plan.method, changed.tolist())
    was = _sorted_in(ids, changed)
    # Every code whose images' counts change: near a changed image's code, before or now.
    moved = near.codes(np.unique(np.concatenate([codes[was & coded], now_codes])))
    recount = (coded & _sorted_in(codes, moved) & ~was) | was
    # The images to list again: those, and the changed ones (gone ones drop out: not in the table).
    again = np.union1d(ids[recount], changed)
    table = catalog.image_table(again.tolist())
    # Copies of each: the images now within the threshold of its code, less itself.
    present = np.concatenate([codes[coded & ~was], now_codes])
    present.sort()
    position = table.positions(now_ids)
    new_code = np.zeros(len(table.id), dtype=np.uint64)
    has = np.zeros(len(table.id), dtype=bool)
    unchanged = _sorted_in(table.id, ids[recount & ~was])
    at = np.searchsorted(ids, table.id[unchanged])
    new_code[unchanged], has[unchanged] = codes[at], coded[at]
    new_code[position[position >= 0]], has[position[position >= 0]] = now_codes[position >= 0], True
    q, reached = near.pairs(new_code[has])
    per_code = np.searchsorted(present, reached, "right") - np.searchsorted(present, reached, "left")
    counts = np.zeros(len(table.id), dtype=np.int64)
    counts[np.flatnonzero(has)] = (
        np.bincount(q, weights=per_code, minlength=int(has.sum())).astype(np.int64) - 1
    )
    # Kept lines: those of images not listed again, in the answer's order (most copies first, then path).
    line_id, line_count = a["line_id"], a["line_count"]
    kept = np.flatnonzero(~_sorted_in(line_id, again))
    order = np.lexsort((np.arange(len(table.id)), -counts))  # the sub-table is in path order
    encoding, errors = _encoding(out)
    columns = (table, order, counts[order])
    made = (
        [json_escaped(text).encode(encoding, errors) for text in listing.copies_json(*columns)]
        if plan.fmt == "json"
        else [f"{line}\n".encode(encoding, errors) for line in listing.copies_lines(*columns)]
    )
    if not len(kept) + len(made):
        return None
    log.debug(
        "brought up to date: %d changed image(s), %d of %d line(s) kept, %d made",
        len(changed),
        len(kept),
        len(line_id),
        len(made),
    )
    view = mmap.mmap(base.fileno(), 0, access=mmap.ACCESS_READ)
    printed = _PrintedPaths(view, plan.fmt, kept, a["line_start"], a["line_end"])
    inserts = _insertions(line_count[kept], printed, counts[order], [table.path[p] for p in order.tolist()])
    from_made, which = _merge(kept, inserts)
    separator = _SEPARATOR if plan.fmt == "json" else b""
    pieces, starts, ends = _assemble(
        plan.head, made, from_made, which, a["line_start"], a["line_end"], separator
    )
    if plan.fmt == "json":
        pieces.append((plan.tail, plan.base_size))
    new_line_id, new_line_count = (
        np.empty(len(from_made), dtype=np.int64),
        np.empty(len(from_made), dtype=np.int64),
    )
    new_line_id[from_made], new_line_id[~from_made] = table.id[order], line_id[kept]
    new_line_count[from_made], new_line_count[~from_made] = counts[order], line_count[kept]
    # The images listed now, with their codes.
    keep = ~was & ~_sorted_in(ids, np.sort(table.id))
    by_id = np.argsort(table.id, kind="stable")
    at = np.searchsorted(ids[keep], table.id[by_id])
    arrays = {
        "ids": np.insert(ids[keep], at, table.id[by_id]),
        "codes": np.insert(codes[keep], at, new_code[by_id]),
        "coded": np.insert(coded[keep], at, has[by_id]),
        "line_id": new_line_id,
        "line_count": new_line_count,
        "line_start": starts,
        "line_end": ends,
    }
    tail = int(ends[-1])
    return pieces, Plan(
        "copies", plan.mark, plan.code, plan.fmt, plan.method, plan.threshold, plan.head, tail, arrays, []
    )


def _line_path(view: mmap.mmap, fmt: str, start: int, end: int) -> str:
    """The path a line of a ``copies`` answer names."""
    text = view[start:end].decode("utf-8", "surrogateescape")
    if fmt == "json":  # {"path": "...", "copies": ...}
        return str(_DECODER.raw_decode(text, len('{"path": '))[0])
    count = _COUNT.match(text)  # "     3  PATH\n"
    return text[count.end() if count else 0 : -1]


_DECODER = json.JSONDecoder()
_COUNT = re.compile(" *[0-9]+  ")


#: What separates two items in a JSON answer.
_SEPARATOR = b",\n    "


def _sorted_in(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_keys`` (sorted): a binary search each."""
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_keys, values).clip(max=len(sorted_keys) - 1)
    return sorted_keys[at] == values


def _pairs(ids: np.ndarray, codes: np.ndarray, threshold: int) -> Pairs:
    """Every pair among these images, as :class:`catalog.groups.Pairs` (classes of identical codes)."""
    from catalog.groups import Pairs
    from catalog.search import hamming_pairs

    order = np.argsort(ids, kind="stable")
    ids, codes = ids[order], codes[order]
    unique, inverse = np.unique(codes, return_inverse=True)
    left, right = hamming_pairs(unique, threshold)
    distances = np.bitwise_count(unique[left] ^ unique[right]).astype(np.float32)
    return Pairs(ids, inverse, len(unique), left, right, distances, 0.0, unique)


def _write(file: BinaryIO, base: BinaryIO, pieces: list[Piece]) -> None:
    """The pieces to ``file``: bytes written, ranges of ``base`` copied by the kernel
    (``copy_file_range``, or through memory where the file system cannot). A range, the bytes after it
    and the next range are copied as one where ``base`` holds those bytes between them: the unchanged
    groups that stay side by side."""
    size = os.fstat(base.fileno()).st_size
    view = mmap.mmap(base.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            if piece:
                merged.append(piece)
            continue
        last = merged[-1] if merged else None
        before = merged[-2] if len(merged) > 1 else None
        if isinstance(last, tuple) and last[1] == piece[0]:
            merged[-1] = (last[0], piece[1])
        elif (
            isinstance(last, bytes)
            and isinstance(before, tuple)
            and piece[0] - before[1] == len(last)
            and view is not None
            and view[before[1] : piece[0]] == last
        ):
            merged[-2:] = [(before[0], piece[1])]
        else:
            merged.append(piece)
    target = file.fileno()
    for piece in merged:
        if isinstance(piece, bytes):
            _write_all(target, piece)
            continue
        begin, end = piece
        while begin < end:
            try:
                copied = os.copy_file_range(base.fileno(), target, end - begin, begin)
            except OSError as exc:
                if (
                    exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)
                    or view is None
                ):
                    raise
                _write_all(target, view[begin:end])
                break
            if copied == 0:
                raise OSError(errno.EIO, "the last answer is shorter than its layout says")
            begin += copied


def _write_all(target: int, data: bytes) -> None:
    done = 0
    while done < len(data):
        done += os.write(target, data[done:])


def _rendered(table: GroupTable, fmt: str, out: TextIO) -> list[bytes]:
    """Each group of ``table`` as the answer prints it: its JSON object, or its text lines without the
    heading (whose number depends on where it goes)."""
    from catalog import listing

    encoding, errors = _encoding(out)
    columns = (table.images, table.member, table.starts, table.score)
    if fmt == "json":
        return [json_escaped(text).encode(encoding, errors) for text in listing.group_json(*columns)]
    sizes = np.diff(table.starts).tolist()
    lines = listing.group_lines(*columns)
    made = []
    for size in sizes:
        next(lines)  # the heading
        made.append("".join(f"{next(lines)}\n" for _ in range(size)).encode(encoding, errors))
    return made


def _utf8(out: TextIO) -> bool:
    """Whether ``out`` writes UTF-8 (a path read back from the last answer is then the path written)."""
    try:
        return codecs.lookup(_encoding(out)[0]).name == "utf-8"
    except LookupError:
        return False


def _encoding(out: TextIO) -> tuple[str, str]:
    return getattr(out, "encoding", None) or "utf-8", getattr(out, "errors", None) or "strict"
