"""Matching pairs -> groups around a reference image.

- ``reference`` (the default): images are taken in the order a person would keep them
  (:mod:`catalog.grouping.keep`). Each image not yet grouped that matches images not yet grouped
  becomes a reference, and those images - each a direct match of the reference - become its group.
  Nothing joins a group through a chain of look-alikes, and every member carries its score against
  the reference. Chosen over greedy merging by pair strength and over components, by measurement
  (BENCHMARKS.md, "Groups a person can trust").
- ``components``: connected components of the pairs: A~B and B~C put A and C together however far
  apart they are. Scores are still against the group's reference.

Images with identical signatures form one class: they are matched, grouped and scored together, so
a thousand byte-identical copies cost one search entry, not a million pairs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from catalog.grouping.early import EarlyReads
from catalog.grouping.keep import first_to_keep, keep_facts, keep_order, keep_order_columns
from catalog.grouping.marks import Marks
from catalog.grouping.matching import Verification, matching_pairs
from catalog.grouping.options import GroupingKind, Options, Scope, outside_against
from catalog.grouping.table import Grouping, GroupTable, Member, components
from catalog.methods import Method
from catalog.search.matches import Pairs
from catalog.store import Catalog, ImageInfo
from catalog.store.columns import ImageTable

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
            group = group[:1] + [m for m in group[1:] if outside_against(scope, m.image.path)]
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
    facts = keep_facts(table)
    pixels, rank = facts
    best = reference.class_bests(class_starts, position, facts)
    eligible = involved & (present > 0)
    candidates = np.flatnonzero(eligible)
    b = best[candidates]
    # Each component of the graph of pairs in its own keep order (groups never reach across them).
    segment = components(n, pairs.left, pairs.right)[candidates]
    order = candidates[keep_order_columns(pixels[b], rank[b], segment)]
    starts, targets, scores, pair, slots = reference.neighbours(
        n, pairs.left, pairs.right, pairs.scores, verification is not None
    )
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
            if n not in taken and n in best and (not scope.against or outside_against(scope, best[n].path))
        ]
        found = confirm(c, found) if confirm is not None and found else found
        return marks.compatible(c, found, neighbours.get(c, {})) if marks is not None else found

    groups = []
    for c in _component_keep_order(best, neighbours):
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


def _component_keep_order(best: dict[int, ImageInfo], neighbours: Adjacency) -> list[int]:
    """The classes of ``best`` in keep order, each component of the graph of pairs on its own: its tiers
    of resolution and file size are cut among its images only, so that a component's groups depend on
    nothing outside it (and the groups kept as rows, ``catalog.grouping.stored``, can be made again
    one component at a time)."""
    seen: set[int] = set()
    ordered: list[int] = []
    for start in best:
        if start in seen:
            continue
        seen.add(start)
        component, stack = [start], [start]
        while stack:
            for other in neighbours.get(stack.pop(), {}):
                if other in best and other not in seen:
                    seen.add(other)
                    component.append(other)
                    stack.append(other)
        ordered += [component[k] for k in keep_order([best[c] for c in component])]
    return ordered


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
