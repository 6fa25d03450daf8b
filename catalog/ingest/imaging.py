"""Open an image once: size guard, JPEG draft decode, EXIF orientation, mode normalisation.

Every method computes its signature from the one :class:`Decoded` image this module returns, so a
file is read and decoded exactly once per indexing run.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from catalog.config import MAX_PIXELS, WORK_SIZE
from catalog.errors import ImageError
from catalog.ingest.formats import (
    HEIF_SUFFIXES,
    PREVIEW_MIN,
    RAW_SUFFIXES,
    Opened,
    PhotoFacts,
    facts,
    heif_problem,
    heif_ready,
    is_heif,
    isobmff_truncation,
    open_heif_or_explain,
    open_raw,
)

# We enforce our own pixel limit (below) with a clear message; Pillow's warning would only be noise.
Image.MAX_IMAGE_PIXELS = None

_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


@dataclass(frozen=True)
class Decoded:
    """A decoded image (short side about WORK_SIZE / 2 or more, long side under 2 x WORK_SIZE, EXIF
    orientation applied) and facts about the original file.

    Methods ask for the view they need: :attr:`rgb`, :attr:`luma`, or :meth:`gray` (small, square);
    each view is computed once and shared between methods. A JPEG's luma is the decoder's own Y plane,
    whether or not colour was decoded too, so a grayscale signature does not depend on which other
    methods are enabled.
    """

    source: Image.Image  # mode "L" or "YCbCr" for a JPEG, anything Pillow decodes otherwise
    width: int  # of the original, after EXIF orientation
    height: int
    format: str
    has_color: bool = True  # False when decoded for grayscale views only
    facts: PhotoFacts = PhotoFacts()  # what its EXIF says (date taken, camera, ...)
    _views: dict[object, Image.Image] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rgb(self) -> Image.Image:
        if "rgb" not in self._views:
            if not self.has_color:
                raise ValueError("this image was decoded without colour (decode(..., color=True))")
            self._views["rgb"] = to_rgb(self.source)
        return self._views["rgb"]

    @property
    def luma(self) -> Image.Image:
        if "luma" not in self._views:
            if self.source.mode == "L":
                self._views["luma"] = self.source
            elif self.source.mode == "YCbCr":
                self._views["luma"] = self.source.getchannel(0)
            else:
                self._views["luma"] = self.rgb.convert("L")
        return self._views["luma"]

    def gray(self, side: int) -> Image.Image:
        """A ``side`` x ``side`` grayscale view (aspect squashed, area-averaged), cached."""
        if side not in self._views:
            self._views[side] = self.luma.resize((side, side), Image.Resampling.BOX)
        return self._views[side]

    @property
    def picture(self) -> Image.Image:
        """:attr:`luma` without a uniform frame or bars around it (:func:`trim_border`), cached: the
        cnn and orb signatures both look at it."""
        if "picture" not in self._views:
            self._views["picture"] = trim_border(self.luma)
        return self._views["picture"]

    def picture_gray(self, side: int) -> Image.Image:
        """:meth:`gray` of the picture inside any uniform frame or bars (:func:`content_box` with
        letterbox bars, measured on the :data:`CONTENT_VIEW` view), cached: a frame someone added, or a
        screenshot's bars, are not the picture, and would otherwise make most of a small code."""
        key = ("picture", side)
        if key not in self._views:
            box = content_box(self.gray(CONTENT_VIEW), letterbox=True)
            if box is None:
                self._views[key] = self.gray(side)
            else:
                width, height = self.luma.size
                scale = (width, height, width, height)
                left, top, right, bottom = (
                    round(v * n / CONTENT_VIEW) for v, n in zip(box, scale, strict=True)
                )
                picture = self.luma.crop((left, top, right, bottom))
                self._views[key] = picture.resize((side, side), Image.Resampling.BOX)
        return self._views[key]


def decode(data: bytes, color: bool = True, suffix: str = "") -> Decoded:
    """Decode image bytes, or raise :class:`ImageError` with a one-line reason.

    ``color=False``: only grayscale views will be asked for; a JPEG then skips its chroma planes.
    ``suffix``: the file's ending, which tells a camera RAW file (formats are otherwise told by content).
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode(data, color, suffix)
    except ImageError:
        raise
    except UnidentifiedImageError:
        if suffix in HEIF_SUFFIXES or is_heif(data[:16]):
            problem = heif_problem(data)
            if problem:
                raise ImageError(f"damaged HEIF file: {problem}") from None
        raise ImageError("not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not stop a scan
        raise ImageError(f"cannot decode ({type(exc).__name__}): {_one_line(exc)}") from None


def _decode(data: bytes, color: bool, suffix: str = "") -> Decoded:
    if suffix in RAW_SUFFIXES:
        opened = open_raw(data, suffix)
    else:
        if is_heif(data[:16]) or (suffix in HEIF_SUFFIXES and not data.startswith((b"\xff\xd8", b"\x89PNG"))):
            open_heif_or_explain()
        else:
            heif_ready()  # HEIF content under another name is told by content too
        if data[4:8] == b"ftyp" and (cut := isobmff_truncation(data)):  # HEIF, AVIF: boxes
            raise ImageError(f"cannot decode: {cut}")
        img0 = Image.open(io.BytesIO(data))
        opened = Opened(img0, img0.format or "unknown")
    img: Image.Image = opened.image
    fmt = opened.format
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"refused: {width}x{height} = {width * height / 1e6:.0f} MP exceeds the "
            f"{MAX_PIXELS / 1e6:.0f} MP limit (possible decompression bomb)"
        )
    exif = img.getexif()
    photo = facts(exif if len(exif) or opened.exif is None else opened.exif)
    orientation = exif.get(0x0112, 1)
    if orientation in _SWAPS_AXES:
        width, height = height, width
    if opened.transpose in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
        width, height = height, width
    if opened.size is not None:
        width, height = opened.size
    if img.format == "HEIF":  # an embedded thumbnail large enough for every method, if the file has one
        img.draft(None, (PREVIEW_MIN, PREVIEW_MIN))
    is_jpeg = isinstance(img, JpegImagePlugin.JpegImageFile)  # JPEG and MPO (multi-picture JPEG)
    gray_only = is_jpeg and img.mode == "RGB" and not color
    if is_jpeg:
        # Decode straight to a small scale, and to YCbCr (or luma alone) so that the Y plane is the
        # decoder's own: Pillow converts to RGB only when a method asks for colour.
        img.draft("L" if gray_only else "YCbCr", (WORK_SIZE // 2, WORK_SIZE // 2))
    img.load()
    factor = max(img.size) // WORK_SIZE
    if factor >= 2:  # large non-JPEG files (a JPEG draft is already small): integer box reduction
        try:
            img = img.reduce(factor)
        except ValueError:  # a mode Pillow cannot reduce (palette, 1-bit, 16-bit gray): as RGB first
            img = to_rgb(img).reduce(factor)
    img = ImageOps.exif_transpose(img) or img
    if opened.transpose is not None:
        img = img.transpose(opened.transpose)
    return Decoded(source=img, width=width, height=height, format=fmt, has_color=not gray_only, facts=photo)


def to_rgb(img: Image.Image) -> Image.Image:
    """Normalise any Pillow mode to 8-bit RGB: 16-bit is scaled (not clipped), transparency goes on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode != "F" or arr.max() > 1.0 else 1.0
        if img.mode == "I" and arr.max() <= 255:
            top = 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


#: A border row or column differs from the corners' colour by at most this much (0-255) on 99 % of
#: its pixels; a trim that would keep less than half the picture is not made, unless it takes bars off
#: two opposite sides only (a screenshot's): then down to this share.
BORDER_TOLERANCE = 12
LETTERBOX = 0.15
THINNEST = 0.02


#: Side of the (squashed) view a picture's border is measured on when indexing.
CONTENT_VIEW = 128


def content_size(decoded: Decoded) -> tuple[int, int]:
    """(width, height) of the picture inside any uniform border, in the original's pixels, measured on
    a small view (a border of 1/128 of a side or more is seen)."""
    box = content_box(decoded.gray(CONTENT_VIEW))
    if box is None:
        return decoded.width, decoded.height
    left, top, right, bottom = box
    return (
        round(decoded.width * (right - left) / CONTENT_VIEW),
        round(decoded.height * (bottom - top) / CONTENT_VIEW),
    )


def trim_border(gray: Image.Image) -> Image.Image:
    """``gray`` (mode "L") without a uniform frame or bars around it, for signatures (see
    :func:`content_box`, with letterbox bars)."""
    box = content_box(gray, letterbox=True)
    return gray if box is None else gray.crop(box)


def content_box(gray: Image.Image, letterbox: bool = False) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of ``gray`` (mode "L") inside a uniform frame: the rows and columns at
    the edges whose pixels nearly all have the corners' colour (a white or black border someone added);
    None when there is no frame, or trimming it would keep less than half the picture. With
    ``letterbox``, bars on opposite sides only (a phone's screenshot of a picture) may keep down to
    :data:`LETTERBOX` of it: for signatures, which compare a picture with its copies (a dark photo and
    its copies are cut alike); never for the picture's size, which a dark photo's lights would shrink."""
    import numpy as np

    pixels = np.asarray(gray, dtype=np.int16)
    if pixels.ndim != 2 or min(pixels.shape) < 8:
        return None
    four = np.sort([pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]]).astype(np.float64)
    corners = (four[1] + four[2]) / 2  # their median (np.median imports numpy.ma: 30 ms a worker)
    content = np.abs(pixels - corners) > BORDER_TOLERANCE
    rows = np.nonzero(content.mean(axis=1) > 0.01)[0]
    cols = np.nonzero(content.mean(axis=0) > 0.01)[0]
    if not len(rows) or not len(cols):
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    height, width = pixels.shape
    # A frame is at least THINNEST of a side (both sides together): a camera's dark line along one edge,
    # which a resized copy blurs away, is not one, and would set the picture's view apart from the copy's.
    if top + height - bottom < THINNEST * height and left + width - right < THINNEST * width:
        return None
    # A frame or bars are on two sides or more: a plain strip on one side is a sky or a wall, which a
    # re-encode's noise makes uniform enough or not (a picture would hash apart from its own copy).
    if (top > 0) + (bottom < height) + (left > 0) + (right < width) < 2:
        return None
    if (bottom - top) * (right - left) < height * width * (
        LETTERBOX if letterbox and _bars((left, top, right, bottom), width, height) else 0.5
    ):
        return None
    return left, top, right, bottom


def _bars(box: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether ``box`` leaves bars on opposite sides only: the picture spans the other direction whole
    (a screenshot's bars above and below; a letterbox)."""
    left, top, right, bottom = box
    return (left, right) == (0, width) or (top, bottom) == (0, height)
