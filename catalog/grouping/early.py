"""The image table read early, by a forked process of its own, while the command reads the stored
pairs: both cores on one answer from 50,000 images on (``find_groups``, ``copy_counts``); or the
stored groups' or copy counts' rows read by it while the command reads the table (``stored``)."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar, cast

from catalog.store import Catalog
from catalog.store.columns import ImageTable

if TYPE_CHECKING:
    from catalog.background import Forked


T = TypeVar("T")

#: From this many images on (by the highest image id), :class:`EarlyReads` reads in a process of its
#: own; below, the reads take a small fraction of a second here.
BACKGROUND_FROM = 50_000


class EarlyReads:
    """What an answer reads first (``first(catalogue)``: a method's signatures, say), then the
    catalogue's image table, read from :meth:`start` on by a forked process
    (:class:`catalog.background.Forked`) while this one finds the pairs: at a million images each read
    takes seconds. :meth:`first` and :meth:`table` wait for them. None from :meth:`first` (the reader
    failed, the catalogue is small, nothing was asked first), or a failed reader for :meth:`table`: the
    caller reads it here."""

    def __init__(self, catalog: Catalog, background: bool = True, background_from: int = BACKGROUND_FROM):
        self.catalog = catalog
        self.background, self.background_from = background, background_from
        self._first_unread = False  # the reader's first result is still in the pipe
        self._reader: Forked | None = None

    def start(self, first: Callable[[Catalog], object] | None = None, table: bool = True) -> None:
        """Start reading (in the background if asked for and the catalogue is large; else nothing
        happens until :meth:`table`). Without ``table``, the reader reads ``first`` only (this process
        reads the table meanwhile)."""
        from catalog.background import Forked, can_fork

        if self.background and can_fork() and self.catalog.highest_image_id() >= self.background_from:
            url = self.catalog.url
            self._first_unread = first is not None
            self._reader = Forked(lambda: _reads(url, first, table))

    def first(self) -> object | None:
        """What ``first`` gave in the reader (asked once; None: read it here)."""
        if self._reader is None or not self._first_unread:
            return None
        self._first_unread = False
        data = self._reader.next()
        return None if data is None else pickle.loads(data)

    def table(self) -> ImageTable:
        self.first()  # (if not taken)
        if self._reader is not None:
            data = self._reader.next()
            self.close()
            if data is not None:
                table: ImageTable = pickle.loads(data)
                return table
        return self.catalog.image_table()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> EarlyReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reads(url: str, first: Callable[[Catalog], object] | None, table: bool = True) -> Iterator[bytes]:
    """In the reader process (a connection of its own to the catalogue at ``url``): ``first``'s answer,
    then (with ``table``) the image table, pickled."""

    with Catalog.open(url, create=False) as catalog:
        if first is not None:
            yield pickle.dumps(first(catalog), protocol=pickle.HIGHEST_PROTOCOL)
        if table:
            yield pickle.dumps(catalog.image_table(), protocol=pickle.HIGHEST_PROTOCOL)


def beside_table(
    catalog: Catalog, rows: Callable[[Catalog], T], table: Callable[[], ImageTable]
) -> tuple[ImageTable, T]:
    """``table()`` read here while a forked reader reads ``rows(catalogue)`` (:class:`EarlyReads`, from
    ``BACKGROUND_FROM`` images on); ``rows`` read here after the table when there is no reader."""
    with EarlyReads(catalog) as early:
        early.start(rows, table=False)
        read = table()
        sent = early.first()
    return read, cast(T, sent) if sent is not None else rows(catalog)
