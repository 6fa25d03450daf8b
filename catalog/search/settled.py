"""The codes of a hash method that have their stored pairs' row, as searches read them: a saved index of
most of them (``<catalogue>.<method>.pairs.npy``, this module's cache file) plus the rows written since
(:class:`Settled`), and the codes near given codes among them (:class:`NearCodes`, which a refresh of the
stored groups asks). The rows themselves are written by ``catalog.search.pairs``."""

from __future__ import annotations

import glob
import os
import uuid
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from catalog.search.bits import CodeIndex

if TYPE_CHECKING:
    from catalog.store import Catalog

#: Codes written since the saved index past which it is saved again (see ``Settled``).
SAVE_TAIL = 50_000
#: Blocks of the saved index's tables: 16 bits each, so that restoring them costs milliseconds (a
#: 22-bit block needs a table of 4 M offsets); new codes are few, and probe them cheaply.
SETTLED_BLOCKS = 4


class Settled:
    """The codes of a method that have their row, as a refresh searches them: a saved index of most of
    them (``<catalogue>.<method>.pairs.npy``, this module's cache file: codes in seq order, their seqs,
    a sorted copy and the block tables' orders) plus the few rows written since it was saved (the tail,
    read from the database). The file is checked against the table (its last row must be there, with
    its code) and rebuilt when it does not match; it is saved again, atomically under its lock, once the
    tail has grown."""

    def __init__(
        self,
        seqs: np.ndarray,
        codes: np.ndarray,
        index: CodeIndex,
        sorted_codes: np.ndarray | None = None,
        tail: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.seqs, self.codes, self.index = seqs, codes, index
        self.sorted = np.sort(codes) if sorted_codes is None else sorted_codes
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64))
        self.tail_seqs: np.ndarray
        self.tail_codes: np.ndarray
        self.tail_seqs, self.tail_codes = tail if tail is not None else empty

    @classmethod
    def load(cls, catalog: Catalog, method: str, key: str, threshold: int) -> Settled:
        path = cache_path(catalog, method)
        known = _last_read.get(path)
        try:
            if known is not None and known[0] == (_stamp(path), key, threshold):
                seqs, codes, index, sorted_codes = known[1]
                return cls._checked(catalog, method, key, threshold, seqs, codes, index, sorted_codes)
        except OSError:
            pass
        try:
            seqs, codes, sorted_codes, orders = _read_saved(path, key)
        except (OSError, ValueError):  # missing, damaged, another key or layout
            return cls._rebuild(catalog, method, key, threshold)
        index = CodeIndex(codes, threshold, orders, SETTLED_BLOCKS)
        return cls._checked(catalog, method, key, threshold, seqs, codes, index, sorted_codes, path)

    @classmethod
    def _checked(
        cls,
        catalog: Catalog,
        method: str,
        key: str,
        threshold: int,
        seqs: np.ndarray,
        codes: np.ndarray,
        index: CodeIndex,
        sorted_codes: np.ndarray,
        read: Path | None = None,
    ) -> Settled:
        """The saved index, if it is still this table's (else rebuilt), with the rows written after it
        as its tail; ``read``: the file it was just read from, remembered for the next load."""
        top = int(seqs.max(initial=0))
        # The file is this table's if its last row is there, with the same code (whoever drops rows, a
        # reset or the pruning in ``save_if_grown``, deletes the file first).
        if len(codes) and catalog.code_at(method, top) != int(codes[np.argmax(seqs)]):
            return cls._rebuild(catalog, method, key, threshold)
        if read is not None:
            _remember(read, key, threshold, (seqs, codes, index, sorted_codes))
        return cls(seqs, codes, index, sorted_codes, catalog.settled_codes_after(method, top))

    @classmethod
    def _rebuild(cls, catalog: Catalog, method: str, key: str, threshold: int) -> Settled:
        seqs, codes = catalog.settled_codes(method)
        settled = cls(seqs, codes, CodeIndex(codes, threshold, blocks=SETTLED_BLOCKS))
        settled.save(catalog, method, key)
        return settled

    def holds(self, codes: np.ndarray) -> np.ndarray:
        """Which of ``codes`` have their row."""
        return _among(codes, self.sorted) | _among(codes, np.sort(self.tail_codes))

    def extend(self, seqs: np.ndarray, codes: np.ndarray) -> None:
        self.tail_seqs = np.concatenate([self.tail_seqs, seqs])
        self.tail_codes = np.concatenate([self.tail_codes, codes])

    def save_if_grown(self, catalog: Catalog, method: str, key: str) -> None:
        """Fold the tail into the saved index once it is a twentieth of it (or more than SAVE_TAIL)."""
        if len(self.tail_codes) * 20 < len(self.codes) and len(self.tail_codes) < SAVE_TAIL:
            return
        self.seqs = np.concatenate([self.seqs, self.tail_seqs])
        self.codes = np.concatenate([self.codes, self.tail_codes])
        # Rows of codes no image has any more (edited and deleted photos) are dropped here, when they
        # are a tenth of the rows: harmless to answers, they would only grow over months of watching.
        _, present = catalog.upright_codes(method)
        gone = ~np.isin(self.codes, present)
        if gone.sum() * 10 > len(self.codes):
            cache_path(catalog, method).unlink(missing_ok=True)  # it would name the dropped rows
            if catalog.drop_code_rows(method, key, self.seqs[gone].tolist()):
                self.seqs, self.codes = self.seqs[~gone], self.codes[~gone]
        self.sorted = np.sort(self.codes)
        self.index = CodeIndex(self.codes, self.index.t, blocks=SETTLED_BLOCKS)
        self.tail_seqs, self.tail_codes = self.tail_seqs[:0], self.tail_codes[:0]
        self.save(catalog, method, key)

    def save(self, catalog: Catalog, method: str, key: str) -> None:
        """Write the file under its lock, atomically (a temporary file renamed over it); skipped when
        another process holds the lock or the disk refuses (the file is only a cache)."""
        from catalog.lock import try_lock

        path = cache_path(catalog, method)
        orders = [order.astype(np.int32) for order in self.index.orders()]
        arrays = [self.seqs, self.codes, self.sorted, *orders]
        try:
            old = path.with_suffix(".npz")  # the layout before SAVED_LAYOUT, and its lock file
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".lock").unlink(missing_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            with try_lock(path.with_name(path.name + ".lock")) as locked:
                if not locked:
                    return
                # A saver killed before its rename (escaped: a "[" in the name is no pattern).
                for stale in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
                    stale.unlink(missing_ok=True)
                temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
                with open(temporary, "wb") as file:
                    sums = [str(zlib.crc32(np.ascontiguousarray(a).data)) for a in arrays]
                    header = np.asarray([SAVED_LAYOUT, key, str(len(orders)), *sums])
                    for array in (header, *arrays):
                        np.save(file, array, allow_pickle=False)
                os.replace(temporary, path)
                _remember(path, key, self.index.t, (self.seqs, self.codes, self.index, self.sorted))
        except OSError:
            return


def cache_path(catalog: Catalog, method: str) -> Path:
    from catalog.search.vectors import index_base

    return Path(f"{index_base(catalog, method)}.pairs.npy")


#: What a saved index file starts with: a header record (this layout, the key, the number of block
#: orders, a CRC-32 of each array), then the arrays as consecutive ``.npy`` records, each checked before
#: it is read. (A zip of them, ``.pairs.npz``, before: as fast to read, 0.04-0.05 s at a million codes.)
SAVED_LAYOUT = "settled-codes-2"
#: The types a saved index's records may have (its header, seqs, codes and sorted codes, orders).
_RECORD_KINDS = ("U", "i", "u")


def _read_saved(path: Path, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """(seqs, codes, sorted codes, block orders) of the saved index at ``path``, written for ``key``.
    Raises OSError or ValueError when it is missing, another's, or damaged anywhere: cut short, a
    record's header or bytes changed (each array's CRC-32 is checked), or more than the index."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header = _record(file, size)
        if header.dtype.kind != "U" or len(header) < 3 or str(header[0]) != SAVED_LAYOUT:
            raise ValueError("another layout")
        if str(header[1]) != key:
            raise ValueError("another key")
        blocks = int(header[2])
        if len(header) != 3 + 3 + blocks:
            raise ValueError("a damaged header")
        arrays = [_record(file, size) for _ in range(3 + blocks)]
        if file.read(1):
            raise ValueError("more than the index")
    for array, expected in zip(arrays, header[3:].tolist(), strict=True):
        if str(zlib.crc32(array.data)) != expected:
            raise ValueError("damaged arrays")
    seqs, codes, sorted_codes, *orders = arrays
    if len(orders) != (SETTLED_BLOCKS if len(codes) else 0):
        raise ValueError("other tables")
    if not (len(seqs) == len(codes) == len(sorted_codes)) or any(len(o) != len(codes) for o in orders):
        raise ValueError("arrays of different lengths")
    return seqs, codes, sorted_codes, orders


def _record(file: BinaryIO, size: int) -> np.ndarray:
    """The next ``.npy`` record of ``file`` (``size`` bytes in all): a one-dimensional array of a
    record kind, no larger than what is left of the file (a damaged header cannot ask for more)."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
    else:
        raise ValueError("another record version")
    if len(shape) != 1 or fortran or dtype.hasobject or dtype.kind not in _RECORD_KINDS:
        raise ValueError("another record")
    if shape[0] * dtype.itemsize > size - file.tell():
        raise ValueError("cut short")
    array = np.fromfile(file, dtype=dtype, count=shape[0])
    if len(array) != shape[0]:
        raise ValueError("cut short")
    return array


#: The saved index this process last read or wrote, per file: (the file's size and modification time,
#: the key, the threshold) and what was read. An ``index`` reads it twice (for the pairs, then for the
#: groups: 0.2-0.4 s at a million codes); the same file is not read and sorted into tables again.
_last_read: dict[
    Path, tuple[tuple[tuple[int, int], str, int], tuple[np.ndarray, np.ndarray, CodeIndex, np.ndarray]]
] = {}


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _remember(
    path: Path, key: str, threshold: int, parts: tuple[np.ndarray, np.ndarray, CodeIndex, np.ndarray]
) -> None:
    try:
        _last_read.clear()  # one file at a time: a million codes' tables are 60 MB
        _last_read[path] = ((_stamp(path), key, threshold), parts)
    except OSError:
        pass


class NearCodes:
    """The codes within a threshold of given codes, among every code that has its row: the stored
    pairs' index (:class:`Settled`, which holds every present code once no code waits for its pairs).

    A refresh of the stored groups asks about the same codes several times (the components, the
    images whose copies are counted again, their neighbours): each code is searched once, and its
    answer kept for the object's life (the index does not change under it). The answers are kept in
    levels of disjoint codes, each sorted, a level merged into the one before once it is as large
    (a walk of thousands of small steps costs O(n log n) sorting, not a sort of everything per step)."""

    def __init__(self, catalog: Catalog, method: str, key: str, limit: int, threshold: int):
        settled = Settled.load(catalog, method, key, limit)
        self.parts = [
            (settled.codes, settled.index),
            (settled.tail_codes, CodeIndex(settled.tail_codes, limit)),
        ]
        self.threshold = threshold
        # Each level: (the codes asked, sorted; the (asked code, found code) pairs, sorted).
        self._levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def pairs(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query numbers, codes) of every code within the threshold of each query (itself included if
        it has a row), sorted, each pair once."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        asked = np.zeros(len(queries), dtype=bool)
        for codes, _, _ in self._levels:
            asked |= _among(queries, codes)
        self._search(np.unique(queries[~asked]))
        found_q, found_c = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.uint64)]
        for _, keys, found in self._levels:  # a query's answer is in one level only
            begin = np.searchsorted(keys, queries, side="left")
            counts = np.searchsorted(keys, queries, side="right") - begin
            q = np.repeat(np.arange(len(queries), dtype=np.int64), counts)
            at = np.repeat(begin - (np.cumsum(counts) - counts), counts) + np.arange(len(q))
            found_q.append(q)
            found_c.append(found[at])
        q, c = np.concatenate(found_q), np.concatenate(found_c)
        order = np.lexsort((c, q))
        return q[order], c[order]

    def _search(self, new: np.ndarray) -> None:
        """Search the codes ``new`` (sorted, once, none searched before) and keep their answers."""
        if not len(new):
            return
        found_q, found_c = [], []
        for codes, index in self.parts:
            for q, p, d in index.near(new):
                within = d <= self.threshold
                found_q.append(new[q[within]])
                found_c.append(codes[p[within]])
        self._levels.append((new, *_sorted_pairs(found_q, found_c)))
        while len(self._levels) > 1 and _size(self._levels[-1]) >= _size(self._levels[-2]):
            (codes_b, keys_b, found_b), (codes_a, keys_a, found_a) = self._levels.pop(), self._levels.pop()
            self._levels.append(
                (np.union1d(codes_a, codes_b), *_sorted_pairs([keys_a, keys_b], [found_a, found_b]))
            )

    def codes(self, queries: np.ndarray) -> np.ndarray:
        """The codes within the threshold of any query, sorted, each once."""
        return np.unique(self.pairs(queries)[1])


def _size(level: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    return len(level[0]) + len(level[1])


def _among(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_values`` (sorted)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_values, values).clip(max=len(sorted_values) - 1)
    return sorted_values[at] == values


def _sorted_pairs(keys: list[np.ndarray], found: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The (key, found) pairs of the parts, sorted, each pair once (a code may have two rows)."""
    k = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    f = np.concatenate(found) if found else np.zeros(0, dtype=np.uint64)
    order = np.lexsort((f, k))
    k, f = k[order], f[order]
    first = np.ones(len(k), dtype=bool)
    first[1:] = (k[1:] != k[:-1]) | (f[1:] != f[:-1])
    return k[first], f[first]
