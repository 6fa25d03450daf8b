"""Duplicate pairs -> groups (connected components) and copy counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from catalog.errors import UsageError
from catalog.methods import Method, get_method
from catalog.search import codes_from_bytes, hamming_edges, key_edges
from catalog.store import Catalog, ImageInfo


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
        return 0
    return threshold


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` nodes joined by the edges (left[k], right[k])."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _labelled(
    catalog: Catalog, method_name: str, threshold: float | None
) -> tuple[Method, float, np.ndarray, np.ndarray]:
    """(method, threshold, image ids, component label of each image)."""
    method = get_method(method_name)
    threshold = check_threshold(method, threshold)
    if method.kind != "key" and method.name not in catalog.methods():
        raise UsageError(
            f"this catalogue has no {method.name} signatures; add them with "
            f"`catalog index PATH --methods {method.name}`"
        )
    ids, values = catalog.signatures(method.name)
    if method.kind == "key":
        left, right = key_edges(values)
    elif method.kind == "bits":
        left, right = hamming_edges(codes_from_bytes(values), int(threshold))
    else:
        raise UsageError(f"method {method.name} cannot be grouped yet")
    return method, threshold, np.asarray(ids, dtype=np.int64), components(len(ids), left, right)


def find_groups(catalog: Catalog, method_name: str, threshold: float | None = None) -> Grouping:
    """Groups of two or more duplicates, largest first; only their images are loaded."""
    method, threshold, ids, labels = _labelled(catalog, method_name, threshold)
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
    catalog: Catalog, method_name: str, threshold: float | None = None
) -> tuple[str, float, dict[str, int]]:
    """(method, threshold, path -> number of other images in its group) for every readable image."""
    method, threshold, ids, labels = _labelled(catalog, method_name, threshold)
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    copies = dict(zip(ids.tolist(), (sizes[labels] - 1).tolist(), strict=True))
    return method.name, threshold, {path: copies.get(i, 0) for i, path in catalog.paths().items()}
