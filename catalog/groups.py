"""Duplicate pairs -> groups (connected components) and copy counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from catalog.errors import UsageError
from catalog.methods import Method, get_method
from catalog.models import Image
from catalog.search import codes_from_bytes, hamming_edges, key_edges
from catalog.store import Catalog


@dataclass
class Grouping:
    method: str
    threshold: float
    groups: list[list[Image]]  # two or more images each, largest group first
    copies: dict[int, int]  # image id -> number of other images in its group (every readable image)
    images: dict[int, Image]


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


def find_groups(catalog: Catalog, method_name: str, threshold: float | None = None) -> Grouping:
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
    labels = components(len(ids), left, right)
    members: dict[int, list[int]] = {}
    for position, label in enumerate(labels.tolist()):
        members.setdefault(label, []).append(ids[position])
    images = catalog.images()
    copies = {image_id: 0 for image_id in images}
    groups = []
    for group in members.values():
        for image_id in group:
            copies[image_id] = len(group) - 1
        if len(group) > 1:
            groups.append(sorted((images[i] for i in group if i in images), key=lambda im: im.path))
    groups.sort(key=lambda g: (-len(g), g[0].path))
    return Grouping(method.name, threshold, groups, copies, images)
