"""The catalogued images nearest to one image file (catalogued or not)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from catalog.errors import UsageError
from catalog.methods import get_method
from catalog.search import codes_from_bytes, hamming_nearest
from catalog.store import Catalog, ImageInfo
from catalog.worker import Task, process


@dataclass
class QueryResult:
    method: str
    score_kind: str
    query: str
    results: list[tuple[ImageInfo, float]]


def signature_of(path: str, method_name: str) -> bytes:
    """Read, decode and sign one file; a clear error when it is not a readable image."""
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    method = get_method(method_name)
    st = os.stat(path)
    result = process(Task(path, st.st_size, st.st_mtime_ns, (method.name,) if method.needs_pixels else ()))
    if result.error:
        raise UsageError(f"{path}: {result.error}")
    if method.kind == "key":
        return bytes.fromhex(result.content_hash or "")
    return result.signatures[method.name]


def nearest(catalog: Catalog, path: str, method_name: str, k: int = 10) -> QueryResult:
    method = get_method(method_name)
    if k < 1:
        raise UsageError("-k must be at least 1")
    if method.kind != "key" and method.name not in catalog.methods():
        raise UsageError(
            f"this catalogue has no {method.name} signatures (`catalog index PATH --methods {method.name}`)"
        )
    absolute = os.path.abspath(path)
    signature = signature_of(absolute, method.name)
    ids, values = catalog.signatures(method.name)
    if method.kind == "key":
        hits = [(ids[n], 0.0) for n, value in enumerate(values) if value == signature][:k]
    elif method.kind == "bits":
        query = int(codes_from_bytes([signature])[0])
        positions, distances = hamming_nearest(codes_from_bytes(values), query, k)
        hits = [(ids[p], float(d)) for p, d in zip(positions.tolist(), distances.tolist(), strict=True)]
    else:
        raise UsageError(f"method {method.name} cannot be queried yet")
    images = catalog.image_info(i for i, _ in hits)
    results = [(images[i], score) for i, score in hits if i in images]
    return QueryResult(method.name, method.score_kind, absolute, results)
