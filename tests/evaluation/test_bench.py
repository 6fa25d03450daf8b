"""`catalog bench`: the article's protocol on tiny sets whose right answers are known, its JSON schema,
the two dataset conventions, and --make-variants."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from catalog.errors import UsageError
from catalog.evaluation.bench import load_dataset, pair_quality
from catalog.evaluation.variants import ALTERATIONS
from catalog.methods import get_method
from tests.conftest import PHOTOS, SMALL_PHOTOS, synthetic
from tests.helpers import cli

METHOD_KEYS = {
    "method",
    "accuracy",
    "seconds_per_comparison",
    "seconds_per_comparison_catalogued",
    "precision",
    "recall",
    "recall_at_precision_99",
}


def grouped_set(folder: Path, groups: int = 4) -> None:
    """Runs of 4 by name: a picture, then three light alterations of it (the right answer is known)."""
    folder.mkdir(parents=True, exist_ok=True)
    for g in range(groups):
        base = synthetic(10 + g, (200, 150))
        base.save(folder / f"{g:02d}-0.png")
        base.resize((160, 120)).save(folder / f"{g:02d}-1.jpg", quality=85)
        ImageEnhance.Brightness(base).enhance(1.04).save(folder / f"{g:02d}-2.png")
        base.save(folder / f"{g:02d}-3.jpg", quality=70)


def bench_json(db: Path, *args: str) -> dict:
    result = cli(db, "bench", *args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_article_protocol_on_a_set_with_known_answers(tmp_path):
    grouped_set(tmp_path / "set")
    report = bench_json(
        tmp_path / "unused.db", str(tmp_path / "set"), "--methods", "ahash,euclidean,cosine,ssim"
    )
    assert report["dataset"] == str(tmp_path / "set") and report["images"] == 16 and report["groups"] == 4
    assert [m["method"] for m in report["methods"]] == ["ahash", "euclidean", "cosine", "ssim"]
    for m in report["methods"]:
        assert set(m) >= METHOD_KEYS, m
        assert m["accuracy"] == 100.0, m
        assert m["recall_at_precision_99"] == 100.0, m
        assert m["seconds_per_comparison"] > m["seconds_per_comparison_catalogued"] > 0
    assert report["experiment3"] is None


def test_accuracy_counts_wrong_neighbours(tmp_path):
    """Two groups whose members are unrelated pictures: a method cannot rank its group first."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for n in range(8):
        synthetic(50 + n).save(folder / f"{n}.png")
    report = bench_json(tmp_path / "unused.db", str(folder), "--methods", "euclidean")
    (m,) = report["methods"]
    assert m["accuracy"] < 100.0  # 3 neighbours of 7 candidates, 3 of them in the group: chance is 43 %
    assert m["precision"] is None or m["precision"] < 100.0


def test_groups_csv_lists_the_set_and_the_reference_comes_first(tmp_path):
    folder = tmp_path / "listed"
    grouped_set(folder, groups=2)
    (folder / "ignored.png").write_bytes((folder / "00-0.png").read_bytes())  # not in groups.csv
    with open(folder / "groups.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "group"])
        for name in (
            "01-3.jpg",
            "01-0.png",
            "01-1.jpg",
            "01-2.png",
            "00-0.png",
            "00-1.jpg",
            "00-2.png",
            "00-3.jpg",
        ):
            writer.writerow([name, name[:2]])
    dataset = load_dataset(folder)
    assert [dataset.files[r].name for r in dataset.references] == ["01-3.jpg", "00-0.png"]
    report = bench_json(tmp_path / "unused.db", str(folder), "--methods", "phash", "-f", "json")
    assert report["images"] == 8 and report["methods"][0]["accuracy"] == 100.0


def test_dataset_errors_are_clear(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    for n in range(6):
        synthetic(n).save(folder / f"{n}.png")
    with pytest.raises(UsageError, match="not runs of 4"):
        load_dataset(folder)
    (folder / "groups.csv").write_text("file,group\n0.png,a\nmissing.png,a\n")
    with pytest.raises(UsageError, match="missing file"):
        load_dataset(folder)
    result = cli(tmp_path / "unused.db", "bench", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "not a folder" in result.output


def test_pair_quality_sweeps_thresholds():
    method = get_method("euclidean")
    values = [bytes([v] * 768) for v in (0, 2, 100, 102, 200, 230)]
    groups = np.asarray(["a", "a", "b", "b", "c", "c"])
    precision, recall, best_recall, threshold = pair_quality(method, values, groups)
    assert precision == 100.0 and recall == pytest.approx(200 / 3)  # 30/255 = 0.118 > 0.05: c's pair missed
    assert best_recall == 100.0 and threshold == pytest.approx(30 / 255)


@pytest.mark.slow  # runs the CNN
def test_make_variants_writes_groups_and_benchmarks_them(tmp_path):
    originals = tmp_path / "originals"
    originals.mkdir()
    for name in SMALL_PHOTOS[:3]:
        (originals / name).write_bytes((PHOTOS / name).read_bytes())
    out = tmp_path / "variants"
    report = bench_json(
        tmp_path / "unused.db", str(originals), "--make-variants", str(out), "--methods", "ahash,cnn"
    )
    with open(out / "groups.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * (1 + len(ALTERATIONS))
    assert rows[0]["file"].endswith("/original.jpg")
    assert (out / rows[0]["file"]).read_bytes() == (originals / SMALL_PHOTOS[0]).read_bytes()
    with (
        Image.open(out / rows[0]["group"] / "rotate-90.jpg") as rotated,
        Image.open(originals / SMALL_PHOTOS[0]) as src,
    ):
        assert rotated.size == (src.height, src.width)
    assert report["images"] == 27 and report["groups"] == 3
    cnn = next(m for m in report["methods"] if m["method"] == "cnn")
    assert cnn["accuracy"] == 100.0
    e3 = report["experiment3"]
    assert e3["accuracy_scipy"] == e3["accuracy_numpy"] == 100.0
