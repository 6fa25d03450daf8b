"""Duplicate pairs -> groups (connected components) and copy counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from catalog.config import DEFAULT_CNN, CnnChoice
from catalog.errors import UsageError
from catalog.methods import Method, catalogue_method, get_method
from catalog.search import codes_from_bytes, hamming_edges, key_edges
from catalog.store import Catalog, ImageInfo

if TYPE_CHECKING:
    from catalog.methods import VectorMethod


@dataclass
class Grouping:
    method: str
    threshold: float
    groups: list[list[ImageInfo]]  # two or more images each, largest group first
    images: int  # how many images were compared


def check_threshold(method: Method, threshold: float | None) -> float:
    """The threshold to use: the method's default, or a checked user value."""
    if threshold is None:
        return method.default_threshold
    if method.kind == "bits":
        if threshold != int(threshold) or not 0 <= threshold <= 64:
            raise UsageError(f"--threshold for {method.name} is a whole number of bits from 0 to 64")
        return int(threshold)
    if method.kind == "key":
        if threshold != 0:
            raise UsageError(f"{method.name} matches equal files only: it takes no --threshold")
        return 0
    return threshold


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` nodes joined by the edges (left[k], right[k])."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


#: Neighbours asked of the vector index per image when grouping: a group larger than this still
#: joins up through chains of neighbours.
NEIGHBOURS = 16


def vector_edges(
    catalog: Catalog, method: VectorMethod, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, edge ends as positions in them) for matching pairs among each image's nearest
    neighbours in the vector index (scored by the method itself where the index only proposes)."""
    from catalog.vectors import VectorIndex

    index = VectorIndex(catalog, method).sync()
    left, right = [], []
    for ids, labels, distances in index.neighbour_chunks(NEIGHBOURS):
        rows, cols = np.nonzero(labels != ids[:, None])
        if method.index_is_exact:
            near = distances[rows, cols] <= method.index_radius(threshold)
        else:
            scores = _pair_scores(catalog, method, ids[rows], labels[rows, cols])
            near = method.is_match(scores, threshold)
        left.append(ids[rows[near]])
        right.append(labels[rows[near], cols[near]])
    ids = index.ids
    if not left:
        return ids, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return ids, np.searchsorted(ids, np.concatenate(left)), np.searchsorted(ids, np.concatenate(right))


def _pair_scores(catalog: Catalog, method: VectorMethod, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The method's scores of the pairs (a[k], b[k]) of image ids, each signature read once."""
    unique = np.unique(np.concatenate([a, b])).tolist()
    values = dict(zip(unique, catalog.signature_values(method.signature_name, unique), strict=True))
    return method.score_pairs([values[i] for i in a.tolist()], [values[i] for i in b.tolist()])


def _labelled(
    catalog: Catalog, method_name: str, threshold: float | None, cnn: CnnChoice
) -> tuple[Method, float, np.ndarray, np.ndarray]:
    """(method, threshold, image ids, component label of each image)."""
    threshold = check_threshold(get_method(method_name), threshold)
    method = catalogue_method(method_name, cnn, catalog.methods())
    if method.kind == "vector":
        vector_ids, left, right = vector_edges(catalog, method, threshold)  # type: ignore[arg-type]
        return method, threshold, vector_ids, components(len(vector_ids), left, right)
    ids, values = catalog.signatures(method.name)
    if method.kind == "key":
        left, right = key_edges(values)
    else:
        left, right = hamming_edges(codes_from_bytes(values), int(threshold))
    return method, threshold, np.asarray(ids, dtype=np.int64), components(len(ids), left, right)


def find_groups(
    catalog: Catalog, method_name: str, threshold: float | None = None, cnn: CnnChoice = DEFAULT_CNN
) -> Grouping:
    """Groups of two or more duplicates, largest first; only their images are loaded."""
    method, threshold, ids, labels = _labelled(catalog, method_name, threshold, cnn)
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    grouped = sizes[labels] > 1 if len(labels) else np.zeros(0, dtype=bool)
    info = catalog.image_info(ids[grouped].tolist())
    members: dict[int, list[ImageInfo]] = {}
    for image_id, label in zip(ids[grouped].tolist(), labels[grouped].tolist(), strict=True):
        if image_id in info:
            members.setdefault(label, []).append(info[image_id])
    groups = [sorted(g, key=lambda im: im.path) for g in members.values() if len(g) > 1]
    groups.sort(key=lambda g: (-len(g), g[0].path))
    return Grouping(method.name, threshold, groups, len(ids))


def copy_counts(
    catalog: Catalog, method_name: str, threshold: float | None = None, cnn: CnnChoice = DEFAULT_CNN
) -> tuple[str, float, dict[str, int]]:
    """(method, threshold, path -> number of other images in its group) for every readable image."""
    method, threshold, ids, labels = _labelled(catalog, method_name, threshold, cnn)
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    copies = dict(zip(ids.tolist(), (sizes[labels] - 1).tolist(), strict=True))
    return method.name, threshold, {path: copies.get(i, 0) for i, path in catalog.paths().items()}
