"""Kept answers brought up to date: after a change, a ``dupes`` answer is made from the last one kept
and the images changed since, instead of from every image again.

A million photos' answer takes about ten seconds to make: a million rows read, grouped, 262 MB of
JSON written. A change of a few thousand images touches a few of its groups. Reference groups never
reach across the components of the graph of pairs (two images in one group are joined by pairs), so
after a change only the components that changed images touch can have other groups:

- when a ``dupes`` answer (reference grouping of a hash method's stored pairs, no marks, folders or
  verification; JSON or text) is kept, its **layout** is kept beside it: every image compared, with
  its upright code and the component of its class; each group's component, size, reference path and
  bytes in the answer; and where the catalogue's log of changed images stood
  (``Catalog.change_mark``, read before the answer was made);
- asked again after a change, ``dupes`` reads the images changed since (``Catalog.changed_since``),
  finds the components they were in and those their codes now reach (the stored pairs' index,
  ``catalog.pairs.Settled``), and groups the images of those components again, with every pair among
  them (:func:`catalog.groups.regroup`). The other groups' bytes are copied from the last answer; the
  new ones are placed where the whole answer would put them (largest first, then by reference path).
  The result is kept as the answer of the new stamp, with its layout, and given.

Anything this cannot follow makes the answer whole again: marks, codes without stored pairs yet, a log
that no longer reaches back (more than ``catalog.indexer.KEEP_CHANGES`` rows, or a catalogue restored
from a backup), more than ``MAX_CHANGES`` rows of it, an answer without groups. Tests hold the answer
brought up to date to the answer made, byte for byte, after every kind of change.

The layout (``<question>.plan.npz``) and its answer (``<question>.base``, a hard link to the kept answer,
so that pruning other stamps' answers leaves it) live in the kept answers' folder, which
:mod:`catalog.answers` owns; both are written under its lock, atomically.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

if TYPE_CHECKING:
    from catalog.answers import Answers, Question
    from catalog.groups import Grouping, GroupTable
    from catalog.store import Catalog

log = logging.getLogger("catalog.patch")

#: The layout file's format.
VERSION = 1

#: Rows of the log of changed images past which the answer is made whole instead (a change of a tenth
#: of a million-image library costs about as much either way).
MAX_CHANGES = 100_000

#: Lines before the first group in a ``dupes`` JSON answer (``{``, five fields, ``"groups": [``) and
#: after the last (``]``, ``}``); the indent of each group's line.
_JSON_HEAD, _JSON_TAIL, _JSON_INDENT = 7, 2, 4


@dataclass
class Plan:
    """A kept answer's layout (see the module's text)."""

    mark: tuple[int, int]
    code: str
    fmt: str
    method: str
    threshold: float
    base_inode: int
    base_size: int
    ids: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    by_code: np.ndarray  # positions of ``ids`` in code order
    group_label: np.ndarray
    group_size: np.ndarray
    group_start: np.ndarray  # the bytes of each group in the answer
    group_end: np.ndarray
    group_path: list[str]  # each group's reference
    head: int  # the answer's bytes before the first group
    tail: int  # and from here on, after the last (JSON) or the summary line (text)

    def save(self, path: Path) -> None:
        facts = {
            "version": VERSION,
            "mark": list(self.mark),
            "code": self.code,
            "fmt": self.fmt,
            "method": self.method,
            "threshold": self.threshold,
            "base": [self.base_inode, self.base_size],
            "head": self.head,
            "tail": self.tail,
        }
        paths = [p.encode("utf-8", "surrogatepass") for p in self.group_path]
        ends = np.cumsum([len(p) for p in paths], dtype=np.int64)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "wb") as file:
            np.savez(
                file,
                facts=np.frombuffer(json.dumps(facts).encode(), dtype=np.uint8),
                ids=self.ids,
                codes=self.codes,
                labels=self.labels,
                by_code=self.by_code,
                group_label=self.group_label,
                group_size=self.group_size,
                group_start=self.group_start,
                group_end=self.group_end,
                path_bytes=np.frombuffer(b"".join(paths), dtype=np.uint8),
                path_ends=ends,
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
                starts = [0, *ends[:-1]]
                paths = [
                    blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts, ends, strict=True)
                ]
                return cls(
                    mark=(int(facts["mark"][0]), int(facts["mark"][1])),
                    code=str(facts["code"]),
                    fmt=str(facts["fmt"]),
                    method=str(facts["method"]),
                    threshold=float(facts["threshold"]),
                    base_inode=int(facts["base"][0]),
                    base_size=int(facts["base"][1]),
                    ids=saved["ids"],
                    codes=saved["codes"],
                    labels=saved["labels"],
                    by_code=saved["by_code"],
                    group_label=saved["group_label"],
                    group_size=saved["group_size"],
                    group_start=saved["group_start"],
                    group_end=saved["group_end"],
                    group_path=paths,
                    head=int(facts["head"]),
                    tail=int(facts["tail"]),
                )
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None


def plan_path(answers: Answers, question: Question, out: TextIO) -> Path:
    return answers.question_path(question, out).with_suffix(".plan.npz")


def base_path(answers: Answers, question: Question, out: TextIO) -> Path:
    return answers.question_path(question, out).with_suffix(".base")


def keep_layout(answers: Answers, question: Question, out: TextIO, found: Grouping, fmt: str) -> None:
    """Keep the layout of the answer just kept for ``question`` (if it was kept, and ``found`` has a
    layout), so that the next ``dupes`` after a change brings it up to date."""
    from catalog.answers import code_stamp
    from catalog.lock import try_lock

    layout = found.layout
    if layout is None or answers.mark is None or fmt not in ("json", "text") or not len(found.table):
        return
    with suppress(OSError), try_lock(answers.folder / "lock") as locked:
        if not locked:
            return
        kept = answers.path(question, out)
        data = np.fromfile(kept, dtype=np.uint8)
        table = found.table
        sizes = np.diff(table.starts)
        places = _places(data, sizes, fmt)
        if places is None:
            return
        starts, ends, head, tail = places
        references = table.images.id[table.member[table.starts[:-1]]]
        at = np.searchsorted(layout.image_ids, references)
        plan = Plan(
            mark=answers.mark,
            code=code_stamp(),
            fmt=fmt,
            method=found.method,
            threshold=float(found.threshold),
            base_inode=0,
            base_size=0,
            ids=layout.image_ids,
            codes=layout.codes,
            labels=layout.labels,
            by_code=np.argsort(layout.codes, kind="stable"),
            group_label=layout.labels[at],
            group_size=sizes.astype(np.int64),
            group_start=starts,
            group_end=ends,
            group_path=[table.images.path[p] for p in table.member[table.starts[:-1]].tolist()],
            head=head,
            tail=tail,
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


def _places(data: np.ndarray, sizes: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Where each group's bytes lie in an answer: (starts, ends, bytes before the first, where the
    end begins); None when the answer is not laid out as expected (a path with a line break in text)."""
    breaks = np.flatnonzero(data == 10)
    groups = len(sizes)
    line_starts = np.concatenate([[0], breaks[:-1] + 1])
    if fmt == "json":
        if len(breaks) != _JSON_HEAD + groups + _JSON_TAIL:
            return None
        lines = np.arange(_JSON_HEAD, _JSON_HEAD + groups)
        starts = line_starts[lines] + _JSON_INDENT
        ends = breaks[lines] - 1  # before the comma
        ends[-1] += 1  # the last has none
        if (data[starts] != ord("{")).any() or (data[ends - 1] != ord("}")).any():
            return None
        return starts, ends, int(starts[0]), int(ends[-1])
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
    if plan is None or plan.code != code_stamp() or answers.mark is None or plan.fmt not in ("json", "text"):
        return False
    try:
        base = open(base_path(answers, question, out), "rb")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with base:
        status = os.fstat(base.fileno())
        if (status.st_ino, status.st_size) != (plan.base_inode, plan.base_size):
            return False
        made = _update(catalog, plan, base, out)
    if made is None:
        return False
    segments, new_plan = made
    target = answers.path(question, out)
    try:
        answers.folder.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "wb") as file:
            file.writelines(segments)
    except OSError:
        return False
    del segments
    new_plan.mark = answers.mark
    answers.keep_file(
        question,
        temporary,
        target,
        answers.question_path(question, out),
        then=lambda kept: _keep_plan(answers, question, out, kept, new_plan),
    )
    # Not kept (another command kept an answer at that moment, or the disk refused): made whole.
    return answers.give(question, out)


def _update(
    catalog: Catalog, plan: Plan, base: object, out: TextIO
) -> tuple[list[bytes | memoryview], Plan] | None:
    """The bytes of the answer brought up to date, and its layout; None when it must be made whole."""
    from catalog.groups import Layout, Pairs, regroup
    from catalog.methods import get_method
    from catalog.pairs import Settled, pairs_key, stored_threshold
    from catalog.search import hamming_pairs

    method = get_method(plan.method)
    limit = stored_threshold(method)
    key = pairs_key(method)
    if (
        method.kind != "bits"
        or limit is None
        or plan.threshold > limit
        or catalog.pairs_key(method.name) != key
        or catalog.count_unpaired(method.name)
        or catalog.marks()
    ):
        return None
    changed = catalog.changed_since(plan.mark, MAX_CHANGES)
    if changed is None:
        return None
    threshold = int(plan.threshold)
    changed_ids = np.asarray(changed, dtype=np.int64)
    now_ids, now_codes = catalog.codes_of(method.name, changed)
    # The components the changed images were in...
    at = np.searchsorted(plan.ids, changed_ids).clip(max=max(len(plan.ids) - 1, 0))
    was = plan.ids[at] == changed_ids if len(plan.ids) else np.zeros(len(changed_ids), dtype=bool)
    touched = [plan.labels[at[was]]]
    alone: list[np.ndarray] = []
    # ... and those their codes reach now (every present code has its stored row: none is unpaired).
    if len(now_codes):
        settled = Settled.load(catalog, method.name, key, int(limit))
        found: list[np.ndarray] = []
        for codes, index in ((settled.codes, settled.index), (settled.tail_codes, None)):
            if index is None:
                from catalog.search import CodeIndex

                index = CodeIndex(codes, int(limit))
            for _, p, d in index.near(now_codes):
                found.append(codes[p[d <= threshold]])
        near = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)
        sorted_codes = plan.codes[plan.by_code]
        low = np.searchsorted(sorted_codes, near, "left")
        high = np.searchsorted(sorted_codes, near, "right")
        hits = np.concatenate(
            [plan.by_code[a:b] for a, b in zip(low.tolist(), high.tolist(), strict=True)]
            or [np.zeros(0, dtype=np.int64)]
        )
        touched.append(plan.labels[hits])
        alone.append(hits[plan.labels[hits] < 0])
    labels = np.unique(np.concatenate(touched))
    labels = labels[labels >= 0]
    old = np.isin(plan.labels, labels)
    old[at[was]] = True
    for positions in alone:
        old[positions] = True
    # The images of those components now: the unchanged ones with their codes, the changed ones with theirs.
    stay = old.copy()
    stay[at[was]] = False
    ids = np.concatenate([plan.ids[stay], now_ids])
    codes = np.concatenate([plan.codes[stay], now_codes])
    order = np.argsort(ids, kind="stable")
    ids, codes = ids[order], codes[order]
    unique, inverse = np.unique(codes, return_inverse=True)
    left, right = hamming_pairs(unique, threshold)
    distances = np.bitwise_count(unique[left] ^ unique[right]).astype(np.float32)
    pairs = Pairs(ids, inverse, len(unique), left, right, distances, 0.0, unique)
    table = regroup(catalog, pairs, method)
    layout = Layout.of(pairs)
    # The groups of the other components stay as they were; the new ones go where they sort.
    kept_groups = np.flatnonzero(~np.isin(plan.group_label, labels))
    made = _rendered(table, plan.fmt, out)
    new_sizes = np.diff(table.starts)
    new_paths = [table.images.path[p] for p in table.member[table.starts[:-1]].tolist()]
    entries = [(-int(plan.group_size[g]), plan.group_path[g], 0, int(g)) for g in kept_groups.tolist()]
    entries += [
        (-int(s), p, 1, k) for k, (s, p) in enumerate(zip(new_sizes.tolist(), new_paths, strict=True))
    ]
    entries.sort(key=lambda e: (e[0], e[1]))
    if not entries:
        return None
    data = memoryview(np.fromfile(base, dtype=np.uint8))  # type: ignore[call-overload]
    segments: list[bytes | memoryview] = []
    starts, ends = np.zeros(len(entries), dtype=np.int64), np.zeros(len(entries), dtype=np.int64)
    position = 0
    encoding, errors = _encoding(out)
    if plan.fmt == "json":
        segments.append(data[: plan.head])
        position = plan.head
        separator = b",\n    "
    members = 0
    for n, (size, _, source, g) in enumerate(entries):
        members -= size
        if plan.fmt == "json":
            if n:
                segments.append(separator)
                position += len(separator)
        else:
            heading = f"group {n + 1}: {-size} images\n".encode(encoding, errors)
            segments.append(heading)
            position += len(heading)
        piece = data[int(plan.group_start[g]) : int(plan.group_end[g])] if source == 0 else made[g]
        segments.append(piece)
        starts[n] = position
        position += len(piece)
        ends[n] = position
    log.debug(
        "brought up to date: %d changed image(s), %d of %d group(s) kept, %d made",
        len(changed_ids),
        len(kept_groups),
        len(plan.group_size),
        len(made),
    )
    if plan.fmt == "json":
        segments.append(data[plan.tail :])
        tail = position
    else:
        from catalog.text import groups_summary

        summary = groups_summary(
            len(entries),
            members,
            method.name,
            plan.threshold,
            False,
            False,
            len(plan.ids) - int(was.sum()) + len(now_ids),
        )
        segments.append(f"{summary}\n".encode(encoding, errors))
        tail = position
    # The layout of the answer made: the unchanged images' as they were, the regrouped ones' anew.
    base_label = int(max(plan.labels.max(initial=-1), plan.group_label.max(initial=-1))) + 1
    new_labels = np.where(layout.labels >= 0, layout.labels + base_label, -1)
    all_ids = np.concatenate([plan.ids[~old], layout.image_ids])
    order = np.argsort(all_ids, kind="stable")
    all_codes = np.concatenate([plan.codes[~old], layout.codes])[order]
    group_label = np.empty(len(entries), dtype=np.int64)
    group_size = np.empty(len(entries), dtype=np.int64)
    group_path = []
    new_group_label = new_labels[
        np.searchsorted(layout.image_ids, table.images.id[table.member[table.starts[:-1]]])
    ]
    for n, (size, path, source, g) in enumerate(entries):
        group_label[n] = plan.group_label[g] if source == 0 else new_group_label[g]
        group_size[n] = -size
        group_path.append(path)
    new_plan = Plan(
        mark=plan.mark,
        code=plan.code,
        fmt=plan.fmt,
        method=plan.method,
        threshold=plan.threshold,
        base_inode=0,
        base_size=0,
        ids=all_ids[order],
        codes=all_codes,
        labels=np.concatenate([plan.labels[~old], new_labels])[order],
        by_code=np.argsort(all_codes, kind="stable"),
        group_label=group_label,
        group_size=group_size,
        group_start=starts,
        group_end=ends,
        group_path=group_path,
        head=plan.head,
        tail=tail,
    )
    return segments, new_plan


def _rendered(table: GroupTable, fmt: str, out: TextIO) -> list[bytes]:
    """Each group of ``table`` as the answer prints it: its JSON object, or its text lines without the
    heading (whose number depends on where it goes)."""
    from catalog import listing
    from catalog.text import json_escaped

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


def _encoding(out: TextIO) -> tuple[str, str]:
    return getattr(out, "encoding", None) or "utf-8", getattr(out, "errors", None) or "strict"
