"""One similarity scale for every method: 100 % identical, 90 % at the method's default threshold, 0 %
as unlike as its score goes; a pair matches at the default exactly when it is 90 % alike or more, and
``--similarity PCT`` is the threshold at PCT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from catalog.errors import UsageError
from catalog.methods import SIMILAR, answering_names, get_method
from tests.helpers import cli

SCALED = [n for n in answering_names() if get_method(n).unlike_score is not None]


def test_every_method_that_answers_is_on_the_scale():
    assert set(SCALED) == set(answering_names())


@pytest.mark.parametrize("name", SCALED)
def test_the_scale_is_anchored_and_monotone_and_matches_at_90(name):
    method = get_method(name)
    same, far, default = method.identical_score, method.unlike_score, method.default_threshold
    assert method.similarity(same) == 100.0 and method.similarity(far) == 0.0
    expected = 100.0 if default == same else SIMILAR
    assert method.similarity(default) == pytest.approx(expected)
    scores = np.linspace(min(same, far), max(same, far), 401)
    if method.whole_scores:
        scores = np.unique(np.round(scores))
    percent = method.similarity(scores)
    order = np.argsort(scores)
    step = np.diff(percent[order])
    assert (step <= 1e-9).all() if not method.higher_is_similar else (step >= -1e-9).all()
    matched = method.is_match(scores, default)
    assert np.array_equal(matched, percent >= SIMILAR - 1e-9), name


@pytest.mark.parametrize("name", SCALED)
@pytest.mark.parametrize("percent", [100.0, 97.5, 90.0, 80.0, 50.0, 0.0])
def test_the_threshold_at_a_percentage_takes_exactly_the_scores_that_alike(name, percent):
    method = get_method(name)
    if method.from_content_hash and percent == 0:  # exact: equal files only
        with pytest.raises(UsageError):
            method.threshold_at(percent)
        return
    threshold = method.threshold_at(percent)
    method.checked_threshold(threshold)  # a threshold the method takes
    same, far = method.identical_score, method.unlike_score
    scores = np.linspace(min(same, far), max(same, far), 257)
    if method.whole_scores:
        scores = np.unique(np.round(scores))
    matched = method.is_match(scores, threshold)
    alike = method.similarity(scores) >= percent - 1e-9
    assert np.array_equal(matched, alike), (name, percent, threshold)


def test_dupes_by_similarity_is_dupes_by_the_threshold_and_shows_the_percentage(tmp_path):
    from tests.conftest import PHOTOS

    root = tmp_path / "lib"
    root.mkdir()
    from PIL import Image

    for name in ("Canon_IXUS.jpg", "Nikon_E950.jpg"):
        with Image.open(PHOTOS / name) as img:
            img.save(root / name, quality=95)
            img.save(root / f"{name}-q40.jpg", quality=40)
            img.resize((img.width // 2, img.height // 2)).save(root / f"{name}-half.jpg", quality=80)
    db = tmp_path / "c.db"
    assert cli(db, "index", str(root), "--methods", "phash,dhash").exit_code == 0
    for method in ("phash", "dhash"):
        default = json.loads(cli(db, "dupes", "-m", method, "-f", "json").output)
        at_90 = json.loads(cli(db, "dupes", "-m", method, "-s", "90", "-f", "json").output)
        assert at_90 == default and default["groups"]
        chosen = get_method(method)
        for percent in (99, 95, 70):
            by_pct = json.loads(cli(db, "dupes", "-m", method, "-s", str(percent), "-f", "json").output)
            by_t = cli(db, "dupes", "-m", method, "-t", f"{chosen.threshold_at(percent):g}", "-f", "json")
            assert by_pct == json.loads(by_t.output)
        for group in default["groups"]:
            for image in group["images"][1:]:
                assert image["similarity"] == round(chosen.similarity(image["score"]), 1) >= SIMILAR
    assert cli(db, "dupes", "-s", "90", "-t", "3").exit_code == 2
    assert cli(db, "dupes", "-s", "101").exit_code == 2
