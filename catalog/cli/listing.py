"""The lines ``dupes`` prints, made a column at a time.

A million-image answer lists most images of the library: formatting each through a dictionary and
the JSON encoder (or an f-string per field) costs several seconds. Here each field is formatted for
all listed images at once (NumPy for numbers and times, the C string encoder of :mod:`json` for text),
and a line is one ``%`` of the pre-formatted fields. The output is the same text as the per-image
formatting gave (tests compare the two). Fields are read in the table's order (:func:`_table_order`);
from ``PARALLEL_FROM`` listed images on, a forked process makes the second half (:func:`in_halves`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring  # type: ignore[attr-defined]

import numpy as np

from catalog.grouping.keep import why_kept
from catalog.store import camera_name
from catalog.store.columns import ImageTable
from catalog.text import human_size, shown

#: A method's scores to percentages on the one similarity scale (``Method.similarity``), or None.
Similar = Callable[[np.ndarray], np.ndarray] | None


def _percent(score: np.ndarray, similar: Similar) -> list[float | None]:
    """Each score's similarity in percent, to a tenth (None for the reference, or without ``similar``)."""
    if similar is None:
        return [None] * len(score)
    percent = np.round(similar(np.nan_to_num(score)), 1)
    return [None if s != s else p for s, p in zip(score.tolist(), percent.tolist(), strict=True)]


#: One image's fields as ``dupes`` lists them (the object left open for a score).
_IMAGE = (
    '{"path": %s, "size": %s, "width": %s, "height": %s, "format": %s, "content_hash": %s, '
    '"modified": %s, "taken": %s, "camera": %s, "exif": %s, "gps": %s'
)
_FLAGS = np.asarray(["false", "true", "null"])  # by flag value 0, 1, -1


def iso_seconds(mtime_ns: np.ndarray) -> list[str]:
    """``datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")`` of each value: the same
    rounding to microseconds (half to even), then whole seconds."""
    fraction, whole = np.modf(np.asarray(mtime_ns, dtype=np.int64) / 1e9)
    micro = np.rint(fraction * 1e6)
    whole = whole + (micro >= 1e6) - (micro < 0)
    text = np.datetime_as_string(whole.astype(np.int64).astype("datetime64[s]"), unit="s")
    return [t + "+00:00" for t in text.tolist()]


def _text(values: list[str | None]) -> list[str]:
    """Each value as a JSON string (or null)."""
    if None not in values:
        return list(map(encode_basestring, values))  # type: ignore[arg-type]
    return [encode_basestring(v) if v is not None else "null" for v in values]


def _repeated(values: list[str | None]) -> list[str]:
    """As :func:`_text`, each distinct value encoded once (formats, cameras)."""
    encoded: dict[str | None, str] = {None: "null"}
    out = []
    for v in values:
        text = encoded.get(v)
        if text is None:
            text = encoded[v] = encode_basestring(v)  # type: ignore[arg-type]  # None is in it already
        out.append(text)
    return out


def _number(values: np.ndarray) -> list[str]:
    return ["null" if v < 0 else str(v) for v in values.tolist()]


def _cameras(table: ImageTable, at: list[int]) -> list[str | None]:
    named: dict[tuple[str | None, str | None], str | None] = {(None, None): None}
    out = []
    for p in at:
        key = (table.camera_make[p], table.camera_model[p])
        if key not in named:
            named[key] = camera_name(*key)
        out.append(named[key])
    return out


def _table_order(positions: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(the order that sorts ``positions``, where each of them went): the fields of a million images
    are read from the table in its own order, and the lines put back in theirs; read in a group's
    order (all over memory) they cost a third more."""
    order = np.argsort(positions, kind="stable")
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return order, back.tolist()


def image_json(table: ImageTable, positions: np.ndarray, ends: list[str] | None = None) -> list[str]:
    """The JSON object of each image at ``positions`` of ``table``, ended by ``ends[k]`` (without
    ``ends``, left without its closing brace)."""
    order, back = _table_order(positions)
    positions = positions[order]
    at = positions.tolist()
    columns = [
        _text([table.path[p] for p in at]),
        list(map(str, table.size[positions].tolist())),
        _number(table.width[positions]),
        _number(table.height[positions]),
        _repeated([table.format[p] for p in at]),
        _text([table.content_hash[p] for p in at]),
        list(map(encode_basestring, iso_seconds(table.mtime_ns[positions]))),
        _text([table.taken[p] for p in at]),
        _repeated(_cameras(table, at)),
        _FLAGS[table.has_exif[positions]].tolist(),
        _FLAGS[table.has_gps[positions]].tolist(),
    ]
    line = _IMAGE
    if ends is not None:
        columns.append(list(map(ends.__getitem__, order.tolist())))
        line += "%s"
    made = [line % fields for fields in zip(*columns, strict=True)]
    return list(map(made.__getitem__, back))


def group_json(
    table: ImageTable, member: np.ndarray, starts: np.ndarray, score: np.ndarray, similar: Similar = None
) -> Iterator[str]:
    """Each group as the JSON ``{"reference": PATH, "why": ..., "images": [...]}`` (members with their
    score and, given ``similar`` (the method's :meth:`~catalog.methods.Method.similarity`), its
    percentage on the one scale)."""
    closed: dict[float, str] = {}
    scores = []
    for s, p in zip(score.tolist(), _percent(score, similar), strict=True):
        if s not in closed:
            shown = "" if p is None else f', "similarity": {p}'
            closed[s] = "}" if s != s else f', "score": {s!r}{shown}}}'
        scores.append(closed[s])
    images = image_json(table, member, scores)
    del scores
    whys = why_kept(table, member, starts)
    bounds = starts.tolist()
    for begin, end, why in zip(bounds[:-1], bounds[1:], whys, strict=True):
        listed = ", ".join(images[begin:end])
        reference = encode_basestring(table.path[int(member[begin])])
        yield f'{{"reference": {reference}, "why": {encode_basestring(why)}, "images": [{listed}]}}'


def group_lines(
    table: ImageTable,
    member: np.ndarray,
    starts: np.ndarray,
    score: np.ndarray,
    similar: Similar = None,
    number: int = 1,
) -> Iterator[str]:
    """The text lines of each group: a heading with why its reference is kept, then each image with its
    score (the reference marked). Groups are numbered from ``number``."""
    order, back = _table_order(member)
    ordered_paths = [shown(table.path[p]) for p in member[order].tolist()]
    paths = list(map(ordered_paths.__getitem__, back))
    del ordered_paths
    named: dict[int, str] = {}
    sizes = [named.get(v) or named.setdefault(v, human_size(v)) for v in table.size[member].tolist()]
    days = [t[:10] for t in iso_seconds(table.mtime_ns[member])]
    width, height = table.width[member].tolist(), table.height[member].tolist()
    marks: dict[float, str] = {}
    bounds = starts.tolist()
    scores = score.tolist()
    percents = _percent(score, similar)
    wide = 9 if similar is None else 16
    whys = why_kept(table, member, starts)
    for n, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), number):
        yield f"group {n}: {end - begin} images, keeping the {whys[n - number]}"
        for k in range(begin, end):
            s = scores[k]
            if s != s:
                mark = "reference"
            elif (mark := marks.get(s, "")) == "":
                p = percents[k]
                mark = marks.setdefault(s, f"{s:9.4g}" + ("" if p is None else f" {p:5.1f}%"))
            shape = f"{width[k]}x{height[k]}, " if width[k] >= 0 and height[k] >= 0 else ""
            yield f"  {mark:>{wide}}  {paths[k]}  ({shape}{sizes[k]}, {days[k]})"


def group_rows(
    table: ImageTable, member: np.ndarray, starts: np.ndarray, score: np.ndarray, similar: Similar = None
) -> list[list[object]]:
    """CSV rows: group number, score and similarity ("" for the reference), path, size, width, height,
    modified."""
    group = np.repeat(np.arange(1, len(starts)), np.diff(starts)).tolist()
    modified = iso_seconds(table.mtime_ns[member])
    width, height = table.width[member].tolist(), table.height[member].tolist()
    sizes = table.size[member].tolist()
    percents = _percent(score, similar)
    return [
        [
            group[k],
            "" if s != s else s,
            "" if s != s or percents[k] is None else percents[k],
            table.path[p],
            sizes[k],
            None if width[k] < 0 else width[k],
            None if height[k] < 0 else height[k],
            modified[k],
        ]
        for k, (p, s) in enumerate(zip(member.tolist(), score.tolist(), strict=True))
    ]


def copies_json(table: ImageTable, listed: np.ndarray, counts: np.ndarray) -> list[str]:
    """Each listed image as the JSON ``copies`` prints: path, copies and the picture's facts."""
    order, back = _table_order(listed)
    listed, counts = listed[order], counts[order]
    at = listed.tolist()
    columns = (
        _text([table.path[p] for p in at]),
        list(map(str, counts.tolist())),
        _text([table.taken[p] for p in at]),
        _repeated(_cameras(table, at)),
        _FLAGS[table.has_exif[listed]].tolist(),
        _FLAGS[table.has_gps[listed]].tolist(),
    )
    line = '{"path": %s, "copies": %s, "taken": %s, "camera": %s, "exif": %s, "gps": %s}'
    made = [line % fields for fields in zip(*columns, strict=True)]
    return list(map(made.__getitem__, back))


def copies_lines(table: ImageTable, listed: np.ndarray, counts: np.ndarray) -> list[str]:
    """``copies``' text: each listed image's number of copies, then its path."""
    paths = table.path
    return [f"{n:6d}  {shown(paths[p])}" for p, n in zip(listed.tolist(), counts.tolist(), strict=True)]


#: From this many listed images on, the second half of an answer's lines is made by a forked process
#: while this one makes the first (:func:`in_halves`); below, forking costs more than it saves.
PARALLEL_FROM = 50_000


def in_halves(
    count: int, make: Callable[[int, int], Iterable[str]], cut: int, separator: str
) -> Iterator[str]:
    """The items ``make(0, count)`` gives: those of ``make(0, cut)`` one by one, then those of
    ``make(cut, count)``, made meanwhile by a forked process (:class:`catalog.background.Forked`), as
    one string, joined by ``separator`` as the caller joins items (made here if the process fails).
    ``cut`` outside (0, count), or a thread that may not fork (``can_fork``): all made here."""
    from catalog.background import Forked, can_fork

    if not 0 < cut < count or not can_fork():
        yield from make(0, count)
        return

    def second() -> Iterator[bytes]:
        yield separator.join(make(cut, count)).encode("utf-8", "surrogatepass")

    with Forked(second) as other:
        yield from make(0, cut)
        made = other.next()
    if made is None:
        yield from make(cut, count)
    else:
        yield made.decode("utf-8", "surrogatepass")


def _groups(
    member: np.ndarray, starts: np.ndarray, score: np.ndarray, begin: int, end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The columns of groups ``begin <= g < end``."""
    low, high = int(starts[begin]), int(starts[end])
    return member[low:high], starts[begin : end + 1] - low, score[low:high]


def _middle(listed: int, starts: np.ndarray, parallel_from: int) -> int:
    """The group at which half of ``listed`` members are listed (0: fewer than ``parallel_from``)."""
    return int(np.searchsorted(starts, listed // 2)) if listed >= parallel_from else 0


def all_group_json(
    table: ImageTable,
    member: np.ndarray,
    starts: np.ndarray,
    score: np.ndarray,
    separator: str,
    similar: Similar = None,
    parallel_from: int = PARALLEL_FROM,
) -> Iterator[str]:
    """:func:`group_json` of every group, on both cores from ``parallel_from`` members on
    (:func:`in_halves`)."""

    def make(begin: int, end: int) -> Iterator[str]:
        return group_json(table, *_groups(member, starts, score, begin, end), similar)

    return in_halves(len(starts) - 1, make, _middle(len(member), starts, parallel_from), separator)


def all_group_lines(
    table: ImageTable,
    member: np.ndarray,
    starts: np.ndarray,
    score: np.ndarray,
    similar: Similar = None,
    parallel_from: int = PARALLEL_FROM,
) -> Iterator[str]:
    """:func:`group_lines` of every group, on both cores from ``parallel_from`` members on
    (:func:`in_halves`; the second half's lines come as one string)."""

    def make(begin: int, end: int) -> Iterator[str]:
        return group_lines(table, *_groups(member, starts, score, begin, end), similar, number=begin + 1)

    return in_halves(len(starts) - 1, make, _middle(len(member), starts, parallel_from), "\n")


def all_copies_json(
    table: ImageTable,
    listed: np.ndarray,
    counts: np.ndarray,
    separator: str,
    parallel_from: int = PARALLEL_FROM,
) -> Iterator[str]:
    """:func:`copies_json` of every listed image, on both cores from ``parallel_from`` images on
    (:func:`in_halves`)."""
    cut = len(listed) // 2 if len(listed) >= parallel_from else 0
    return in_halves(len(listed), lambda b, e: copies_json(table, listed[b:e], counts[b:e]), cut, separator)


def all_copies_lines(
    table: ImageTable, listed: np.ndarray, counts: np.ndarray, parallel_from: int = PARALLEL_FROM
) -> Iterator[str]:
    """:func:`copies_lines` of every listed image, on both cores from ``parallel_from`` images on
    (:func:`in_halves`; the second half's lines come as one string)."""
    cut = len(listed) // 2 if len(listed) >= parallel_from else 0
    return in_halves(len(listed), lambda b, e: copies_lines(table, listed[b:e], counts[b:e]), cut, "\n")
