"""The article's pixel methods (euclidean, cosine, ssim): scores on known pairs, SSIM equal to
scikit-image's, and each method through dupes, copies, query and compare on a real catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage.metrics import structural_similarity

from catalog.ingest.worker import file_signatures
from catalog.methods import get_method
from catalog.methods.pixels import SSIM_SIDE, ssim_batch
from tests.helpers import cli

PIXEL_METHODS = ["euclidean", "cosine", "ssim"]


@pytest.fixture
def trio(photo, pics):  # type: ignore[no-untyped-def]
    """An original photo, a resized re-encoded copy of it, and an unrelated photo."""
    original = photo("Olympus_C960.jpg", "original.jpg")
    with Image.open(original) as img:
        ImageEnhance.Brightness(img.resize((320, 240))).enhance(1.05).save(pics / "copy.jpg", quality=75)
    other = photo("Nikon_E950.jpg", "other.jpg")
    return original, pics / "copy.jpg", other


def signatures(path: Path) -> dict[str, bytes]:
    return file_signatures(str(path), PIXEL_METHODS)


@pytest.mark.parametrize("name", PIXEL_METHODS)
def test_identical_is_maximal_copy_close_unrelated_far(name, trio):
    original, copy, other = (signatures(p) for p in trio)
    method = get_method(name)
    best = 1.0 if method.higher_is_similar else 0.0
    assert method.score(original[name], original[name]) == pytest.approx(best, abs=1e-6)
    near, far = method.score(original[name], copy[name]), method.score(original[name], other[name])
    assert method.is_match(near, method.default_threshold)
    assert not method.is_match(far, method.default_threshold)
    assert (near > far) if method.higher_is_similar else (near < far)


def test_euclidean_is_root_mean_square_of_float_pixels_no_uint8_wraparound():
    """The article's 0 % comes from uint8 subtraction (10 - 20 = 246); these scores use floats."""
    method = get_method("euclidean")
    dark, light = bytes([10] * 768), bytes([20] * 768)
    assert method.score(dark, light) == pytest.approx(10 / 255)
    assert method.score(light, dark) == pytest.approx(10 / 255)
    assert method.score(bytes(768), bytes([255] * 768)) == pytest.approx(1.0)


def test_cosine_ignores_brightness_scale_and_handles_black():
    method = get_method("cosine")
    rng = np.random.default_rng(1)
    pixels = rng.integers(1, 120, 768, dtype=np.uint8)
    assert method.score(pixels.tobytes(), (pixels * 2).astype(np.uint8).tobytes()) == pytest.approx(1.0)
    black, gray = bytes(768), bytes([128] * 768)
    assert method.score(black, black) == pytest.approx(1.0)
    assert method.score(black, gray) == pytest.approx(1.0)  # no direction: counts as flat gray
    assert 0.0 < method.score(black, pixels.tobytes()) < 1.0


def test_vectorised_ssim_equals_scikit_image():
    assert SSIM_SIDE * SSIM_SIDE * 255 * 255 < 2**31  # ssim_batch's int32 summed-area tables hold it
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (40, 32, 32), dtype=np.uint8)
    noise = rng.integers(-60, 60, x.shape)
    y = np.clip(x.astype(int) + noise * rng.random((40, 1, 1)), 0, 255).astype(np.uint8)
    y[0] = x[0]
    expected = [structural_similarity(a, b, data_range=255) for a, b in zip(x, y, strict=True)]
    assert np.allclose(ssim_batch(x, y), expected, atol=1e-12)
    assert ssim_batch(x[:1], y[:1])[0] == pytest.approx(1.0)
    method = get_method("ssim")
    assert method.score(x[3].tobytes(), y[3].tobytes()) == pytest.approx(expected[3], abs=1e-12)


def test_signatures_are_small_and_do_not_depend_on_file_size(trio):
    original, copy, _ = (signatures(p) for p in trio)
    for name, size in (("euclidean", 768), ("cosine", 768), ("ssim", 1024)):
        assert len(original[name]) == len(copy[name]) == size


@pytest.mark.parametrize("name", PIXEL_METHODS)
def test_dupes_copies_query_through_the_catalogue(name, trio, db_path, pics, make_image):
    original, copy, other = trio
    for seed in range(6):  # unrelated synthetic pictures around them
        make_image(f"noise/{seed}.png", seed=seed)
    result = cli(db_path, "index", str(pics), "--methods", name)
    assert result.exit_code == 0, result.output

    dupes = json.loads(cli(db_path, "dupes", "-m", name, "-f", "json").output)
    assert dupes["method"] == name and dupes["threshold"] == get_method(name).default_threshold
    assert [sorted(im["path"] for im in g["images"]) for g in dupes["groups"]] == [
        sorted([str(copy), str(original)])
    ]
    copies = json.loads(cli(db_path, "copies", "-m", name, "-f", "json").output)
    counts = {row["path"]: row["copies"] for row in copies["images"]}
    assert counts[str(original)] == counts[str(copy)] == 1 and counts[str(other)] == 0
    assert len(counts) == 9

    probe = pics.parent / "probe.png"
    with Image.open(original) as img:
        ImageOps.contain(img, (200, 200)).save(probe)
    found = json.loads(cli(db_path, "query", str(probe), "-m", name, "-k", "3", "-f", "json").output)
    paths = [r["path"] for r in found["results"]]
    assert len(paths) == 3 and set(paths[:2]) == {str(original), str(copy)}
    scores = [r["score"] for r in found["results"]]
    assert scores == sorted(scores, reverse=get_method(name).higher_is_similar)


def test_dupes_with_many_identical_images_joins_them_all(db_path, pics, make_image):
    """More copies than the index returns neighbours still make one group (chains of neighbours)."""
    for n in range(24):
        make_image(f"same/{n:02d}.png", seed=7)
        make_image(f"other/{n:02d}.png", seed=100 + n)
    assert cli(db_path, "index", str(pics), "--methods", "ssim,euclidean").exit_code == 0
    for name in ("ssim", "euclidean"):
        dupes = json.loads(cli(db_path, "dupes", "-m", name, "-f", "json").output)
        assert [len(g["images"]) for g in dupes["groups"]] == [24], name


@pytest.mark.slow  # --all runs the CNN
def test_compare_json_by_one_and_by_every_method(trio):
    original, copy, other = trio
    one = cli(Path("unused.db"), "compare", str(original), str(copy), "-m", "ssim", "-f", "json")
    assert one.exit_code == 0, one.output
    data = json.loads(one.output)
    assert data["a"] == str(original) and data["b"] == str(copy)
    assert [r["method"] for r in data["results"]] == ["ssim"]
    assert set(data["results"][0]) == {"method", "score", "score_kind", "duplicate"}
    assert data["results"][0]["duplicate"] is True

    every = json.loads(
        cli(Path("unused.db"), "compare", str(original), str(other), "--all", "-f", "json").output
    )
    methods = [r["method"] for r in every["results"]]
    assert {"exact", "ahash", "phash", "euclidean", "cosine", "ssim", "cnn", "cnn-euclidean"} <= set(methods)
    assert not any(r["duplicate"] for r in every["results"])
    same = json.loads(cli(Path("unused.db"), "compare", str(original), str(original), "-f", "json").output)
    assert all(r["duplicate"] for r in same["results"])


def test_compare_errors_are_clear(trio, pics):
    original, _, _ = trio
    (pics / "broken.jpg").write_bytes(b"not an image")
    result = cli(Path("unused.db"), "compare", str(original), str(pics / "broken.jpg"), "-m", "ssim")
    assert result.exit_code == 2 and "broken.jpg: not an image" in result.output
    result = cli(Path("unused.db"), "compare", str(original), str(original), "-m", "ssim", "--all")
    assert result.exit_code == 2 and "not both" in result.output
