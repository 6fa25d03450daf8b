"""One class per kind of signature: what the rest of the code asks of a method's signatures, without asking
which kind they are. ``search_for(method)`` gives the method's search; this module is the one place that
reads ``Method.kind``.

- ``key`` (:class:`ExactSearch`): equal values only (``exact``: the content hash);
- ``bits`` (:class:`BitsSearch`): 64-bit codes within a Hamming distance, stored as pairs at indexing
  time and searched by multi-index hashing;
- ``vector`` (:class:`VectorSearch`): features near by a score, through an HNSW index, their pairs
  stored at indexing time;
- ``local`` (:class:`LocalSearch`): local features that only verify other methods' pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from catalog.errors import UsageError
from catalog.methods import Method
from catalog.methods.hashes import all_codes, codes_from_bytes
from catalog.search.bits import hamming_pairs
from catalog.search.matches import Pairs, best_per_pair, class_pairs
from catalog.search.pairs import (
    Lookup,
    pairs_key,
    stored_pairs,
    stored_threshold,
    stored_vector_pairs,
    vector_pairs_cover,
)
from catalog.search.settled import NearCodes
from catalog.search.vectors import (
    NEIGHBOURS,
    NEIGHBOURS_EF,
    TURNED_EF,
    TURNED_NEIGHBOURS,
    matching_neighbours,
)
from catalog.store import Catalog

if TYPE_CHECKING:
    from catalog.methods import VectorMethod


class Search:
    """What the code above asks of one method's signatures. Subclasses answer for their kind."""

    kind: ClassVar[str]
    #: Whether a method of this kind keeps its groups as rows (``catalog.grouping.stored``).
    keeps_groups: ClassVar[bool] = False
    #: Whether images join a component through codes near theirs (not only through equal ones).
    reaches_near: ClassVar[bool] = False

    def __init__(self, method: Method):
        self.method = method

    def near_pairs(
        self,
        catalog: Catalog,
        threshold: float,
        transforms: bool = False,
        early: Callable[[], object] | None = None,
    ) -> Pairs:
        """Every matching pair of the catalogue's images. ``early``: gives what :meth:`early_reader`
        read meanwhile in another process (or None)."""
        raise NotImplementedError

    def early_reader(self) -> Callable[[Catalog], object] | None:
        """What :meth:`near_pairs` can have read by another process meanwhile (``EarlyReads``' first
        read); None: nothing worth reading early."""
        return None

    def groups_key(self) -> str | None:
        """What the method's stored groups answer ("THRESHOLD@VERSION"); None: it keeps none."""
        return None

    def pairs_pending(self, catalog: Catalog) -> bool:
        """Whether some of the method's signatures wait for their stored pairs."""
        return False

    def signed(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image ids, codes, classes) of every image with a signature: its 64-bit code, and what makes
        two images one class (equal codes; equal hashes)."""
        raise NotImplementedError(f"{self.method.name} keeps no groups")

    def near_codes(self, catalog: Catalog) -> NearCodes | EqualCodes:
        """The codes near given codes, at the method's default threshold (through the stored pairs'
        saved index, which answers the pairs' key)."""
        raise NotImplementedError(f"{self.method.name} keeps no groups")


class EqualCodes:
    """The codes equal to given codes (``exact``: a class is its files' content hash)."""

    def codes(self, queries: np.ndarray) -> np.ndarray:
        return np.unique(queries)


class ExactSearch(Search):
    kind = "key"
    keeps_groups = True

    def near_pairs(
        self,
        catalog: Catalog,
        threshold: float,
        transforms: bool = False,
        early: Callable[[], object] | None = None,
    ) -> Pairs:
        if transforms:
            raise UsageError(f"{self.method.name} matches equal files only: --transforms does not apply")
        ids, values = catalog.signatures(self.method.name)
        empty = np.zeros(0, dtype=np.int64)
        return Pairs.of(_classes(ids, values), empty, empty, np.zeros(0), identical=0.0)

    def groups_key(self) -> str | None:
        return f"-@{self.method.version}"

    def signed(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        listed, values = catalog.signatures(self.method.name)
        ids = np.asarray(listed, dtype=np.int64)
        codes = np.fromiter(
            (int.from_bytes(v[:8], "big") for v in values), dtype=np.uint64, count=len(values)
        )
        return ids, codes, np.asarray(values, dtype=object)

    def near_codes(self, catalog: Catalog) -> NearCodes | EqualCodes:
        return EqualCodes()


class BitsSearch(Search):
    kind = "bits"
    keeps_groups = True
    reaches_near = True

    def near_pairs(
        self,
        catalog: Catalog,
        threshold: float,
        transforms: bool = False,
        early: Callable[[], object] | None = None,
    ) -> Pairs:
        method = self.method
        if not transforms:
            stored = stored_pairs(catalog, method, threshold)
            if stored is not None:
                image_ids, inverse, left, right, distances, codes = stored
                count = int(inverse.max()) + 1 if len(inverse) else 0
                return Pairs(image_ids, inverse, count, left, right, distances.astype(np.float32), 0.0, codes)
        ids, values = catalog.signatures(method.name)
        upright = codes_from_bytes(values)
        unique, first, inverse = np.unique(upright, return_index=True, return_inverse=True)
        image_ids = np.asarray(ids, dtype=np.int64)
        if not transforms:
            left, right = hamming_pairs(unique, int(threshold))
            scores = np.bitwise_count(unique[left] ^ unique[right]).astype(np.float64)
            return Pairs(image_ids, inverse, len(unique), left, right, scores, identical=0.0)
        codes = all_codes([values[k] for k in first.tolist()])  # (classes, 8): upright first
        if codes.shape[1] < 2:
            raise UsageError(
                f"this catalogue's {method.name} signatures hold no turned codes: run `catalog index` to "
                "recompute them"
            )
        m = len(unique)
        stacked = codes.T.reshape(-1)  # every class's upright codes, then its mirror codes, ...
        i, j = hamming_pairs(stacked, int(threshold))
        # Keep pairs of one class's own code with another's turned (or own) code; two turned codes say
        # nothing new.
        keep = ((i < m) | (j < m)) & (i % m != j % m)
        i, j = i[keep], j[keep]
        scores = np.bitwise_count(stacked[i] ^ stacked[j]).astype(np.float64)
        left, right, scores = best_per_pair(i % m, j % m, scores, higher_is_similar=False)
        return Pairs(image_ids, inverse, m, left, right, scores, identical=0.0)

    def groups_key(self) -> str | None:
        return pairs_key(self.method) if stored_threshold(self.method) is not None else None

    def pairs_pending(self, catalog: Catalog) -> bool:
        name = self.method.name
        return catalog.pairs_key(name) != pairs_key(self.method) or bool(catalog.count_unpaired(name))

    def signed(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, codes = catalog.upright_codes(self.method.name)
        return ids, codes, codes

    def near_codes(self, catalog: Catalog) -> NearCodes | EqualCodes:
        limit = int(stored_threshold(self.method) or 0)
        key = pairs_key(self.method)
        return NearCodes(catalog, self.method.name, key, limit, int(self.method.default_threshold))


class VectorSearch(Search):
    kind = "vector"

    def near_pairs(
        self,
        catalog: Catalog,
        threshold: float,
        transforms: bool = False,
        early: Callable[[], object] | None = None,
    ) -> Pairs:
        return vector_pairs(catalog, self.method, threshold, transforms, early)  # type: ignore[arg-type]

    def early_reader(self) -> Callable[[Catalog], object] | None:
        method = self.method
        return lambda catalog: signature_classes(catalog, method)


class LocalSearch(Search):
    kind = "local"

    def near_pairs(
        self,
        catalog: Catalog,
        threshold: float,
        transforms: bool = False,
        early: Callable[[], object] | None = None,
    ) -> Pairs:
        raise UsageError(
            f"{self.method.name} only verifies the pairs of cnn and cnn-euclidean: choose another method"
        )


SEARCHES: dict[str, type[Search]] = {s.kind: s for s in (ExactSearch, BitsSearch, VectorSearch, LocalSearch)}


def search_for(method: Method) -> Search:
    """The search of ``method``'s kind of signature."""
    return SEARCHES[method.kind](method)


def near_pairs(
    catalog: Catalog,
    method: Method,
    threshold: float,
    transforms: bool = False,
    early: Callable[[], object] | None = None,
) -> Pairs:
    """Every matching pair of the catalogue's images by ``method``, as :class:`Pairs`."""
    return search_for(method).near_pairs(catalog, threshold, transforms, early)


def _classes(ids: list[int], values: list[bytes]) -> list[list[int]]:
    by_value: dict[bytes, list[int]] = {}
    for image_id, value in zip(ids, values, strict=True):
        by_value.setdefault(value, []).append(image_id)
    return list(by_value.values())


def vector_pairs(
    catalog: Catalog,
    method: VectorMethod,
    threshold: float,
    transforms: bool,
    early: Callable[[], object] | None = None,
) -> Pairs:
    """Matching pairs among each image's nearest neighbours in the vector index (scored by the method
    itself where the index only proposes); with ``transforms``, also the neighbours of its turned
    features (methods that keep them)."""
    from catalog.search.vectors import VectorIndex

    turned = getattr(method, "turned_vectors", None)
    if transforms and not callable(turned):
        raise UsageError(f"{method.name} keeps no turned features: --transforms does not apply")
    if vector_pairs_cover(catalog, method, threshold):  # kept at indexing time: no index to load

        @cache
        def classes() -> tuple[np.ndarray, np.ndarray, int]:
            read = early() if early is not None else None
            return read if read is not None else signature_classes(catalog, method)  # type: ignore[return-value]

        stored = stored_vector_pairs(catalog, method, threshold, transforms, classes)
        if stored is not None:
            return class_pairs(method, *classes(), *stored, ordered=True)
    found_a, found_b, found_s = [], [], []
    index = VectorIndex(catalog, method).sync()

    def collect(ids: np.ndarray, labels: np.ndarray, distances: np.ndarray) -> None:
        a, b, scores = matching_neighbours(catalog, method, ids, labels, distances, threshold)
        found_a.append(a)
        found_b.append(b)
        found_s.append(scores)

    for ids, labels, distances in index.neighbour_chunks(NEIGHBOURS, NEIGHBOURS_EF):
        collect(ids, labels, distances)
        if transforms and callable(turned):
            for vectors in turned(catalog.signature_values(method.signature_name, ids.tolist())):
                labels, distances = index.knn(vectors, TURNED_NEIGHBOURS, ef=TURNED_EF)
                collect(ids, labels, distances)
    ids = index.ids
    class_of, count = hash_classes(catalog, ids)
    if not found_a:
        empty = np.zeros(0, dtype=np.int64)
        return class_pairs(method, ids, class_of, count, empty, empty, np.zeros(0))
    position = Lookup(ids, np.arange(len(ids)))
    a = class_of[position.of(np.concatenate(found_a))]
    b = class_of[position.of(np.concatenate(found_b))]
    scores = np.concatenate(found_s)
    other = a != b
    return class_pairs(method, ids, class_of, count, a[other], b[other], scores[other])


def signature_classes(catalog: Catalog, method: Method) -> tuple[np.ndarray, np.ndarray, int]:
    """(the ids of the images with a signature of ``method``, sorted; their classes; how many)."""
    ids = np.asarray(catalog.signature_ids(method.signature_name), dtype=np.int64)
    return (ids, *hash_classes(catalog, ids))


def hash_classes(catalog: Catalog, ids: np.ndarray) -> tuple[np.ndarray, int]:
    """(class of each of ``ids`` (sorted), how many classes) for a vector method: byte-identical files
    (one content hash) form one class, so that however many there are, they group together even where
    the index returns only some of them as neighbours. Classes are numbered in the order of their first
    image; only the few shared hashes are read."""
    first = np.arange(len(ids))  # the position of each image's class's first image
    shared = catalog.shared_content_hashes()
    if shared:
        at = Lookup(ids, np.arange(len(ids))).of(np.fromiter(map(itemgetter(0), shared), dtype=np.int64))
        _, by_hash = np.unique(
            np.asarray(list(map(itemgetter(1), shared)), dtype=object), return_inverse=True
        )
        at, by_hash = at[at >= 0], by_hash[at >= 0]
        lowest = np.full(int(by_hash.max(initial=-1)) + 1, len(ids), dtype=np.int64)
        np.minimum.at(lowest, by_hash, at)
        first[at] = lowest[by_hash]
    representatives, class_of = np.unique(first, return_inverse=True)
    return class_of.astype(np.int64), len(representatives)
