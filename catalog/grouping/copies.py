"""Copy counts: for every image, how many other copies of it the catalogue holds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property

import numpy as np

from catalog.grouping.early import EarlyReads
from catalog.grouping.marks import Marks
from catalog.grouping.matching import matching_pairs
from catalog.grouping.options import Options, outside_against
from catalog.grouping.table import components
from catalog.search.matches import Pairs
from catalog.store import Catalog
from catalog.store.columns import ImageTable

#: Pairs counted per step (bounds the temporaries).
PAIRS_PER_STEP = 1 << 21


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
        listed = np.fromiter((outside_against(scope, p) for p in paths), dtype=bool, count=len(paths))
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
        # In steps: the weights and indices bincount makes of each pair are 16 bytes, where codes crowd
        # together more than the pairs themselves.
        for at in range(0, len(pairs.left), PAIRS_PER_STEP):
            left, right = pairs.left[at : at + PAIRS_PER_STEP], pairs.right[at : at + PAIRS_PER_STEP]
            reach += np.bincount(left, weights=weight[right], minlength=n)[:n]
            reach += np.bincount(right, weights=weight[left], minlength=n)[:n]
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
