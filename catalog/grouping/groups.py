"""Matching pairs -> groups around a reference image, and copy counts.

The pairs come from the search layer: every two images whose signatures are within the threshold
(:func:`near_pairs`). Groups are made from them in one of two ways:

- ``reference`` (the default): images are taken in the order a person would keep them (largest
  resolution, then largest file, then oldest; :func:`keep_order`). Each image not yet grouped that
  matches images not yet grouped becomes a reference, and those images - each a direct match of the
  reference - become its group. Nothing joins a group through a chain of look-alikes, and every member
  carries its score against the reference. Chosen over greedy merging by pair strength and over
  components, by measurement (BENCHMARKS.md, "Groups a person can trust").
- ``components``: connected components of the pairs (what catalog did before): A~B and B~C put A and C
  together however far apart they are. Scores are still against the group's reference.

Images with identical signatures form one class: they are matched, grouped and scored together, so
a thousand byte-identical copies cost one search entry, not a million pairs.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

import numpy as np

from catalog.config import DEFAULT_CNN, CnnChoice
from catalog.errors import UsageError
from catalog.grouping.early import EarlyReads
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
from catalog.store import Catalog, ImageInfo
from catalog.store.columns import ImageTable

if TYPE_CHECKING:
    from catalog.methods import VectorMethod
    from catalog.search.verdicts import KeptVerdicts

GroupingKind = Literal["reference", "components"]


@dataclass(frozen=True, slots=True)
class Member:
    image: ImageInfo
    #: Score against the group's reference (the method's own measure); None for the reference itself.
    score: float | None


@dataclass(eq=False)
class GroupTable:
    """Groups as columns: group ``g``'s images are ``member[starts[g]:starts[g + 1]]`` (positions in
    ``images``), its reference first; ``score[k]`` is image ``member[k]``'s score against its
    reference (NaN for the reference itself). Largest group first."""

    images: ImageTable
    member: np.ndarray
    starts: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def of(cls, groups: Sequence[Sequence[Member]]) -> GroupTable:
        images = ImageTable.of({m.image.id: m.image for g in groups for m in g}.values())
        ids = np.fromiter((m.image.id for g in groups for m in g), dtype=np.int64)
        scores = [np.nan if m.score is None else m.score for g in groups for m in g]
        starts = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum([len(g) for g in groups], out=starts[1:])
        return cls(images, images.positions(ids), starts, np.asarray(scores, dtype=np.float64))

    def group(self, g: int) -> list[Member]:
        """Group ``g`` (from 0) as a :class:`Member` list."""
        begin, end = int(self.starts[g]), int(self.starts[g + 1])
        return [
            Member(self.images.info(p), None if s != s else s)
            for p, s in zip(self.member[begin:end].tolist(), self.score[begin:end].tolist(), strict=True)
        ]

    def members(self) -> list[list[Member]]:
        """The groups as :class:`Member` lists."""
        return [self.group(g) for g in range(len(self))]


@dataclass(eq=False)
class Grouping:
    method: str
    threshold: float
    grouping: GroupingKind
    transforms: bool
    verified: bool  # pairs below the method's verify_above were verified by local features
    table: GroupTable  # two or more images each, the reference first; largest group first
    images: int  # how many images were compared

    @cached_property
    def groups(self) -> list[list[Member]]:
        """:attr:`table` as lists of :class:`Member`."""
        return self.table.members()


#: From this many pairs on, components are found by compiled code
#: (:func:`catalog.grouping.kernels.components`).
COMPILED_COMPONENTS_FROM = 200_000


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The component of each of ``n`` nodes joined by the edges (left[k], right[k]): the smallest node
    of each, as int64 (union-find; compiled for many edges, where SciPy's graph would take longer to
    import and build than the union-find takes)."""
    if len(left) >= COMPILED_COMPONENTS_FROM:
        from catalog.grouping import kernels as reference

        return reference.components(n, left.astype(np.int64), right.astype(np.int64))
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.fromiter((root(x) for x in range(n)), dtype=np.int64, count=n)


@dataclass(frozen=True)
class Scope:
    """Which images an answer is about: ``inside`` limits groups to those with a member under one of its
    folders; ``against`` pairs only images outside those folders with images under them (the reference
    side), as in "what in Downloads is already in my archive?"."""

    inside: tuple[str, ...] = ()
    against: tuple[str, ...] = ()

    @classmethod
    def of(cls, inside: Sequence[str] = (), against: Sequence[str] = ()) -> Scope:
        return cls(tuple(_folder(p) for p in inside), tuple(_folder(p) for p in against))

    def is_inside(self, path: str) -> bool:
        return not self.inside or _under(path, self.inside)

    def is_reference_side(self, path: str) -> bool:
        return _under(path, self.against)


def _folder(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _under(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


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
    pixels, framed, exif, size, when, mtime = _facts(table)
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
) -> np.ndarray:
    """:func:`keep_order` of images given as columns (``path_rank``: each one's place in path order)."""
    n = len(pixels)
    pixel_tier = _tier_ids(pixels, np.arange(n))
    size_tier = np.zeros(n, dtype=np.int64)
    subgroups = np.lexsort((stripped, framed, pixel_tier))
    keys = np.stack([pixel_tier, framed, stripped])[:, subgroups]
    cuts = np.flatnonzero(np.any(keys[:, 1:] != keys[:, :-1], axis=0)) + 1
    for members in np.split(subgroups, cuts):
        size_tier[members] = _tier_ids(size, members)
    return np.lexsort((path_rank, mtime, when, size_tier, stripped, framed, pixel_tier))


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


@dataclass(frozen=True)
class Options:
    """How to answer: the CNN (the catalogue's unless chosen), the grouping, whether to search turned
    copies and verify pairs (None: the method's default), and which images the answer is about."""

    cnn: CnnChoice = DEFAULT_CNN
    grouping: GroupingKind = "reference"
    transforms: bool | None = None
    verify: bool | None = None
    scope: Scope = Scope()


#: From this many classes on, plain reference grouping runs compiled, on columns (:func:`_plain_groups`);
#: below it the Python loop answers before Numba would have loaded (about half a second).
COMPILED_FROM = 20_000


def find_groups(
    catalog: Catalog,
    method_name: str,
    threshold: float | None = None,
    options: Options = Options(),  # noqa: B008 - frozen, never changed
) -> Grouping:
    """Groups of two or more duplicates, each its reference first, largest group first; only the
    images that have a match are loaded."""
    grouping, scope = options.grouping, options.scope
    plain = grouping == "reference" and not scope.against and not catalog.marks()
    with EarlyReads(catalog, background=plain) as reads:  # the table is read while pairs are found
        method, threshold, pairs, verification, transforms = matching_pairs(
            catalog, method_name, threshold, options, reads
        )
        count = len(pairs.image_ids)
        verified = verification is not None
        if plain and pairs.count >= COMPILED_FROM:
            table = _plain_groups(catalog, pairs, method, scope, verification, reads.table())
            if verification is not None:
                verification.save()
            return Grouping(method.name, threshold, grouping, transforms, verified, table, count)
    table = _python_groups(catalog, pairs, method, grouping, scope, verification)
    if verification is not None:
        verification.save()
    return Grouping(method.name, threshold, grouping, transforms, verified, table, count)


def regroup(catalog: Catalog, pairs: Pairs, method: Method) -> GroupTable:
    """The reference groups of ``pairs`` (some of the catalogue's images, with every pair they have),
    as :func:`find_groups` makes them with default options: marks applied, no folders or verification."""
    if pairs.count >= COMPILED_FROM and not catalog.marks():
        return _plain_groups(
            catalog, pairs, method, Scope(), None, catalog.image_table(pairs.image_ids.tolist())
        )
    return _python_groups(catalog, pairs, method, "reference", Scope(), None)


def _python_groups(
    catalog: Catalog,
    pairs: Pairs,
    method: Method,
    grouping: GroupingKind,
    scope: Scope,
    verification: Verification | None,
) -> GroupTable:
    """The groups as the Python loop makes them (marks, reference folders, components, or too few
    images for the compiled loop to pay)."""
    if verification is not None and grouping == "components":
        pairs = verification.all(pairs)
    classes = pairs.classes
    linked = np.unique(np.concatenate([pairs.left, pairs.right]))
    involved = set(linked.tolist()) | {c for c, members in enumerate(classes) if len(members) > 1}
    info = catalog.image_info(i for c in involved for i in classes[c])
    # Classes hold images the catalogue just listed; one deleted meanwhile drops out here.
    members_of = {c: [info[i] for i in classes[c] if i in info] for c in involved}
    best = {c: m[first_to_keep(m)] for c, m in members_of.items() if m}
    marks = Marks.of(catalog, members_of, method)
    pairs = marks.unmarked(pairs)
    neighbours = _adjacency(pairs)
    if grouping == "components":
        raw = _component_groups(best, pairs, len(classes))
    else:
        confirm = verification.confirm if verification is not None else None
        raw = _reference_groups(best, neighbours, members_of, scope, confirm, marks)
    groups = []
    for reference_class, member_classes in raw:
        group = _members(
            reference_class, member_classes, members_of, best, neighbours, pairs, method, catalog
        )
        group = marks.split(group)
        if scope.against:  # only the files outside the reference folders (and inside --in) that match
            group = group[:1] + [m for m in group[1:] if _outside_against(scope, m.image.path)]
            if len(group) > 1:
                groups.append(group)
        elif len(group) > 1 and any(scope.is_inside(m.image.path) for m in group):
            groups.append(group)
    groups.sort(key=lambda g: (-len(g), g[0].image.path))
    return GroupTable.of(groups)


def _plain_groups(
    catalog: Catalog,
    pairs: Pairs,
    method: Method,
    scope: Scope,
    verification: Verification | None = None,
    table: ImageTable | None = None,
) -> GroupTable:
    """Reference groups as :func:`find_groups` makes them without marks or reference folders, on
    columns: the catalogue's images as a table (``table``, or read here), the loop compiled
    (:mod:`catalog.grouping.kernels`), members ordered by one sort.

    With ``verification``, the loop runs as if every pair were confirmed and says which pairs still to
    verify it used; those are verified, the rejected ones dropped, and the loop runs again until it uses
    none: then it made the choices of the Python loop, which verifies each pair as it meets it (a
    verdict depends on the pair alone)."""
    from catalog.grouping import kernels as reference

    n = pairs.count
    sizes = np.bincount(pairs.class_of, minlength=n)
    involved = sizes > 1
    involved[pairs.left] = True
    involved[pairs.right] = True
    if table is None:
        table = catalog.image_table()
    owner = pairs.class_of
    position = table.positions(pairs.image_ids)
    # Classes hold images the catalogue just listed; one deleted meanwhile drops out here.
    owner, position = owner[position >= 0], position[position >= 0]
    by_class = np.argsort(owner, kind="stable")
    owner, position = owner[by_class], position[by_class]
    del by_class
    present = np.bincount(owner, minlength=n)
    class_starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(present, out=class_starts[1:])
    facts = _facts(table)
    pixels, framed, exif, size, when, mtime = facts
    best = reference.class_bests(class_starts, position, facts)
    eligible = involved & (present > 0)
    candidates = np.flatnonzero(eligible)
    b = best[candidates]
    order = candidates[keep_order_columns(pixels[b], framed[b], ~exif[b], size[b], when[b], mtime[b], b)]
    starts, targets, scores, pair, slots = reference.neighbours(n, pairs.left, pairs.right, pairs.scores)
    usable = np.ones(len(targets), dtype=bool)
    pending = verification.asked[pair] if verification is not None else np.zeros(len(targets), dtype=bool)
    if verification is not None:  # verdicts of earlier answers: decided before the first round
        known = verification.known()
        decided = np.flatnonzero(known >= 0)
        pending[slots[decided]] = False
        usable[slots[decided[known[decided] == 0]]] = False
    while True:
        refs, bounds, member_classes, member_scores, asked = reference.reference_groups(
            order, starts, targets, scores, usable, pending, eligible, present > 1, best, facts
        )
        if verification is None or not len(asked):
            break
        decided = np.unique(pair[asked])
        verdicts = verification.decide(pairs.left[decided], pairs.right[decided])
        pending[slots[decided]] = False  # both edges of each pair decided
        usable[slots[decided[~verdicts]]] = False
    del starts, targets, scores, pair, slots, usable, pending, order, candidates
    # Every image of each group's classes: the reference class first (scores as identical).
    groups = len(refs)
    group_classes = np.concatenate([refs, member_classes])
    group_of = np.concatenate([np.arange(groups), np.repeat(np.arange(groups), np.diff(bounds))])
    class_score = np.concatenate([np.full(groups, pairs.identical), member_scores.astype(np.float64)])
    counts = present[group_classes]
    first = np.repeat(class_starts[group_classes] - (np.cumsum(counts) - counts), counts)
    image = position[first + np.arange(len(first))]
    group_of = np.repeat(group_of, counts)
    score = _rounded(np.repeat(class_score, counts))
    reference_image = best[refs]
    is_reference = image == reference_image[group_of]
    score[is_reference] = np.nan
    keep = np.ones(groups, dtype=bool)
    if scope.inside:
        inside = np.fromiter((scope.is_inside(table.path[p]) for p in image.tolist()), dtype=bool)
        keep = np.bincount(group_of[inside], minlength=groups) > 0
    group_size = np.bincount(group_of, minlength=groups)
    keep &= group_size > 1
    rank = np.full(groups, -1, dtype=np.int64)
    kept = np.flatnonzero(keep)
    rank[kept[np.lexsort((reference_image[kept], -group_size[kept]))]] = np.arange(len(kept))
    listed = rank[group_of] >= 0
    signed = -score if method.higher_is_similar else score
    order = np.lexsort((image, np.nan_to_num(signed), ~is_reference, rank[group_of]))
    order = order[listed[order]]
    starts = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(group_size[kept[np.argsort(rank[kept])]], out=starts[1:])
    return GroupTable(table, image[order], starts, score[order])


def _facts(table: ImageTable) -> tuple[np.ndarray, ...]:
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


def _rounded(scores: np.ndarray) -> np.ndarray:
    """Each score as :func:`_round` gives it. Scores a float32 holds exactly (hash distances, stored
    ``cnn`` scores: every large answer's) are rounded by NumPy (``rint(x * 1e6) / 1e6``), which gives
    the same: for such an x, x * 1e6 is computed within far less than its distance to any half unit (or
    exactly, at a tie), so ``rint`` picks the integer decimal rounding picks, and the division gives the
    double nearest to it, as ``round`` does. Other scores: each distinct value through :func:`_round`."""
    if np.array_equal(scores.astype(np.float32).astype(np.float64), scores):
        return np.round(scores.astype(np.float64), 6)  # type: ignore[no-any-return]
    distinct, inverse = np.unique(scores, return_inverse=True)
    return np.asarray([_round(v) for v in distinct.tolist()], dtype=np.float64)[inverse]


class Marks:
    """The "not a duplicate" marks (pairs of content hashes) as they bear on one answer's classes."""

    def __init__(
        self,
        marks: Sequence[tuple[str, str, object]],
        class_hashes: dict[int, list[str]],
        higher_is_similar: bool = False,
    ):
        self.higher = higher_is_similar
        self.against: dict[str, set[str]] = {}
        for a, b, _ in marks:
            self.against.setdefault(a, set()).add(b)
            self.against.setdefault(b, set()).add(a)
        self.hashes = {
            c: {h for h in hs if h in self.against} for c, hs in class_hashes.items() if self.against
        }
        self.hashes = {c: hs for c, hs in self.hashes.items() if hs}

    @classmethod
    def of(cls, catalog: Catalog, members_of: dict[int, list[ImageInfo]], method: Method) -> Marks:
        marks = catalog.marks()
        marked = {h for a, b, _ in marks for h in (a, b)}
        hashes = {
            c: [im.content_hash or "" for im in m if im.content_hash in marked]
            for c, m in members_of.items()
            if marked and any(im.content_hash in marked for im in m)
        }
        return cls(marks, hashes, method.higher_is_similar)

    def conflict(self, a: int, b: int) -> bool:
        """Whether an image of class ``a`` is marked "not a duplicate" of one of class ``b``."""
        ha, hb = self.hashes.get(a), self.hashes.get(b)
        if not ha or not hb:
            return False
        return any(self.against[h] & hb for h in ha)

    def unmarked(self, pairs: Pairs) -> Pairs:
        """``pairs`` without the marked ones."""
        if not self.hashes or not len(pairs.left):
            return pairs
        keep = np.asarray(
            [not self.conflict(a, b) for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)]
        )
        return pairs.keeping(keep)

    def compatible(self, reference: int, candidates: list[int], scores: dict[int, float]) -> list[int]:
        """The candidates that can share a group with ``reference`` and each other: taken best score
        first, each kept unless marked against one kept before it."""
        if not self.hashes or not any(c in self.hashes for c in candidates):
            return candidates
        kept: list[int] = []
        sign = -1.0 if self.higher else 1.0
        for c in sorted(candidates, key=lambda n: (sign * scores.get(n, 0.0), n)):
            if not self.conflict(reference, c) and not any(self.conflict(k, c) for k in kept):
                kept.append(c)
        return [c for c in candidates if c in kept]

    def split(self, group: list[Member]) -> list[Member]:
        """A group without any image marked against one before it (identical signatures of different
        files, or components joined through others)."""
        if not self.hashes:
            return group
        kept: list[Member] = []
        seen: set[str] = set()
        for member in group:
            h = member.image.content_hash or ""
            if self.against.get(h, set()) & seen:
                continue
            kept.append(member)
            seen.add(h)
        return kept


def _outside_against(scope: Scope, path: str) -> bool:
    return scope.is_inside(path) and not scope.is_reference_side(path)


class Adjacency:
    """class -> {neighbouring class: score}, held as compressed rows (NumPy), not as a dict per class: a
    library with bursts has millions of pairs, and a dict for each would cost gigabytes. ``get`` builds
    one class's dict when it is asked for."""

    def __init__(self, pairs: Pairs):
        n = pairs.count
        kind = np.int32 if n < 2**31 else np.int64
        source = np.concatenate([pairs.left, pairs.right]).astype(kind)
        order = np.argsort(source, kind="stable")
        self.starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(source, minlength=n), out=self.starts[1:])
        del source
        self.targets = np.concatenate([pairs.right, pairs.left]).astype(kind)[order]
        self.scores = np.concatenate([pairs.scores, pairs.scores])[order]

    def get(self, c: int, default: dict[int, float] | None = None) -> dict[int, float]:
        start, end = int(self.starts[c]), int(self.starts[c + 1])
        if start == end:
            return {} if default is None else default
        return dict(zip(self.targets[start:end].tolist(), self.scores[start:end].tolist(), strict=True))


def _adjacency(pairs: Pairs) -> Adjacency:
    return Adjacency(pairs)


def _reference_groups(
    best: dict[int, ImageInfo],
    neighbours: Adjacency,
    members_of: dict[int, list[ImageInfo]],
    scope: Scope,
    confirm: Callable[[int, list[int]], list[int]] | None,
    marks: Marks | None = None,
) -> list[tuple[int, list[int]]]:
    """(reference class, member classes) for each group, references taken in keep order; ``confirm``
    keeps the candidates whose pair with the reference verification confirms; two images marked "not
    duplicates" never join one group (the later candidate is left for another group)."""
    taken: set[int] = set()

    def candidates_of(c: int) -> list[int]:
        found = [
            n
            for n in neighbours.get(c, {})
            if n not in taken and n in best and (not scope.against or _outside_against(scope, best[n].path))
        ]
        found = confirm(c, found) if confirm is not None and found else found
        return marks.compatible(c, found, neighbours.get(c, {})) if marks is not None else found

    groups = []
    classes = list(best)
    for c in [classes[k] for k in keep_order([best[c] for c in classes])]:
        if c in taken or (scope.against and not scope.is_reference_side(best[c].path)):
            continue
        candidates = candidates_of(c)
        # The keep order ties resolutions and sizes within 5 %, so which image of a group is best is
        # decided among the group, not the whole library: the best of the group becomes its reference
        # (once), and the group is what matches that one directly.
        circle = [c, *candidates]
        first = circle[first_to_keep([best[k] for k in circle])]
        if first != c and not (scope.against and not scope.is_reference_side(best[first].path)):
            c, candidates = first, candidates_of(first)
        if candidates or len(members_of[c]) > 1:
            taken.add(c)
            taken.update(candidates)
            groups.append((c, candidates))
    return groups


def _component_groups(best: dict[int, ImageInfo], pairs: Pairs, n: int) -> list[tuple[int, list[int]]]:
    labels = components(n, pairs.left, pairs.right)
    by_label: dict[int, list[int]] = {}
    for c in best:
        by_label.setdefault(int(labels[c]), []).append(c)
    groups = []
    for classes in by_label.values():
        reference = classes[first_to_keep([best[c] for c in classes])]
        groups.append((reference, [c for c in classes if c != reference]))
    return groups


def _members(
    reference_class: int,
    member_classes: list[int],
    members_of: dict[int, list[ImageInfo]],
    best: dict[int, ImageInfo],
    neighbours: Adjacency,
    pairs: Pairs,
    method: Method,
    catalog: Catalog,
) -> list[Member]:
    """The group's images, the reference first, then the others best score first (then path)."""
    reference = best[reference_class]
    scores = {reference_class: pairs.identical}
    direct = neighbours.get(reference_class, {})
    missing = [c for c in member_classes if c not in direct]
    scores.update({c: direct[c] for c in member_classes if c in direct})
    if missing:  # components: members that reached the group through others
        scores.update(_scores_against(catalog, method, reference, [best[c] for c in missing], missing))
    rest = [
        Member(image, _round(scores[c]))
        for c in [reference_class, *member_classes]
        for image in members_of[c]
        if image is not reference
    ]
    rest.sort(
        key=lambda m: (-(m.score or 0.0) if method.higher_is_similar else (m.score or 0.0), m.image.path)
    )
    return [Member(reference, None), *rest]


def _scores_against(
    catalog: Catalog, method: Method, reference: ImageInfo, images: list[ImageInfo], classes: list[int]
) -> dict[int, float]:
    name = method.signature_name
    values = catalog.signature_values(name, [reference.id, *(im.id for im in images)])
    scores = method.score_pairs([values[0]] * len(images), values[1:])
    return dict(zip(classes, scores.tolist(), strict=True))


def _round(score: float) -> float:
    return round(float(score), 6)


class CopyCounts(Mapping[str, int]):
    """How many other copies each listed image has: ``counts[k]`` for the image at ``listed[k]`` of
    ``images``, most copies first (then path). Also a mapping path -> copies."""

    def __init__(self, images: ImageTable, listed: np.ndarray, counts: np.ndarray):
        self.images, self.listed, self.counts = images, listed, counts

    @cached_property
    def _by_path(self) -> dict[str, int]:
        paths = self.images.path
        return dict(zip([paths[p] for p in self.listed.tolist()], self.counts.tolist(), strict=True))

    def __getitem__(self, path: str) -> int:
        return self._by_path[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_path)

    def __len__(self) -> int:
        return len(self.listed)


def copy_counts(
    catalog: Catalog,
    method_name: str,
    threshold: float | None = None,
    options: Options = Options(),  # noqa: B008 - frozen, never changed
) -> tuple[str, float, CopyCounts]:
    """(method, threshold, copies) for every readable image in scope: how many other copies of it
    the catalogue holds.

    ``reference``: the images that match it directly (no chains); ``components``: the other images
    of its connected component. With ``scope.against``, only copies under those folders count, and only
    images outside them are listed. Worked on columns: a million images cost a few array passes."""
    with EarlyReads(catalog) as reads:  # the table is read while pairs are found
        method, threshold, pairs, verification, _ = matching_pairs(
            catalog, method_name, threshold, options, reads
        )
        if verification is not None:
            pairs = verification.all(pairs)
            verification.save()
        table = reads.table()
    scope = options.scope
    paths = table.path
    if scope.inside or scope.against:
        listed = np.fromiter((_outside_against(scope, p) for p in paths), dtype=bool, count=len(paths))
        counted = np.fromiter(
            (not scope.against or scope.is_reference_side(p) for p in paths), dtype=bool, count=len(paths)
        )
    else:
        listed = counted = np.ones(len(paths), dtype=bool)
    position = table.positions(pairs.image_ids)
    found = position >= 0
    class_at = np.full(len(paths), -1, dtype=np.int64)  # each image's class (-1: no signature)
    class_at[position[found]] = pairs.class_of[found]
    within = np.zeros(len(paths), dtype=np.int64)  # copies in its own class marked "not duplicates"
    marked = catalog.marks()
    if marked:
        pairs, within = _marked(marked, pairs, table, class_at, counted)
    n = pairs.count
    has = class_at >= 0
    weight = np.bincount(class_at[has & counted], minlength=n).astype(np.float64)
    if options.grouping == "components":
        labels = components(n, pairs.left, pairs.right)
        per_label = np.bincount(labels, weights=weight, minlength=labels.max() + 1 if len(labels) else 0)
        reach = per_label[labels] if len(labels) else weight
    else:
        reach = weight.copy()
        reach += np.bincount(pairs.left, weights=weight[pairs.right], minlength=n)[:n]
        reach += np.bincount(pairs.right, weights=weight[pairs.left], minlength=n)[:n]
    counts = np.where(has, reach[class_at.clip(min=0)].astype(np.int64) - counted - within, 0)
    shown = np.flatnonzero(listed)
    shown = shown[np.lexsort((shown, -counts[shown]))]  # most copies first, then path (table order)
    result = CopyCounts(table, shown, counts[shown])
    return method.name, threshold, result


def _marked(
    marked: Sequence[tuple[str, str, object]],
    pairs: Pairs,
    table: ImageTable,
    class_at: np.ndarray,
    counted: np.ndarray,
) -> tuple[Pairs, np.ndarray]:
    """The pairs without those marked "not duplicates", and how many counted images of each image's own
    class (identical signatures) are marked against it."""
    hashes = {int(table.id[p]): table.content_hash[p] or "" for p in np.flatnonzero(class_at >= 0).tolist()}
    classes = pairs.classes
    marks = Marks(marked, {c: [hashes.get(i, "") for i in m] for c, m in enumerate(classes)})
    pairs = marks.unmarked(pairs)
    within = np.zeros(len(class_at), dtype=np.int64)
    counted_ids = set(table.id[counted].tolist())
    position = dict(zip(table.id.tolist(), range(len(table)), strict=True))
    for k in marks.hashes:
        if len(classes[k]) > 1:
            for i in classes[k]:
                against = marks.against.get(hashes.get(i, ""), set())
                if i in position:
                    within[position[i]] = sum(
                        1 for j in classes[k] if j in counted_ids and hashes.get(j) in against
                    )
    return pairs, within
