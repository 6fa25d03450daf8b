"""`catalog bench` results as tables: aligned text for a terminal, or Markdown for BENCHMARKS.md."""

from __future__ import annotations

from catalog.evaluation.bench import BenchReport, MethodResult

HEADER = [
    "method",
    "accuracy %",
    "article Fruits-360 %",
    "article phone %",
    "s/comparison",
    "article s/pair",
    "s/comparison catalogued",
    "threshold",
    "precision %",
    "recall %",
    "recall@P99 %",
    "threshold@P99",
]


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _row(m: MethodResult) -> list[str]:
    return [
        m.method,
        f"{m.accuracy:.2f}",
        _number(m.article.get("fruits360_accuracy"), 6),
        _number(m.article.get("phone_photos_accuracy"), 6),
        f"{m.seconds_per_comparison:.2e}",
        _number(m.article.get("fruits360_seconds_per_pair")),
        f"{m.seconds_per_comparison_catalogued:.2e}",
        f"{m.threshold:g}",
        _number(m.precision, 5),
        f"{m.recall:.2f}",
        f"{m.recall_at_precision_99:.2f}",
        _number(m.threshold_at_precision_99),
    ]


def _summary(report: BenchReport) -> str:
    return (
        f"{report.dataset}: {report.images} images in {report.groups} groups, indexed in "
        f"{report.indexing_seconds:.1f} s. Accuracy: share of each reference's 3 most similar images "
        "that are in its group. s/comparison: both files read, decoded and signed per pair (the "
        "article's way); catalogued: signatures read from the catalogue. Article s/pair: Fruits-360. "
        "Precision and recall: over all pairs, at the default threshold."
    )


def _experiment3_lines(report: BenchReport) -> list[str]:
    e = report.experiment3
    if e is None:
        return []
    return [
        f"Experiment 3 (CNN features, {e.comparisons} comparisons): "
        f"scipy distance.euclidean {e.accuracy_scipy:.2f} % at {e.seconds_scipy:.2e} s/comparison, "
        f"numpy linalg.norm {e.accuracy_numpy:.2f} % at {e.seconds_numpy:.2e} s/comparison "
        f"(scipy/numpy time ratio {e.seconds_scipy / e.seconds_numpy:.2f}); "
        f"catalog's batched path {e.seconds_batched:.2e} s/comparison."
    ]


def bench_markdown(report: BenchReport) -> str:
    lines = [_summary(report), "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_row(m)) + " |" for m in report.methods]
    extra = _experiment3_lines(report)
    return "\n".join(lines + ([""] + extra if extra else []))


def bench_text(report: BenchReport) -> str:
    rows = [HEADER] + [_row(m) for m in report.methods]
    widths = [max(len(row[c]) for row in rows) for c in range(len(HEADER))]
    table = [
        "  ".join(
            cell.rjust(w) if c else cell.ljust(w) for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(
        [_summary(report), "", *table, *([""] + _experiment3_lines(report) if report.experiment3 else [])]
    )
