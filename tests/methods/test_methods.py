"""The hash methods against imagehash itself, on real photos."""

from __future__ import annotations

import imagehash
import pytest

from catalog.ingest.imaging import decode
from catalog.methods import get_method
from catalog.methods.hashes import pack_bits
from tests.conftest import SHARED_DATA

SAMPLES = sorted((SHARED_DATA / "ukbench-500").glob("*.jpg"))[:120] + sorted(
    (SHARED_DATA / "photos").glob("*.jpg")
)


@pytest.mark.parametrize(
    ("method", "reference"),
    [
        ("phash", lambda g: imagehash.phash(g)),
        ("ahash", lambda g: imagehash.average_hash(g)),
        ("dhash", lambda g: imagehash.dhash(g)),
        ("whash", lambda g: imagehash.whash(g, image_scale=64)),
    ],
)
def test_signatures_equal_imagehash_on_the_shared_view(method, reference):
    """Each method is imagehash's function applied to the shared 64x64 grayscale view of the picture
    inside any frame (for phash, a NumPy DCT)."""
    mismatches = 0
    for path in SAMPLES:
        decoded = decode(path.read_bytes())
        ours = get_method(method).compute([decoded])[0][:8]  # the upright code
        mismatches += ours != pack_bits(reference(decoded.picture_gray(64)).hash)
    assert mismatches == 0


@pytest.mark.parametrize("method", ["ahash", "phash", "dhash", "whash"])
def test_turned_codes_are_the_codes_of_the_turned_picture(method):
    """Each signature's 7 other codes, derived from one hashing, are the codes imagehash gives the turned
    and mirrored 64x64 view, but for a few bits: Pillow's resampling is not exactly symmetric, and a value
    close to the median tips over."""
    from PIL import Image

    from catalog.methods.hashes import DIHEDRAL, hamming

    hasher = get_method(method)
    worst, total, count = 0, 0, 0
    for path in SAMPLES[::4]:
        view = decode(path.read_bytes()).picture_gray(64)
        codes = hasher.compute([decode(path.read_bytes())])[0]
        assert len(codes) == 8 * len(DIHEDRAL)
        for k, (name, _) in enumerate(DIHEDRAL):
            turned = view if name is None else view.transpose(Image.Transpose[name])
            bits = hamming(codes[8 * k : 8 * k + 8], hasher.code(turned))
            worst, total, count = max(worst, bits), total + bits, count + 1
    assert worst <= 4 and total / count < 0.5, (worst, total / count)


def test_scores_are_hamming_distances():
    phash = get_method("phash")
    assert phash.score(b"\x00" * 8, b"\x00" * 8) == 0
    assert phash.score(b"\x00" * 8, b"\xff" * 8) == 64
    assert phash.is_match(6, 6) and not phash.is_match(7, 6)


@pytest.mark.parametrize("name", ["Canon_IXUS.jpg", "Samsung_SM-J327T1.jpg", "Kodak_ProBack.jpg"])
def test_hashes_do_not_depend_on_whether_colour_was_decoded(name, tmp_path):
    """A JPEG decoded for hashes only skips its chroma planes; the hashes must come out the same as
    when colour is decoded for another method in the same run."""
    data = (SHARED_DATA / "photos" / name).read_bytes()
    gray_only, with_colour = decode(data, color=False), decode(data, color=True)
    assert not gray_only.has_color and with_colour.rgb.mode == "RGB"
    assert gray_only.luma.size == with_colour.rgb.size
    for method in ("ahash", "phash", "dhash", "whash"):
        assert get_method(method).compute([gray_only]) == get_method(method).compute([with_colour])


def test_colour_view_of_a_grayscale_decode_is_refused():
    decoded = decode((SHARED_DATA / "photos" / "Canon_IXUS.jpg").read_bytes(), color=False)
    with pytest.raises(ValueError, match="without colour"):
        _ = decoded.rgb


def test_settings_come_from_the_options_then_the_environment():
    from catalog.config import CnnChoice, Settings

    environ = {
        "CATALOG_DB": "/x/c.db",
        "CATALOG_CNN_MODEL": "efficientnet-b0",
        "CATALOG_CNN_BACKEND": "torch",
    }
    from_env = Settings.from_options(environ=environ)
    assert from_env.db_url == "sqlite:////x/c.db"
    assert from_env.cnn == CnnChoice("efficientnet-b0", None, "torch")
    from_options = Settings.from_options("postgresql://h/db", "efficientnet-lite0", "/w.pth", environ=environ)
    assert from_options.db_url == "postgresql://h/db"
    assert from_options.cnn == CnnChoice("efficientnet-lite0", "/w.pth", "torch")


def test_how_the_cnn_runs_is_a_setting_not_what_a_machine_has():
    """The int8 graph and PyTorch's float model give features of two versions, chosen by the settings
    (so a Ray worker or a second machine signs as the first or refuses); a mismatch says how to match."""
    from catalog.config import CnnChoice, Settings
    from catalog.errors import UsageError
    from catalog.methods import check_stored_version
    from catalog.methods.cnn import CnnCosine

    with pytest.raises(UsageError, match="CATALOG_CNN_BACKEND='cuda'.*'torch'"):
        Settings.from_options(environ={"CATALOG_CNN_BACKEND": "cuda"})
    quantised, float_model = CnnCosine(CnnChoice()), CnnCosine(CnnChoice(backend="torch"))
    assert "/int8-" in quantised.version and "/int8" not in float_model.version
    with pytest.raises(UsageError, match="CATALOG_CNN_BACKEND unset.*recompute"):
        check_stored_version(float_model, {"cnn": quantised.version})
    with pytest.raises(UsageError, match="choose that model"):
        check_stored_version(quantised, {"cnn": "efficientnet-b0@pretrained/192/luma/int8-0"})


def test_the_catalogues_cnn_model_is_returned_not_adopted():
    from catalog.config import CnnChoice
    from catalog.methods import resolve_cnn

    stored = {"cnn": "efficientnet-b0@0123456789abcdef/192", "phash": "imagehash-4.3"}
    assert resolve_cnn(CnnChoice(), stored) == CnnChoice(model="efficientnet-b0")
    assert resolve_cnn(CnnChoice(weights="/w.pth"), stored) == CnnChoice(weights="/w.pth")  # the user's
    assert resolve_cnn(CnnChoice(), {"phash": "1"}) == CnnChoice()
    # Nothing was changed by asking: the default method is still the default model's.
    assert get_method("cnn").choice == CnnChoice()  # type: ignore[attr-defined]
    b0 = get_method("cnn", CnnChoice(model="efficientnet-b0"))
    assert b0 is not get_method("cnn") and b0.version.startswith("efficientnet-b0@")


def test_a_uniform_border_is_trimmed_and_a_picture_without_one_is_left_whole():
    from PIL import ImageOps

    from catalog.ingest.imaging import content_box, trim_border

    luma = decode((SHARED_DATA / "photos" / "Canon_IXUS.jpg").read_bytes()).luma
    framed = ImageOps.expand(luma, border=24, fill=255)
    left, top, right, bottom = content_box(framed)
    assert abs(left - 24) <= 1 and abs(top - 24) <= 1
    assert abs(right - (24 + luma.width)) <= 1 and abs(bottom - (24 + luma.height)) <= 1
    assert content_box(luma) is None and trim_border(luma) is luma
    assert content_box(ImageOps.expand(luma.resize((20, 20)), border=40, fill=0)) is None  # mostly frame


def test_a_small_pictures_copy_is_confirmed_by_its_codes_where_keypoints_fail(tmp_path):
    """A 50-pixel copy of a 100-pixel Fruits-360 picture holds no keypoints ORB can match, so the
    verifier also takes the pictures' phash codes (of any turn) where one picture is small; another shot
    of the same fruit, and two large pictures, are not confirmed that way."""
    import io

    from PIL import Image

    from catalog.evaluation.variants import ALTERATIONS
    from catalog.methods.local import INLIERS, SMALL, _small, small_alike

    orb = get_method("orb")

    def signed(path, alteration=None):  # type: ignore[no-untyped-def]
        with Image.open(path) as img:
            if alteration is None:
                return orb.prepare(decode(path.read_bytes()))
            altered, quality = ALTERATIONS[alteration]
            out = io.BytesIO()
            altered(img.convert("RGB")).save(out, "JPEG", quality=quality)
            return orb.prepare(decode(out.getvalue()))

    fruit = SHARED_DATA / "fruits360-96"
    original, copy = signed(fruit / "012.jpg"), signed(fruit / "012.jpg", "resize-jpeg")
    assert orb.score(original, copy) < INLIERS and orb.score(copy, original) < INLIERS
    assert orb.confirms(original, copy) and orb.confirms(copy, original)
    other_shot = signed(fruit / "013.jpg", "resize-jpeg")  # the next frame of the same fruit turning
    assert not orb.confirms(original, other_shot) and not orb.confirms(other_shot, original)
    photo = SHARED_DATA / "photos" / "Canon_IXUS.jpg"
    big, smaller = signed(photo), signed(photo, "resize-jpeg")
    assert min(Image.open(photo).size) // 2 >= SMALL and not small_alike(big, smaller)
    assert orb.confirms(big, smaller)  # large enough for keypoints
    # The short side is the file's own: a panorama decoded to a reduced working copy is not small.
    with Image.open(photo) as img:
        strip = img.convert("RGB").crop((0, 0, img.width, img.width // 6))
    out = io.BytesIO()
    strip.resize((3000, 500)).save(out, "JPEG", quality=90)
    wide = decode(out.getvalue())
    assert min(wide.luma.size) < SMALL <= 500
    assert _small(orb.prepare(wide))[0] == 500
    assert _small(original)[0] == 100 and _small(copy)[0] == 50


def test_compare_says_the_verifier_confirms_a_small_pictures_copy(tmp_path):
    """``catalog compare``'s orb line says what the verifier tells dupes: a 50-pixel copy of a 100-pixel
    picture has too few keypoints, and is confirmed by its phash codes all the same."""
    from PIL import Image

    from catalog.evaluation.compare import compare_files
    from catalog.methods.local import INLIERS

    original = SHARED_DATA / "fruits360-96" / "012.jpg"
    copy = tmp_path / "small copy.jpg"
    with Image.open(original) as img:
        img.convert("RGB").resize((img.width // 2, img.height // 2)).save(copy, quality=60)
    (orb,) = compare_files(str(original), str(copy), ["orb"])
    assert orb.score < INLIERS and orb.duplicate
    other = tmp_path / "another fruit.jpg"
    with Image.open(SHARED_DATA / "fruits360-96" / "040.jpg") as img:
        img.convert("RGB").resize((img.width // 2, img.height // 2)).save(other, quality=60)
    (orb,) = compare_files(str(original), str(other), ["orb"])
    assert not orb.duplicate
