"""The catalogue's readable images as columns (NumPy arrays and lists), in path order.

A library of a million images has most of them in some group: answering ``dupes`` or ``copies`` with
an object per image costs seconds in object creation alone. :class:`ImageTable` holds the same facts
as :class:`catalog.store.ImageInfo`, one array or list per field, so grouping and printing work on
whole columns; :meth:`ImageTable.info` gives one image as an ``ImageInfo`` where a caller wants one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from operator import itemgetter

import numpy as np

from catalog.store.records import ImageInfo


@dataclass(frozen=True)
class _Joined:
    text: str
    count: int


@dataclass(eq=False)
class ImageTable:
    """Readable images in path order (position ``k`` is the ``k``-th path). Unknown whole numbers are
    -1 (``width``, ``height``, ``content_width``, ``content_height``); ``has_gps`` and ``has_exif`` are
    1, 0 or -1 (unknown)."""

    id: np.ndarray
    path: list[str]
    size: np.ndarray
    width: np.ndarray
    height: np.ndarray
    format: list[str | None]
    content_hash: list[str | None]
    mtime_ns: np.ndarray
    content_width: np.ndarray
    content_height: np.ndarray
    taken: list[str | None]
    camera_make: list[str | None]
    camera_model: list[str | None]
    has_gps: np.ndarray
    has_exif: np.ndarray

    def __len__(self) -> int:
        return len(self.path)

    def __getstate__(self) -> dict[str, object]:
        """Text columns travel joined (one string per column, for the background reader): a million
        strings pickled one by one cost half a second. Paths hold no NUL; a column with None (or a
        NUL) travels as its list."""
        state: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list) and None not in value:
                joined = "\0".join(value)
                if joined.count("\0") == max(len(value) - 1, 0):
                    value = _Joined(joined, len(value))
            state[field.name] = value
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            if isinstance(value, _Joined):
                value = value.text.split("\0") if value.count else []
            setattr(self, name, value)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple], in_path_order: bool) -> ImageTable:  # type: ignore[type-arg]
        """From rows of (id, path, size, width, height, format, content_hash, mtime_ns, content_width,
        content_height, taken, camera_make, camera_model, has_gps, has_exif), unknown numbers as -1;
        sorted by path here unless ``in_path_order``."""
        if not rows:
            return cls.of([])
        # A column at a time (``zip(*rows)`` would step a million row iterators in turn).
        paths = list(map(itemgetter(1), rows))
        order = None if in_path_order else sorted(range(len(paths)), key=paths.__getitem__)

        def ints(k: int, kind: type = np.int64) -> np.ndarray:
            values: np.ndarray = np.fromiter(
                map(itemgetter(k), rows), dtype=np.int64, count=len(rows)
            ).astype(kind)
            return values if order is None else values[order]

        def texts(k: int) -> list[str | None]:
            values = paths if k == 1 else list(map(itemgetter(k), rows))
            return values if order is None else [values[i] for i in order]

        return cls(
            id=ints(0),
            path=texts(1),  # type: ignore[arg-type]
            size=ints(2),
            width=ints(3),
            height=ints(4),
            format=texts(5),
            content_hash=texts(6),
            mtime_ns=ints(7),
            content_width=ints(8),
            content_height=ints(9),
            taken=texts(10),
            camera_make=texts(11),
            camera_model=texts(12),
            has_gps=ints(13, np.int8),
            has_exif=ints(14, np.int8),
        )

    @classmethod
    def of(cls, images: Iterable[ImageInfo]) -> ImageTable:
        """A table of ``images`` (sorted by path here)."""

        def known(value: int | bool | None) -> int:
            return -1 if value is None else int(value)

        rows = [
            (
                im.id, im.path, im.size, known(im.width), known(im.height), im.format, im.content_hash,
                im.mtime_ns, known(im.content_width), known(im.content_height), im.taken, im.camera_make,
                im.camera_model, known(im.has_gps), known(im.has_exif),
            )
            for im in images
        ]  # fmt: skip
        if rows:
            return cls.from_rows(rows, in_path_order=False)
        empty = np.zeros(0, dtype=np.int64)
        flags = np.zeros(0, dtype=np.int8)
        return cls(empty, [], empty, empty, empty, [], [], empty, empty, empty, [], [], [], flags, flags)

    def take(self, positions: np.ndarray) -> ImageTable:
        """The images at ``positions`` (ascending: the result stays in path order) as a table."""
        at = positions.tolist()
        values: dict[str, object] = {}
        for field in fields(self):
            column = getattr(self, field.name)
            values[field.name] = (
                column[positions] if isinstance(column, np.ndarray) else [column[k] for k in at]
            )
        return ImageTable(**values)  # type: ignore[arg-type]

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """The position of each image id in ``ids`` (-1 for an id the table does not hold)."""
        by_id = np.argsort(self.id, kind="stable")
        ordered = self.id[by_id]
        if not len(ordered):
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.searchsorted(ordered, ids).clip(max=len(ordered) - 1)
        return np.where(ordered[at] == ids, by_id[at], -1)

    @property
    def pixels(self) -> np.ndarray:
        """Pixels of each picture inside any border (as ``ImageInfo.pixels``)."""
        inner = (self.content_width > 0) & (self.content_height > 0)
        whole = self.width.clip(min=0) * self.height.clip(min=0)
        return np.where(inner, self.content_width * self.content_height, whole)  # type: ignore[no-any-return]

    def info(self, k: int) -> ImageInfo:
        """Position ``k`` as an :class:`ImageInfo`."""

        def number(array: np.ndarray) -> int | None:
            value = int(array[k])
            return None if value < 0 else value

        def flag(array: np.ndarray) -> bool | None:
            value = int(array[k])
            return None if value < 0 else bool(value)

        return ImageInfo(
            int(self.id[k]),
            self.path[k],
            int(self.size[k]),
            number(self.width),
            number(self.height),
            self.format[k],
            self.content_hash[k],
            int(self.mtime_ns[k]),
            number(self.content_width),
            number(self.content_height),
            self.taken[k],
            self.camera_make[k],
            self.camera_model[k],
            flag(self.has_gps),
            flag(self.has_exif),
        )
