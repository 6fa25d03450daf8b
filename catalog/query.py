"""The catalogued images nearest to one image file (catalogued or not)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from catalog.errors import UsageError
from catalog.methods import check_stored_version, get_method
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
    return method.finish([result.signatures[method.name]])[0]


def nearest(catalog: Catalog, path: str, method_name: str, k: int = 10) -> QueryResult:
    method = get_method(method_name)
    if k < 1:
        raise UsageError("-k must be at least 1")
    if method.kind != "key":
        check_stored_version(method, catalog.methods())
    absolute = os.path.abspath(path)
    signature = signature_of(absolute, method.name)
    if method.kind == "vector":
        hits = _vector_hits(catalog, method, signature, k)
    else:
        ids, values = catalog.signatures(method.name)
        if method.kind == "key":
            hits = [(ids[n], 0.0) for n, value in enumerate(values) if value == signature][:k]
        else:
            query = int(codes_from_bytes([signature])[0])
            positions, distances = hamming_nearest(codes_from_bytes(values), query, k)
            hits = [(ids[p], float(d)) for p, d in zip(positions.tolist(), distances.tolist(), strict=True)]
    images = catalog.image_info(i for i, _ in hits)
    results = [(images[i], score) for i, score in hits if i in images]
    return QueryResult(method.name, method.score_kind, absolute, results)


def _vector_hits(catalog: Catalog, method: Any, signature: bytes, k: int) -> list[tuple[int, float]]:
    from catalog.vectors import VectorIndex, as_matrix

    index = VectorIndex(catalog, method.signature_name, method.version).sync()
    labels, similarity = index.knn(as_matrix([signature]), k)
    scores = method.from_cosine(similarity[0])
    return [(int(i), round(float(v), 6)) for i, v in zip(labels[0].tolist(), scores.tolist(), strict=True)]
