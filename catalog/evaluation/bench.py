"""The founding article's experiments, on any folder of grouped images (evaluation, apart from search).

A dataset is a folder with a ``groups.csv`` (``file,group``; the first file listed of each group is its
reference), or a folder whose image files, sorted by name, come in runs of 4 (the first of each run is the
reference), as in the article.

- Experiments 1 and 2: for each reference, the 3 most similar images of the whole set (not itself);
  accuracy = the share of them in the reference's group. Speed is the mean time of one comparison,
  measured the article's way (both files decoded and signed for every pair) and catalog's way
  (signatures computed once at indexing time and read from the catalogue).
- Beyond the article: pair precision and recall at each method's default threshold, and the best recall
  with at least 99 % pair precision (and the threshold that gives it), over all pairs of the set.
- Experiment 3: scipy's ``distance.euclidean`` against numpy's ``linalg.norm`` on the CNN features, pair
  by pair, and catalog's batched path.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog.config import DEFAULT_CNN, CnnChoice
from catalog.errors import UsageError
from catalog.ingest.scan import image_suffix
from catalog.ingest.worker import file_signatures
from catalog.methods import Method, get_method, method_names

if TYPE_CHECKING:
    from catalog.store import Catalog

GROUP_SIZE = 4  # the article's naming convention
TOP = 3  # the article's "3 most similar"
#: Pairs timed the article's way per method (each decodes and signs two files).
ARTICLE_WAY_PAIRS = 12

#: The article's figures: method -> (Fruits-360 accuracy %, s/pair, phone photos accuracy %, s/pair).
ARTICLE = {
    "euclidean": (0.0, 0.0002, 10.0, 0.0069),
    "ssim": (94.4444, 0.0413, 13.3333, 0.48),
    "ahash": (90.2778, 0.0005, 23.3333, 0.0022),
    "cosine": (100.0, 0.001, 36.6667, 0.0087),
    "cnn-euclidean": (98.6111, 0.2513, 86.6667, 0.76),
    "cnn": (98.6111, 0.2417, 83.3333, 0.7624),
}


@dataclass
class Dataset:
    folder: Path
    files: list[Path]
    groups: np.ndarray  # group label of each file
    references: list[int]  # positions in files


def load_dataset(folder: Path) -> Dataset:
    if not folder.is_dir():
        raise UsageError(f"not a folder: {folder}")
    listing = folder / "groups.csv"
    if listing.exists():
        with open(listing, newline="") as handle:
            rows = [(row["file"], row["group"]) for row in csv.DictReader(handle)]
        if not rows:
            raise UsageError(f"{listing} lists no files (columns: file,group)")
        files = [folder / name for name, _ in rows]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UsageError(f"{listing} lists {len(missing)} missing file(s), first: {missing[0]}")
        groups = [group for _, group in rows]
        references = [n for n, group in enumerate(groups) if group not in groups[:n]]
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and image_suffix(p.name))
        if len(files) < 2 * GROUP_SIZE or len(files) % GROUP_SIZE:
            raise UsageError(
                f"{folder}: no groups.csv, and {len(files)} image files are not runs of {GROUP_SIZE} "
                "(the article's convention); write a groups.csv with columns file,group"
            )
        groups = [str(n // GROUP_SIZE) for n in range(len(files))]
        references = list(range(0, len(files), GROUP_SIZE))
    return Dataset(folder, files, np.asarray(groups), references)


@dataclass
class MethodResult:
    method: str
    accuracy: float  # percent
    seconds_per_comparison: float  # the article's way
    seconds_per_comparison_catalogued: float
    threshold: float
    precision: float | None  # percent; None when nothing matched
    recall: float
    recall_at_precision_99: float
    threshold_at_precision_99: float | None
    article: dict[str, float] = field(default_factory=dict)


@dataclass
class Experiment3:
    comparisons: int
    accuracy_scipy: float
    accuracy_numpy: float
    seconds_scipy: float  # per comparison
    seconds_numpy: float
    seconds_batched: float


@dataclass
class BenchReport:
    dataset: str
    images: int
    groups: int
    indexing_seconds: float
    methods: list[MethodResult]
    experiment3: Experiment3 | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def default_methods() -> list[str]:
    return [name for name in method_names() if name != "exact"]


def run(
    folder: Path,
    names: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    cnn: CnnChoice = DEFAULT_CNN,
) -> BenchReport:
    """Index the dataset into a throwaway catalogue, then evaluate every method on it."""
    from catalog.store import Catalog
    from catalog.sync.indexer import index

    dataset = load_dataset(folder)
    names = list(names or default_methods())
    say = progress or (lambda _message: None)
    with (
        tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp,
        Catalog.open(f"sqlite:///{tmp}/bench.db") as catalog,
    ):
        say(f"indexing {len(dataset.files)} images")
        started = time.perf_counter()
        report = index(catalog, [str(folder.resolve())], names, workers=workers, cnn=cnn)
        indexing = time.perf_counter() - started
        ids_by_path = {path: image_id for image_id, path in catalog.paths().items()}
        unread = [f for f in dataset.files if str(f.resolve()) not in ids_by_path]
        if unread:
            reason = dict(report.errors).get(str(unread[0].resolve()), "not catalogued")
            raise UsageError(
                f"{len(unread)} file(s) of the set could not be read, first: {unread[0]}: {reason}"
            )
        ids = [ids_by_path[str(f.resolve())] for f in dataset.files]
        results = []
        for name in names:
            say(f"evaluating {name}")
            results.append(_evaluate(catalog, dataset, ids, get_method(name, cnn), cnn))
        experiment3 = None
        if "cnn" in names or "cnn-euclidean" in names:
            say("experiment 3")
            experiment3 = _experiment3(dataset, catalog.signature_values("cnn", ids))
    return BenchReport(
        str(folder), len(dataset.files), len(set(dataset.groups.tolist())), indexing, results, experiment3
    )


def _stored(catalog: Catalog, method: Method, ids: list[int]) -> list[bytes]:
    if method.from_content_hash:
        info = catalog.image_info(ids)
        return [bytes.fromhex(info[i].content_hash or "") for i in ids]
    return catalog.signature_values(method.signature_name, ids)


def _evaluate(
    catalog: Catalog, dataset: Dataset, ids: list[int], method: Method, cnn: CnnChoice
) -> MethodResult:
    started = time.perf_counter()
    values = _stored(catalog, method, ids)
    hits = 0
    for ref in dataset.references:
        top = top_matches(method, values, ref)
        hits += int(np.sum(dataset.groups[top] == dataset.groups[ref]))
    comparisons = len(dataset.references) * (len(values) - 1)
    catalogued = (time.perf_counter() - started) / comparisons
    precision, recall, best_recall, best_threshold = pair_quality(method, values, dataset.groups)
    article = ARTICLE.get(method.name)
    return MethodResult(
        method=method.name,
        accuracy=round(100.0 * hits / (TOP * len(dataset.references)), 4),
        seconds_per_comparison=_article_way_seconds(method, dataset, cnn),
        seconds_per_comparison_catalogued=catalogued,
        threshold=method.default_threshold,
        precision=precision,
        recall=recall,
        recall_at_precision_99=best_recall,
        threshold_at_precision_99=best_threshold,
        article=(
            {
                "fruits360_accuracy": article[0],
                "fruits360_seconds_per_pair": article[1],
                "phone_photos_accuracy": article[2],
                "phone_photos_seconds_per_pair": article[3],
            }
            if article
            else {}
        ),
    )


def top_matches(method: Method, values: list[bytes], ref: int, top: int = TOP) -> np.ndarray:
    """Positions of the ``top`` images most similar to ``values[ref]`` (not itself); ties keep file order."""
    scores = method.score_pairs([values[ref]] * len(values), values).astype(np.float64)
    order = method.best_first(scores)
    return order[order != ref][:top]


def pair_quality(
    method: Method, values: list[bytes], groups: np.ndarray
) -> tuple[float | None, float, float, float | None]:
    """Over all pairs: (precision %, recall % at the default threshold, best recall % with precision
    >= 99 %, the threshold that gives it)."""
    left, right = np.triu_indices(len(values), 1)
    scores = np.concatenate(
        [
            method.score_pairs(
                [values[i] for i in left[s : s + 50_000]], [values[j] for j in right[s : s + 50_000]]
            )
            for s in range(0, len(left), 50_000)
        ]
    ).astype(np.float64)
    same = groups[left] == groups[right]
    positives = max(int(same.sum()), 1)
    matched = method.is_match(scores, method.default_threshold)
    precision = 100.0 * float(same[matched].mean()) if matched.any() else None
    recall = 100.0 * float(same[matched].sum()) / positives
    # Sweep thresholds from the strictest: pairs with equal scores enter together.
    order = method.best_first(scores)
    sorted_scores, true_so_far = scores[order], np.cumsum(same[order])
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    counts = np.arange(1, len(order) + 1)[last_of_tie]
    true_counts = true_so_far[last_of_tie]
    good = true_counts >= 0.99 * counts
    if not good.any():
        return _round(precision), round(recall, 4), 0.0, None
    best = int(np.argmax(np.where(good, true_counts, -1)))
    threshold = float(sorted_scores[last_of_tie][best])
    return _round(precision), round(recall, 4), round(100.0 * true_counts[best] / positives, 4), threshold


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _article_way_seconds(method: Method, dataset: Dataset, cnn: CnnChoice) -> float:
    """Mean seconds to compare two files from scratch: read, decode and sign both, then score."""
    refs = dataset.references
    pairs = [
        (refs[n % len(refs)], (refs[n % len(refs)] + 1 + n) % len(dataset.files))
        for n in range(ARTICLE_WAY_PAIRS)
    ]

    def compare(a: int, b: int) -> float:
        first = file_signatures(str(dataset.files[a]), [method.name], cnn)[method.name]
        second = file_signatures(str(dataset.files[b]), [method.name], cnn)[method.name]
        return method.score(first, second)

    compare(*pairs[0])  # warm-up: imports, model loading
    started = time.perf_counter()
    for a, b in pairs:
        compare(a, b)
    return (time.perf_counter() - started) / len(pairs)


def _experiment3(dataset: Dataset, features: list[bytes]) -> Experiment3:
    """CNN-Euclidean ranking with scipy's and numpy's distance, pair by pair, and catalog's batch."""
    from scipy.spatial import distance

    vectors = (
        np.frombuffer(b"".join(features), dtype=np.float16).reshape(len(features), -1).astype(np.float32)
    )
    refs = dataset.references

    def ranked(measure: Callable[[np.ndarray, np.ndarray], float]) -> tuple[float, float]:
        started = time.perf_counter()
        hits = 0
        for ref in refs:
            distances = np.asarray([measure(vectors[ref], row) for row in vectors])
            order = np.argsort(distances, kind="stable")
            top = order[order != ref][:TOP]
            hits += int(np.sum(dataset.groups[top] == dataset.groups[ref]))
        seconds = (time.perf_counter() - started) / (len(refs) * len(vectors))
        return 100.0 * hits / (TOP * len(refs)), seconds

    accuracy_scipy, seconds_scipy = ranked(distance.euclidean)
    accuracy_numpy, seconds_numpy = ranked(lambda a, b: float(np.linalg.norm(a - b)))
    started = time.perf_counter()  # all references at once: one matrix product, as catalog batches
    squares = np.einsum("ij,ij->i", vectors, vectors)
    batched = squares[refs, None] + squares[None, :] - 2.0 * (vectors[refs] @ vectors.T)
    np.argsort(np.sqrt(np.maximum(batched, 0.0)), axis=1, kind="stable")
    seconds_batched = (time.perf_counter() - started) / (len(refs) * len(vectors))
    return Experiment3(
        comparisons=len(refs) * len(vectors),
        accuracy_scipy=round(accuracy_scipy, 4),
        accuracy_numpy=round(accuracy_numpy, 4),
        seconds_scipy=seconds_scipy,
        seconds_numpy=seconds_numpy,
        seconds_batched=seconds_batched,
    )
