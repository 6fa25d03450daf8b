"""A corpus of awkward and broken files: no crash, every bad file reported, every good file indexed."""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.sync.indexer import index
from tests.conftest import PHOTOS, synthetic


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file whose header claims an enormous image."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def jpeg_bytes(seed: int, **save: object) -> bytes:
    buffer = io.BytesIO()
    synthetic(seed).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def build_corpus(folder: Path) -> tuple[set[Path], dict[Path, str]]:
    """Write the corpus; return (good files, bad files -> a word their error must contain)."""
    good: set[Path] = set()
    bad: dict[Path, str] = {}

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    full = jpeg_bytes(1)
    bad[write("truncated.jpg", full[: len(full) // 2])] = "truncated"
    png = io.BytesIO()
    synthetic(2).save(png, "PNG")
    broken = bytearray(png.getvalue())
    broken[60:80] = b"\x00" * 20  # inside the image data: the CRC check fails
    bad[write("corrupt.png", bytes(broken))] = "decode"
    bad[write("empty.jpg", b"")] = "empty"
    bad[write("text-named.jpg", b"just some text, not a picture\n" * 10)] = "not an image"
    bad[write("bomb.png", bomb_png(40_000, 40_000))] = "decompression bomb"

    def save(name: str, img: Image.Image, **kwargs: object) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, **kwargs)
        good.add(path)

    save("cmyk.jpg", synthetic(3).convert("CMYK"))
    ramp = (np.linspace(0, 65535, 120 * 160).reshape(120, 160)).astype(np.uint16)
    save("sixteen-bit.png", Image.fromarray(ramp))
    palette = synthetic(4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette-transparent.png", palette, transparency=0)
    frames = [synthetic(s) for s in (5, 6, 7)]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0)
    rotated = synthetic(8, size=(200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif-rotated.jpg", rotated, exif=exif.tobytes())
    save("unicode-fötö 照片 🙂.jpg", synthetic(9))
    save("Ünïcödé folder/nested.webp", synthetic(10))
    good.add(write("real-photo.jpg", (PHOTOS / "Canon_IXUS.jpg").read_bytes()))
    loop = folder / "loop"
    loop.mkdir()
    (loop / "back").symlink_to(folder, target_is_directory=True)  # a symlink loop
    save("loop/inside.png", synthetic(11))
    return good, bad


def test_bad_input_corpus_is_survived_and_reported(catalog, tmp_path):
    folder = tmp_path / "corpus"
    good, bad = build_corpus(folder)
    report = index(catalog, [str(folder)], workers=2)
    errors = dict(report.errors)
    assert set(errors) == {str(p) for p in bad}
    for path, word in bad.items():
        assert word in errors[str(path)], (path, errors[str(path)])
    assert {p for p, _ in catalog.errors()} == {str(p) for p in bad}
    indexed = {im.path for im in catalog.image_info().values()}
    assert indexed == {str(p) for p in good}
    assert any("symlink" in problem for _, problem in report.problems)
    rotated = next(im for im in catalog.image_info().values() if im.path.endswith("exif-rotated.jpg"))
    assert (rotated.width, rotated.height) == (100, 200)
    # A second run changes nothing and does not retry unchanged bad files.
    again = index(catalog, [str(folder)])
    assert again.unchanged == len(good) + len(bad) and not again.errors


def test_sixteen_bit_and_cmyk_are_converted_not_clipped():
    from catalog.ingest.imaging import decode

    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    pixels = np.asarray(decode(buffer.getvalue()).rgb.convert("L"))
    assert pixels.min() < 10 and pixels.max() > 245 and len(np.unique(pixels)) > 200


def test_unreadable_folder_is_reported_and_its_known_files_kept(tmp_path):
    """Root reads every folder, so when run as root the second index runs in a child that has dropped
    to an unprivileged user: the permission check is the kernel's, not a stand-in."""
    import imagehash  # noqa: F401 - loaded before the child drops privileges
    import scipy.fftpack  # noqa: F401

    from catalog.store import Catalog

    base = Path(tempfile.mkdtemp(prefix="catalog-perm-"))
    pictures = base / "pics"
    locked = pictures / "locked"
    try:
        locked.mkdir(parents=True)
        synthetic(1).save(pictures / "open.jpg")
        synthetic(2).save(locked / "hidden.jpg")
        for path in (base, pictures, locked, *pictures.rglob("*.jpg")):
            os.chmod(path, 0o777)
        url = f"sqlite:///{base / 'catalog.db'}"
        with Catalog.open(url) as catalog:
            index(catalog, [str(pictures)], workers=1)
        for path in base.glob("catalog.db*"):
            os.chmod(path, 0o666)
        os.chmod(locked, 0o000)
        problems = _index_as_unprivileged(url, str(pictures))
        assert any(path == str(locked) and "cannot read folder" in why for path, why in problems)
        with Catalog.open(url) as catalog:
            assert str(locked / "hidden.jpg") in {im.path for im in catalog.image_info().values()}
    finally:
        os.chmod(locked, 0o755)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def _index_as_unprivileged(url: str, root: str) -> list[tuple[str, str]]:
    import json

    from catalog.store import Catalog

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            with Catalog.open(url) as catalog:
                report = index(catalog, [root], workers=1)
            os.write(write_end, json.dumps(report.problems).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return [tuple(row) for row in json.loads(data)]


@pytest.mark.parametrize("name", ["x.jpg", "x.png"])
def test_decode_errors_are_one_line(name):
    from catalog.errors import ImageError
    from catalog.ingest.imaging import decode

    with pytest.raises(ImageError) as caught:
        decode(
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 if name.endswith("png") else b"\xff\xd8\xff" + b"\x01" * 40
        )
    assert "\n" not in str(caught.value)


def test_large_palette_one_bit_and_sixteen_bit_images_are_read():
    """A large image is box-reduced before anything else; Pillow cannot reduce a palette, 1-bit or
    16-bit gray image, and every such picture over about 1,000 px (any large GIF) was "cannot decode:
    image has wrong mode"."""
    from catalog.ingest.imaging import decode, to_rgb

    picture = synthetic(12, size=(2000, 1500))
    sixteen = Image.fromarray(np.asarray(picture.convert("L")).astype(np.uint16) * 257)  # full range
    for mode, kind in (("P", "PNG"), ("P", "GIF"), ("1", "PNG"), ("I;16", "PNG")):
        converted = {"P": picture.convert("P"), "1": picture.convert("1"), "I;16": sixteen}[mode]
        buffer = io.BytesIO()
        converted.save(buffer, kind)
        decoded = decode(buffer.getvalue())
        assert (decoded.width, decoded.height) == (2000, 1500), mode
        small = to_rgb(decoded.source)
        assert small.size == (667, 500) and np.asarray(small).std() > 10, (mode, kind)
