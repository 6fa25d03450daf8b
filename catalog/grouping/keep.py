"""The keep order, written once: which image of a group a person keeps first (largest picture inside any
border, then with EXIF, then largest file, then oldest), for lists of images and for columns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from catalog.store import ImageInfo
from catalog.store.columns import ImageTable

#: Resolutions (and file sizes) within this ratio of the largest count as equal in the keep order: the
#: size of a picture inside a border is measured to about 1 % of a side, and a copy re-saved at a
#: higher JPEG quality can be a little bigger than its original.
SAME = 1.05


def keep_order(images: Sequence[ImageInfo]) -> list[int]:
    """Positions of ``images`` from the one a person would keep first: largest resolution of the
    picture itself (inside any border someone added), then without a border before with one, then with
    EXIF before without (a copy a messenger or an editor saved has usually lost it), then largest file,
    then oldest (date taken, else modified time), then path. Resolutions and sizes within 5 % of the
    largest count as equal."""

    if len(images) == 1:
        return [0]
    if len(images) >= MANY:
        return _keep_order_vectorised(images)

    def tiers(
        indices: list[int], value: Callable[[int], int], then: Callable[[list[int]], list[int]]
    ) -> list[int]:
        ordered = sorted(indices, key=lambda k: -value(k))
        out: list[int] = []
        start = 0
        while start < len(ordered):
            end = start + 1
            while end < len(ordered) and value(ordered[end]) * SAME >= value(ordered[start]):
                end += 1
            out.extend(then(ordered[start:end]))
            start = end
        return out

    def oldest(indices: list[int]) -> list[int]:
        return sorted(indices, key=lambda k: (time_of(images[k]), images[k].path))

    def exif_then_largest_file(indices: list[int]) -> list[int]:
        size = lambda k: images[k].size  # noqa: E731
        with_exif = [k for k in indices if images[k].has_exif]
        stripped = [k for k in indices if not images[k].has_exif]
        return tiers(with_exif, size, oldest) + tiers(stripped, size, oldest)

    def unframed_then_largest_file(indices: list[int]) -> list[int]:
        framed = [k for k in indices if _framing(images[k]) > 0]
        plain = [k for k in indices if _framing(images[k]) <= 0]
        return exif_then_largest_file(plain) + exif_then_largest_file(framed)

    return tiers(list(range(len(images))), lambda k: images[k].pixels, unframed_then_largest_file)


def first_to_keep(images: Sequence[ImageInfo]) -> int:
    """``keep_order(images)[0]`` without ordering the rest: the top tier of each criterion in turn."""
    if len(images) == 1:
        return 0
    candidates = list(range(len(images)))
    top = max(images[k].pixels for k in candidates)
    candidates = [k for k in candidates if images[k].pixels * SAME >= top]
    plain = [k for k in candidates if _framing(images[k]) <= 0]
    candidates = plain or candidates
    with_exif = [k for k in candidates if images[k].has_exif]
    candidates = with_exif or candidates
    top = max(images[k].size for k in candidates)
    candidates = [k for k in candidates if images[k].size * SAME >= top]
    return min(candidates, key=lambda k: (time_of(images[k]), images[k].path))


#: Lists at least this long are put in keep order by :func:`_keep_order_vectorised` (the same order).
MANY = 64


def _keep_order_vectorised(images: Sequence[ImageInfo]) -> list[int]:
    """:func:`keep_order` for long lists (every class of a large library), with NumPy: tiers are found
    by binary search instead of a Python comparison per image, then one lexicographic sort."""
    by_path = sorted(range(len(images)), key=lambda k: images[k].path)
    table = ImageTable.of([images[k] for k in by_path])  # position = place in path order
    pixels, framed, exif, size, when, mtime = keep_facts(table)
    order = keep_order_columns(pixels, framed, ~exif, size, when, mtime, np.arange(len(images)))
    return np.asarray(by_path, dtype=np.int64)[order].tolist()  # type: ignore[no-any-return]


def keep_order_columns(
    pixels: np.ndarray,
    framed: np.ndarray,
    stripped: np.ndarray,
    size: np.ndarray,
    when: np.ndarray,
    mtime: np.ndarray,
    path_rank: np.ndarray,
    segment: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`keep_order` of images given as columns (``path_rank``: each one's place in path order).
    ``segment``: the keep order of each segment (a component of the graph of pairs) on its own, tiers
    cut among its images only (compiled); the segments' images interleave."""
    n = len(pixels)
    if segment is not None:
        from catalog.grouping import kernels

        pixel_tier = _segment_tiers(kernels, pixels, segment)
        subgroup = np.unique(np.stack([pixel_tier, framed, stripped]), axis=1, return_inverse=True)[1]
        size_tier = _segment_tiers(kernels, size, subgroup.reshape(-1))
        return np.lexsort((path_rank, mtime, when, size_tier, stripped, framed, pixel_tier))
    pixel_tier = _tier_ids(pixels, np.arange(n))
    size_tier = np.zeros(n, dtype=np.int64)
    subgroups = np.lexsort((stripped, framed, pixel_tier))
    keys = np.stack([pixel_tier, framed, stripped])[:, subgroups]
    cuts = np.flatnonzero(np.any(keys[:, 1:] != keys[:, :-1], axis=0)) + 1
    for members in np.split(subgroups, cuts):
        size_tier[members] = _tier_ids(size, members)
    return np.lexsort((path_rank, mtime, when, size_tier, stripped, framed, pixel_tier))


def _segment_tiers(kernels, values: np.ndarray, segment: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Tier numbers of ``values`` cut within each segment (numbers run on across segments)."""
    order = np.lexsort((-values, segment))
    ids = np.empty(len(values), dtype=np.int64)
    ids[order] = kernels.segment_tiers(segment[order], values[order])
    return ids


def _tier_ids(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Tier numbers (0 = the largest values) of ``values[members]`` as :func:`keep_order` cuts them: a
    tier starts at its largest value and holds every value within SAME of it."""
    order = members[np.argsort(-values[members], kind="stable")]
    descending = values[order]
    scaled = -(descending * SAME)  # ascending
    ids = np.empty(len(order), dtype=np.int64)
    start, tier = 0, 0
    while start < len(order):
        end = int(np.searchsorted(scaled, -float(descending[start]), side="right"))
        end = max(end, start + 1)
        ids[start:end] = tier
        start, tier = end, tier + 1
    result = np.empty(len(values), dtype=np.int64)
    result[order] = ids
    return result[members]


#: A uniform margin smaller than this share of an image is part of the picture (a dark band along one
#: edge of a photo), not a frame someone added.
FRAME_SHARE = 0.02


def time_of(image: ImageInfo) -> tuple[float, int]:
    """(when the picture was taken (EXIF; a time without a UTC offset is taken as local), else when its
    file was last modified, in seconds since the epoch; then the file's modified time): copies of one
    photo share its date taken, and the oldest file among them is the original."""
    stamp = _timestamp(image.taken) if image.taken else None
    return (image.mtime_ns / 1e9 if stamp is None else stamp), image.mtime_ns


def _timestamp(taken: str) -> float | None:
    """Seconds since the epoch of an EXIF date taken (ISO; local time without an offset), or None."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(taken).timestamp()
    except ValueError:
        return None


def _framing(image: ImageInfo) -> int:
    """Pixels of a border around the picture (0 without one, or with a margin under FRAME_SHARE)."""
    total = (image.width or 0) * (image.height or 0)
    margin = total - image.pixels
    return margin if margin > FRAME_SHARE * total else 0


def keep_facts(table: ImageTable) -> tuple[np.ndarray, ...]:
    """(pixels, framed, with EXIF, file size, when taken, modified ns) of every image of ``table``, the
    facts the keep order reads (as :func:`keep_order` reads them from an ``ImageInfo``)."""
    pixels = table.pixels
    whole = table.width.clip(min=0) * table.height.clip(min=0)
    framed = (whole - pixels) > FRAME_SHARE * whole
    when = table.mtime_ns / 1e9
    seen: dict[str, float | None] = {}
    for k, taken in enumerate(table.taken):
        if taken:
            if taken not in seen:
                seen[taken] = _timestamp(taken)
            stamp = seen[taken]
            if stamp is not None:
                when[k] = stamp
    return pixels, framed, table.has_exif == 1, table.size, when, table.mtime_ns
