"""The matching pairs a question asks for: the search layer's near pairs of a method (stored, searched,
or from the HNSW index), between classes of identical signatures, verified by local features where
the method asks for it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from catalog.errors import UsageError
from catalog.grouping.early import EarlyReads
from catalog.grouping.options import Options
from catalog.methods import Method, catalogue_method, check_threshold, get_method
from catalog.search.bits import all_codes, codes_from_bytes, hamming_pairs
from catalog.search.pairs import Lookup, stored_pairs, stored_vector_pairs, vector_pairs_cover
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
    from catalog.search.verdicts import KeptVerdicts


@dataclass(eq=False)
class Pairs:
    """Matching pairs between classes of images with identical signatures.

    Image ``image_ids[k]`` is in class ``class_of[k]`` (``classes`` lists them per class); an edge
    (``left[k]``, ``right[k]``) joins two classes with the method's score ``scores[k]``. Members of one
    class score as identical."""

    image_ids: np.ndarray
    class_of: np.ndarray
    count: int  # how many classes
    left: np.ndarray
    right: np.ndarray
    scores: np.ndarray
    identical: float  # the score of identical signatures (0 for distances, 1 for similarities)
    #: Each class's upright code, where the pairs are a hash method's stored ones.
    codes: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        classes: list[list[int]],
        left: np.ndarray,
        right: np.ndarray,
        scores: np.ndarray,
        identical: float,
    ) -> Pairs:
        """From a list of image ids per class."""
        sizes = [len(c) for c in classes]
        ids = np.fromiter(itertools.chain.from_iterable(classes), dtype=np.int64, count=sum(sizes))
        class_of = np.repeat(np.arange(len(classes)), sizes)
        return cls(ids, class_of, len(classes), left, right, scores, identical)

    @cached_property
    def classes(self) -> list[list[int]]:
        """The image ids of each class."""
        return _split_classes(self.image_ids, self.class_of, self.count)

    def keeping(self, keep: np.ndarray) -> Pairs:
        """These classes with only the pairs ``keep`` selects."""
        return Pairs(
            self.image_ids,
            self.class_of,
            self.count,
            self.left[keep],
            self.right[keep],
            self.scores[keep],
            self.identical,
            self.codes,
        )


def near_pairs(
    catalog: Catalog,
    method: Method,
    threshold: float,
    transforms: bool = False,
    early: Callable[[], object] | None = None,
) -> Pairs:
    """Every matching pair of the catalogue's images, as :class:`Pairs`. ``early``: gives what
    :func:`early_signatures` read meanwhile in another process (or None)."""
    if method.kind == "local":
        raise UsageError(
            f"{method.name} only verifies the pairs of cnn and cnn-euclidean: choose another method"
        )
    if transforms and method.kind == "key":
        raise UsageError(f"{method.name} matches equal files only: --transforms does not apply")
    if method.kind == "vector":
        return _vector_pairs(catalog, method, threshold, transforms, early)  # type: ignore[arg-type]
    if method.kind == "bits" and not transforms:
        stored = stored_pairs(catalog, method, threshold)
        if stored is not None:
            image_ids, inverse, left, right, distances, codes = stored
            count = int(inverse.max()) + 1 if len(inverse) else 0
            return Pairs(image_ids, inverse, count, left, right, distances.astype(np.float32), 0.0, codes)
    ids, values = catalog.signatures(method.name)
    if method.kind == "key":
        empty = np.zeros(0, dtype=np.int64)
        return Pairs.of(_classes(ids, values), empty, empty, np.zeros(0), identical=0.0)
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
    left, right, scores = _best_per_pair(i % m, j % m, scores, higher_is_similar=False)
    return Pairs(image_ids, inverse, m, left, right, scores, identical=0.0)


def _split_classes(ids: np.ndarray, inverse: np.ndarray, count: int) -> list[list[int]]:
    """Image ids grouped by class (``inverse[k]`` is the class of ``ids[k]``; ``count`` classes)."""
    counts = np.bincount(inverse, minlength=count)
    if len(counts) == len(ids):  # every class one image: no sorting, one list each
        ordered = np.empty(len(ids), dtype=ids.dtype)
        ordered[inverse] = ids
        return [[i] for i in ordered.tolist()]
    order = np.argsort(inverse, kind="stable")
    ordered_ids = ids[order].tolist()
    ends = np.cumsum(counts).tolist()
    return [ordered_ids[begin:end] for begin, end in zip([0, *ends[:-1]], ends, strict=True)]


def _classes(ids: list[int], values: list[bytes]) -> list[list[int]]:
    by_value: dict[bytes, list[int]] = {}
    for image_id, value in zip(ids, values, strict=True):
        by_value.setdefault(value, []).append(image_id)
    return list(by_value.values())


#: From this many pairs on, the best of each pair is found by compiled code (:mod:`catalog.grouping.kernels`).
COMPILED_PAIRS = 1_000_000


def _best_per_pair(
    a: np.ndarray, b: np.ndarray, scores: np.ndarray, higher_is_similar: bool, ordered: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One edge per unordered pair (low, high), with its best score (``ordered``: each ``a[k]`` is
    already the lower)."""
    low, high = (a, b) if ordered else (np.minimum(a, b), np.maximum(a, b))
    if not len(low):
        return low, high, scores
    if len(low) >= COMPILED_PAIRS:
        from catalog.grouping import kernels as reference

        return reference.best_per_pair(int(high.max()) + 1, low, high, scores, higher_is_similar)  # type: ignore[no-any-return]
    key = low.astype(np.int64) * (int(high.max()) + 1) + high
    best_first = np.argsort(-scores if higher_is_similar else scores, kind="stable")
    order = best_first[np.argsort(key[best_first], kind="stable")]  # by pair, best score first
    del best_first
    keys = key[order]
    first = order[np.r_[True, keys[1:] != keys[:-1]]]
    return low[first], high[first], scores[first]


def _vector_pairs(
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
            return read if read is not None else _signature_classes(catalog, method)  # type: ignore[return-value]

        stored = stored_vector_pairs(catalog, method, threshold, transforms, classes)
        if stored is not None:
            return _class_pairs(method, *classes(), *stored, ordered=True)
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
    class_of, count = _hash_classes(catalog, ids)
    if not found_a:
        empty = np.zeros(0, dtype=np.int64)
        return _class_pairs(method, ids, class_of, count, empty, empty, np.zeros(0))
    position = Lookup(ids, np.arange(len(ids)))
    a = class_of[position.of(np.concatenate(found_a))]
    b = class_of[position.of(np.concatenate(found_b))]
    scores = np.concatenate(found_s)
    other = a != b
    return _class_pairs(method, ids, class_of, count, a[other], b[other], scores[other])


def _class_pairs(
    method: Method,
    ids: np.ndarray,
    class_of: np.ndarray,
    count: int,
    a: np.ndarray,
    b: np.ndarray,
    scores: np.ndarray,
    ordered: bool = False,
) -> Pairs:
    """:class:`Pairs` of the images ``ids`` (sorted; in classes ``class_of``, ``count`` of them) from
    pairs of different classes (``a[k]``, ``b[k]``; ``ordered``: ``a[k] < b[k]``), each pair kept once
    with its best score."""
    identical = 1.0 if method.higher_is_similar else 0.0
    left, right, scores = _best_per_pair(a, b, scores, method.higher_is_similar, ordered)
    return Pairs(ids, class_of, count, left, right, scores, identical)


def _signature_classes(catalog: Catalog, method: Method) -> tuple[np.ndarray, np.ndarray, int]:
    """(the ids of the images with a signature of ``method``, sorted; their classes; how many)."""
    ids = np.asarray(catalog.signature_ids(method.signature_name), dtype=np.int64)
    return (ids, *_hash_classes(catalog, ids))


def early_signatures(method: Method) -> Callable[[Catalog], object] | None:
    """What :func:`near_pairs` can have read by another process meanwhile (``EarlyReads``' first
    read): a vector method's ids and classes. A hash method's codes are read here: the reader's table
    would come a second later, and this process would wait for it."""
    if method.kind == "vector":
        return lambda catalog: _signature_classes(catalog, method)
    return None


def _hash_classes(catalog: Catalog, ids: np.ndarray) -> tuple[np.ndarray, int]:
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


def matching_pairs(
    catalog: Catalog,
    method_name: str,
    threshold: float | None,
    options: Options,
    reads: EarlyReads | None = None,
) -> tuple[Method, float, Pairs, Verification | None, bool]:
    """(method, threshold, pairs, their verification if they are to be verified, whether turned copies
    were searched). ``verify`` None: when the method has a verifier and the catalogue its signatures;
    ``transforms`` None: the method's default. ``reads``: started here, once the method is known."""
    stored = catalog.methods()
    method = catalogue_method(method_name, options.cnn, stored)
    transforms = method.transforms_by_default if options.transforms is None else options.transforms
    verify = options.verify
    verifier = method.verified_by
    if verify and verifier is None:
        raise UsageError(f"{method.name} pairs are not verified: --verify applies to cnn and cnn-euclidean")
    if verify and verifier not in stored:
        raise UsageError(
            f"this catalogue has no {verifier} features to verify pairs with; add them with "
            f"`catalog index PATH --methods {verifier}`"
        )
    verifying = verifier is not None and verifier in stored and verify is not False
    if threshold is None and verifying:
        threshold = method.verified_threshold
    threshold = check_threshold(method, threshold)
    if reads is not None:
        reads.start(early_signatures(method))
    pairs = near_pairs(catalog, method, threshold, transforms, reads.first if reads is not None else None)
    verification = (
        Verification(catalog, method, pairs, get_method(verifier)) if verifier and verifying else None
    )
    return method, threshold, pairs, verification, transforms


class Verification:
    """Confirms a method's pairs that score below its ``verify_above`` by ``verifier``'s local features,
    each pair once, on demand: reference grouping asks only about the pairs of each new reference with
    the images not yet grouped, a fraction of all pairs in a dense library. A pair with an image that
    lacks the features (indexed before they were) is kept without asking: which images have them is
    read once."""

    def __init__(self, catalog: Catalog, method: Method, pairs: Pairs, verifier: Method):
        self.catalog, self.verifier = catalog, verifier
        first = np.full(pairs.count, -1, dtype=np.int64)
        first[pairs.class_of[::-1]] = pairs.image_ids[::-1]  # each class's first image
        self.first = first.tolist()
        featured = np.isin(first, np.asarray(catalog.signature_ids(verifier.name), dtype=np.int64))
        unsure = ~method.is_match(pairs.scores, method.verify_above)
        #: The pairs to ask about: unsure, both sides with features.
        self.asked = unsure & featured[pairs.left] & featured[pairs.right]
        self.unsure = set(zip(pairs.left[self.asked].tolist(), pairs.right[self.asked].tolist(), strict=True))
        self.verdicts: dict[tuple[int, int], bool] = {}
        self.left, self.right = pairs.left, pairs.right
        #: Verdicts of earlier answers (``catalog.search.verdicts``), read by :meth:`recall`; the content hash
        #: of each asked class's first image, their key.
        self.kept: KeptVerdicts | None = None
        self.hashes: dict[int, str] = {}

    def recall(self) -> None:
        """Take the verdicts kept from earlier answers for the pairs to ask about (once): the verifier
        is then asked only about the others."""
        if self.kept is not None:
            return
        from catalog.search.verdicts import KeptVerdicts

        self.kept = KeptVerdicts.of(self.catalog, self.verifier)
        asked = np.flatnonzero(self.asked)
        if not len(asked):
            return
        left, right = self.left[asked], self.right[asked]
        classes = np.unique(np.concatenate([left, right])).tolist()
        by_id = self.catalog.content_hashes([self.first[c] for c in classes])
        self.hashes = {c: by_id[self.first[c]] for c in classes if self.first[c] in by_id}
        if not self.kept.known:
            return
        for a, b in self.unsure:
            low, high = min(a, b), max(a, b)
            if high in self.hashes and low in self.hashes:
                verdict = self.kept.get(self.hashes[high], self.hashes[low])
                if verdict is not None:
                    self.verdicts[(low, high)] = verdict

    def known(self) -> np.ndarray:
        """Per pair: -1 (not decided yet, or not asked about), 0 (rejected) or 1 (confirmed); the kept
        verdicts recalled first."""
        self.recall()
        known = np.full(len(self.asked), -1, dtype=np.int8)
        asked = np.flatnonzero(self.asked)
        low = np.minimum(self.left[asked], self.right[asked]).tolist()
        high = np.maximum(self.left[asked], self.right[asked]).tolist()
        for k, key in zip(asked.tolist(), zip(low, high, strict=True), strict=True):
            verdict = self.verdicts.get(key)
            if verdict is not None:
                known[k] = verdict
        return known

    def save(self) -> None:
        """Keep what the verifier was asked this time, for the next answer."""
        if self.kept is not None:
            self.kept.save()

    def pending(self) -> int:
        """How many pairs are still to be verified."""
        return len(self.unsure) - len(self.verdicts)

    def confirm(
        self, reference: int, candidates: list[int], features: Mapping[int, bytes] | None = None
    ) -> list[int]:
        """The candidate classes whose pair with ``reference`` is sure or confirmed (``features``: the
        verifier's signatures by image id, when read already)."""
        keys = {n: (min(reference, n), max(reference, n)) for n in candidates}
        self.recall()
        todo = [n for n in candidates if keys[n] in self.unsure and keys[n] not in self.verdicts]
        if todo:
            if features is None:
                ids = [self.first[c] for c in (reference, *todo)]
                features = self.catalog.signature_map(self.verifier.name, ids)
            for n in todo:
                # One way for every pair, whichever of the two is the reference (the verifier is not
                # symmetric): a verdict never depends on the order in which the loop meets the pairs.
                low, high = keys[n]
                a, b = features.get(self.first[high]), features.get(self.first[low])
                if a is None or b is None:
                    self.verdicts[keys[n]] = True
                    continue
                verdict = self.verdicts[keys[n]] = self.verifier.confirms(a, b)
                if self.kept is not None and high in self.hashes and low in self.hashes:
                    self.kept.add(self.hashes[high], self.hashes[low], verdict)
        return [n for n in candidates if keys[n] not in self.unsure or self.verdicts[keys[n]]]

    def decide(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Whether each pair (``left[k]``, ``right[k]``) of classes is kept (verified where asked). The
        features of all of them are read in one go."""
        self.recall()
        by_class: dict[int, list[int]] = {}
        low, high = np.minimum(left, right).tolist(), np.maximum(left, right).tolist()
        for a, b in zip(low, high, strict=True):
            if (a, b) in self.unsure and (a, b) not in self.verdicts:  # not known yet: read and ask
                by_class.setdefault(a, []).append(b)
        classes = sorted({c for a, others in by_class.items() for c in (a, *others)})
        features = self.catalog.signature_map(self.verifier.name, [self.first[c] for c in classes])
        for a, others in by_class.items():
            self.confirm(a, others, features)
        keys = zip(low, high, strict=True)
        return np.asarray([k not in self.unsure or self.verdicts[k] for k in keys], dtype=bool)

    def all(self, pairs: Pairs) -> Pairs:
        """``pairs`` (those this verification was made for) without those verification rejects (every
        pair to ask about checked)."""
        keep = np.ones(len(pairs.left), dtype=bool)
        asked = np.flatnonzero(self.asked)
        keep[asked] = self.decide(pairs.left[asked], pairs.right[asked])
        return pairs.keeping(keep)
