"""Groups kept as rows: each hash method's reference groups at its default threshold, marks applied,
stored in ``group_members`` and refreshed by the writers (``index``, ``watch``, the Ray engine, marks)
where images changed, so that ``dupes`` with default options reads them instead of grouping a million
images again.

What changed is told by the store: database triggers add a ``regroup`` row for every signature written
or removed, every image row updated (its facts order the keep) and every "not a duplicate" mark made
or removed, whoever writes (``catalog.store.models.REGROUP_DDL``). A refresh regroups only what those images
touch. Reference groups never reach across the components of the graph of pairs: every member matches
its reference directly. So the groups that can change are

- the stored groups that hold a changed image (a removed or edited image frees its group's members);
- the groups of the components, in the graph of pairs as it is now, of the changed images and of those
  groups' members.

Any other component has the same images and pairs as before, and no group that reached outside it (such
a group held a changed image), so its groups stand. The regrouped images are the union of those
components, grouped with every pair among them (the same grouping as ``dupes`` makes from all images).

Nothing depends on a refresh having run: while a method has ``regroup`` rows (an index interrupted, a
mark made by the review page), or its pairs wait for a refresh, ``dupes`` groups the stored pairs as it
does for any other question (:func:`catalog.grouping.reference.find_groups`). Vector methods keep no
groups here yet: their pairs are verified as they are asked for.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from catalog.grouping.copies import CopyCounts, copy_counts
from catalog.grouping.early import beside_table
from catalog.grouping.keep import KEEP_ORDER_VERSION
from catalog.grouping.options import Options
from catalog.grouping.reference import find_groups, regroup
from catalog.grouping.table import Grouping, GroupTable
from catalog.methods import catalogue_method, check_threshold
from catalog.search.bits import hamming_pairs
from catalog.search.kinds import EqualCodes, Search, search_for
from catalog.search.matches import Pairs
from catalog.search.settled import NearCodes

if TYPE_CHECKING:
    from catalog.methods import Method
    from catalog.store import Catalog

log = logging.getLogger(__name__)

#: Past this share of a method's images changed, its groups are made from all images at once.
WHOLE_SHARE = 0.25


def groups_key(method: Method) -> str | None:
    """What a method's stored groups answer ("THRESHOLD@VERSION;keepN", N the keep order's version);
    None for methods that keep none."""
    key = search_for(method).groups_key()
    return None if key is None else f"{key};keep{KEEP_ORDER_VERSION}"


def refresh(catalog: Catalog, method: Method, cancel: threading.Event | None = None) -> int:
    """Bring ``method``'s stored groups and copy counts up to date with the images changed since the
    last refresh; returns how many images were grouped again. Run after the method's pairs were
    refreshed: while some of its codes wait for their pairs, the groups wait too."""
    name = method.name
    key = groups_key(method)
    if key is None:
        catalog.drop_regroup(name)
        return 0
    search = search_for(method)
    if search.pairs_pending(catalog):
        return 0
    entries, changed = catalog.regroup_entries(name)
    stored = catalog.groups_key(name)
    if stored == key and not entries:
        return 0
    if cancel is not None and cancel.is_set():
        return 0
    # Counted no further than the answer needs: at or past this many, the changes are too few.
    enough = int(len(changed) / WHOLE_SHARE) + 1
    if stored != key or len(changed) > WHOLE_SHARE * max(catalog.signature_count(name, enough), 1):
        signed = _Signed(search, *search.signed(catalog))
        found = find_groups(catalog, name, None, Options())
        counts = _all_counts(catalog, method, signed)
        catalog.replace_groups(name, key, None, _rows(found.table), entries, None, counts)
        return catalog.signature_count(name)
    changed_ids = np.asarray(changed, dtype=np.int64)
    drop = catalog.group_references(name, changed)
    seeds = np.union1d(changed_ids, catalog.group_rows(name, drop)[0])
    near = search.near_codes(catalog)
    was = catalog.copy_rows(name, changed)[1]
    marked = bool(catalog.marks())
    if search.reaches_near and not marked:
        signed = _neighbourhood(catalog, search, near, seeds, changed_ids, was)
    else:
        signed = _Signed(search, *search.signed(catalog))
    pairs = signed.components(seeds, near)
    # The stored groups of those components that hold no changed image: made again with the rest.
    drop = sorted(set(drop) | set(catalog.group_references(name, pairs.image_ids.tolist())))
    table = regroup(catalog, pairs, method)
    if marked:  # marks within a class of identical codes: counted from the pairs, as copies does
        recounted, counts = None, _all_counts(catalog, method, signed)
    else:
        recounted, counts = signed.recount(changed_ids, was, near)
    catalog.replace_groups(name, key, drop, _rows(table), entries, recounted, counts)
    log.debug(
        "%s: %d changed image(s), %d regrouped into %d group(s)",
        name,
        len(changed),
        len(pairs.image_ids),
        len(table),
    )
    return len(pairs.image_ids)


def refresh_all(catalog: Catalog) -> None:
    """Bring every hash method's stored groups up to date (after a mark: its pairs are stored)."""
    from catalog.methods import get_method

    for name in catalog.methods():
        method = get_method(name)
        if groups_key(method) is not None:
            refresh(catalog, method)


class _Signed:
    """Every image that has a signature of the method (sorted ids) with its code (the upright code of a
    hash; the first 8 bytes of an ``exact`` content hash, whose classes are told by the whole hash), and
    its class."""

    def __init__(self, search: Search, ids: np.ndarray, codes: np.ndarray, classes: np.ndarray):
        order = np.argsort(ids, kind="stable")
        self.method = search.method
        self.search = search
        self.ids, self.codes = ids[order], codes[order]
        self.unique, self.class_of, self.sizes = np.unique(
            classes[order], return_inverse=True, return_counts=True
        )
        # Each class's code (a hash method's classes are its codes).
        self.class_code = np.zeros(len(self.unique), dtype=np.uint64)
        self.class_code[self.class_of] = self.codes

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Where each of ``ids`` is (-1: it has no signature now)."""
        if not len(self.ids):
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.searchsorted(self.ids, ids).clip(max=len(self.ids) - 1)
        return np.where(self.ids[at] == ids, at, -1)

    def classes_near(self, codes: np.ndarray, near: NearCodes | EqualCodes) -> np.ndarray:
        """The classes whose code is within the threshold of any of ``codes``."""
        found = near.codes(codes)
        return np.flatnonzero(np.isin(self.class_code, found))

    def components(self, seeds: np.ndarray, near: NearCodes | EqualCodes) -> Pairs:
        """Every image of the components of ``seeds`` in the graph of pairs as it is now, with every
        pair among them (classes of identical codes): the present codes reached step by step through
        the stored pairs' index."""
        reached = np.zeros(len(self.unique), dtype=bool)
        at = self.positions(seeds)
        frontier = np.unique(self.class_of[at[at >= 0]])
        reached[frontier] = True
        while len(frontier) and self.search.reaches_near:
            hit = self.classes_near(self.class_code[frontier], near)
            frontier = hit[~reached[hit]]
            reached[frontier] = True
        inside = reached[self.class_of]
        ids, class_of = self.ids[inside], self.class_of[inside]
        classes, inverse = np.unique(class_of, return_inverse=True)
        empty = np.zeros(0, dtype=np.int64)
        if not self.search.reaches_near:
            return Pairs(ids, inverse, len(classes), empty, empty, np.zeros(0), 0.0)
        codes = self.class_code[classes]
        left, right = hamming_pairs(codes, int(self.method.default_threshold))
        distances = np.bitwise_count(codes[left] ^ codes[right]).astype(np.float32)
        return Pairs(ids, inverse, len(classes), left, right, distances, 0.0, codes)

    def recount(
        self, changed: np.ndarray, was: np.ndarray, near: NearCodes | EqualCodes
    ) -> tuple[list[int], list[tuple[int, int, int]]]:
        """(the images counted again, the copy counts of those that have copies): the changed images
        and every image within the threshold of a changed image's code, before (``was``: the codes of
        those that had copies; an image without copies had no image near it) or now."""
        at = self.positions(changed)
        queries = np.unique(np.concatenate([was, self.codes[at[at >= 0]]]))
        classes = self.classes_near(queries, near)
        again = np.isin(self.class_of, classes)
        # Copies of each class: the images of every class within the threshold, less itself (a class
        # of equal hashes: its own images).
        reach = self.sizes[classes]
        if isinstance(near, NearCodes):  # codes reach near ones
            q, reached = near.pairs(self.class_code[classes])
            hit = np.flatnonzero(np.isin(self.class_code, reached))
            size_of = dict(zip(self.class_code[hit].tolist(), self.sizes[hit].tolist(), strict=True))
            per = np.fromiter(
                (size_of.get(c, 0) for c in reached.tolist()), dtype=np.int64, count=len(reached)
            )
            reach = np.bincount(q, weights=per, minlength=len(classes)).astype(np.int64)
        count_of = np.zeros(len(self.unique), dtype=np.int64)
        count_of[classes] = reach - 1
        counts = count_of[self.class_of[again]]
        ids, codes = self.ids[again], self.codes[again]
        has = counts > 0
        rows = list(zip(ids[has].tolist(), codes[has].tolist(), counts[has].tolist(), strict=True))
        return np.union1d(changed, ids).tolist(), rows


def _neighbourhood(
    catalog: Catalog,
    search: Search,
    near: NearCodes | EqualCodes,
    seeds: np.ndarray,
    changed: np.ndarray,
    was: np.ndarray,
) -> _Signed:
    """The images a refresh of a hash method looks at, read by their codes (the index on the signatures'
    first 8 bytes) instead of every image's: the components of ``seeds`` (reached code by code through
    the stored pairs' index), and the images within two steps of a changed image's code, before
    (``was``) or now, whose copies are counted again."""
    name = search.method.name
    looked = np.unique(catalog.codes_of(name, seeds.tolist())[1])
    ids, codes = catalog.images_with_codes(name, looked)  # the seeds, and every image of their codes
    found_ids, found_codes = [ids], [codes]
    frontier = looked
    while len(frontier):  # the components: every present code near a reached one
        new = np.setdiff1d(near.codes(frontier), looked)
        looked = np.union1d(looked, new)
        ids, codes = catalog.images_with_codes(name, new)
        found_ids.append(ids)
        found_codes.append(codes)
        frontier = np.unique(codes)
    now = np.concatenate(found_codes)[np.isin(np.concatenate(found_ids), changed)]
    affected = near.codes(np.unique(np.concatenate([was, now])))
    ring = np.setdiff1d(np.union1d(affected, near.codes(affected)), looked)
    ids, codes = catalog.images_with_codes(name, ring)
    found_ids.append(ids)
    found_codes.append(codes)
    ids, first = np.unique(np.concatenate(found_ids), return_index=True)
    codes = np.concatenate(found_codes)[first]
    return _Signed(search, ids, codes, codes)


def _all_counts(catalog: Catalog, method: Method, signed: _Signed) -> list[tuple[int, int, int]]:
    """The copy counts of every image that has copies, as ``copies`` counts them from the pairs."""
    _, _, counts = copy_counts(catalog, method.name, None, Options())
    ids = counts.images.id[counts.listed]
    has = counts.counts > 0
    ids, copies = ids[has], counts.counts[has]
    at = signed.positions(ids)
    return list(zip(ids.tolist(), signed.codes[at].tolist(), copies.tolist(), strict=True))


def _rows(table: GroupTable) -> list[tuple[int, int, int, float | None]]:
    """(image id, reference id, rank, score) of every member of ``table``'s groups."""
    ids = table.images.id[table.member]
    sizes = np.diff(table.starts)
    references = np.repeat(ids[table.starts[:-1]], sizes)
    ranks = np.arange(len(ids)) - np.repeat(table.starts[:-1], sizes)
    scores = [None if s != s else s for s in table.score.tolist()]
    return list(zip(ids.tolist(), references.tolist(), ranks.tolist(), scores, strict=True))


def _answers_stored(catalog: Catalog, method: Method, threshold: float | None, options: Options) -> bool:
    """Whether the stored rows answer this question: default threshold and options, rows up to date."""
    key = groups_key(method)
    return not (
        key is None
        or options.grouping != "reference"
        or options.transforms
        or options.verify
        or options.scope.inside
        or options.scope.against
        or (threshold is not None and threshold != method.default_threshold)
        or catalog.groups_key(method.name) != key
        or catalog.count_regroup(method.name)
        or search_for(method).pairs_pending(catalog)
    )


def stored_grouping(
    catalog: Catalog, method: Method, threshold: float | None, options: Options
) -> Grouping | None:
    """The answer of ``dupes`` read from the stored groups, when they answer this question (default
    threshold and options) and are up to date; None otherwise."""
    if not _answers_stored(catalog, method, threshold, options):
        return None
    name = method.name
    table, (image, reference, rank, score) = beside_table(
        catalog, lambda opened: opened.group_rows(name), lambda: catalog.image_table(grouped_by=name)
    )
    position = table.positions(image)
    if len(position) and position.min() < 0:  # an image gone without its entry: answer from the pairs
        return None
    references, group_of, sizes = np.unique(reference, return_inverse=True, return_counts=True)
    # Largest group first, then by the reference's path (the table is in path order).
    group_rank = np.empty(len(references), dtype=np.int64)
    group_rank[np.lexsort((table.positions(references), -sizes))] = np.arange(len(references))
    order = np.lexsort((rank, group_rank[group_of]))
    starts = np.zeros(len(references) + 1, dtype=np.int64)
    np.cumsum(np.sort(sizes)[::-1], out=starts[1:])
    grouped = GroupTable(table, position[order], starts, score[order])
    images = catalog.signature_count(name)
    used = check_threshold(method, threshold)
    return Grouping(name, used, "reference", False, False, grouped, images)


def answer_groups(catalog: Catalog, method_name: str, threshold: float | None, options: Options) -> Grouping:
    """``dupes``'s answer: read from the stored groups where they answer it, else made from the pairs."""
    method = catalogue_method(method_name, options.cnn, catalog.methods(), threshold)
    kept = stored_grouping(catalog, method, threshold, options)
    return kept if kept is not None else find_groups(catalog, method_name, threshold, options)


def answer_copies(
    catalog: Catalog, method_name: str, threshold: float | None, options: Options
) -> tuple[str, float, CopyCounts]:
    """``copies``'s answer: read from the stored counts where they answer it, else counted from the
    pairs."""
    method = catalogue_method(method_name, options.cnn, catalog.methods(), threshold)
    kept = stored_copies(catalog, method, threshold, options)
    return kept if kept is not None else copy_counts(catalog, method_name, threshold, options)


def stored_copies(
    catalog: Catalog, method: Method, threshold: float | None, options: Options
) -> tuple[str, float, CopyCounts] | None:
    """The answer of ``copies`` read from the stored counts, when they answer this question; None
    otherwise."""
    if not _answers_stored(catalog, method, threshold, options):
        return None
    name = method.name
    table, (ids, _, copies) = beside_table(
        catalog, lambda opened: opened.copy_rows(name), catalog.image_table
    )
    position = table.positions(ids)
    if len(position) and position.min() < 0:
        return None
    counts = np.zeros(len(table.id), dtype=np.int64)
    counts[position] = copies
    shown = np.lexsort((np.arange(len(counts)), -counts))  # most copies first, then path
    return method.name, check_threshold(method, threshold), CopyCounts(table, shown, counts[shown])
