"""Formats beyond Pillow's own, and what a photo's EXIF says about it.

- HEIC/HEIF through pillow-heif (the ``[heif]`` extra), registered with Pillow when it is installed; its
  ``draft`` decodes an embedded thumbnail instead of the 12 MP image when one is large enough. AVIF and
  WebP are Pillow's own.
- Camera RAW through rawpy/LibRaw (the ``[raw]`` extra): the embedded JPEG preview when it is large
  enough for every method, else a half-size demosaic; a file whose raw data is damaged but whose preview
  reads is catalogued from the preview, and its format says so (``NEF (preview)``).
- A file the catalogue cannot read is always an error with its reason, naming the extra it needs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

from PIL import Image

from catalog.errors import ImageError

HEIF_SUFFIXES = frozenset([".heic", ".heif", ".hif", ".heics"])
AVIF_SUFFIXES = frozenset([".avif", ".avifs"])
RAW_SUFFIXES = frozenset(
    [
        ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf",
        ".rw2", ".rwl", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".mos",
    ]
)  # fmt: skip
#: Files that describe an image rather than hold one (an editor's XMP, Apple Photos' adjustments): never
#: catalogued as images; an action on an image takes its sidecars along (``catalog.actions.apply``).
SIDECAR_SUFFIXES = frozenset([".xmp", ".aae"])
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}

#: A preview (or HEIF thumbnail) serves when its short side is at least this: the largest input any
#: method takes (the CNN's 224 px).
PREVIEW_MIN = 224

#: LibRaw's ``flip`` -> the transpose that puts the picture upright.
_FLIPS = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def is_avif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _AVIF_BRANDS


@cache
def heif_ready() -> bool:
    """Whether HEIC/HEIF can be read (pillow-heif installed; registered with Pillow once)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def open_heif_or_explain() -> None:
    if not heif_ready():
        raise ImageError("HEIC/HEIF image: reading it needs the [heif] extra (pip install 'catalog[heif]')")


def heif_problem(data: bytes) -> str | None:
    """Why libheif refuses a file that looks like HEIF (for a clearer error than "not an image")."""
    if not heif_ready():
        return None
    import pillow_heif

    try:
        pillow_heif.open_heif(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - its message is the reason
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def isobmff_truncation(data: bytes) -> str | None:
    """Why a HEIF or AVIF file (ISO base media boxes) is cut short, if it is: one of its top-level boxes
    that hold the picture (``ftyp``, ``meta``, ``mdat``, ``moov``) declares more bytes than the file
    holds. libheif decodes such a file without a word (the missing tiles come out flat), and its
    embedded thumbnail, at the front, is whole: a copy cut off while being copied would otherwise be
    catalogued as a good picture, and could be kept over its original. Bytes after the last box that do
    not read as a box (padding a camera or a tool left) are no truncation."""
    at = 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if not all(48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 32 for c in kind):
            return None  # not a box: trailing bytes
        if size == 1:  # a 64-bit size follows the type
            if at + 16 > len(data):
                return None
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        elif size == 0:  # the last box, to the end of the file: nothing declared to check
            return None
        if size < 8:
            return None
        if at + size > len(data) and kind in _PICTURE_BOXES:
            return f"truncated: {len(data):,} bytes of the {at + size:,} its boxes declare"
        at += size
    return None


#: The top-level boxes that hold a HEIF's picture: one cut short is a damaged file.
_PICTURE_BOXES = {b"ftyp", b"meta", b"mdat", b"moov"}


@dataclass
class Opened:
    image: Image.Image
    format: str
    transpose: Image.Transpose | None = None  # after EXIF orientation (a RAW's own flip)
    exif: Image.Exif | None = None  # the file's EXIF where the image read has none (a RAW's)
    size: tuple[int, int] | None = None  # the photo's own size, upright, when the image read is a preview


def open_raw(data: bytes, suffix: str) -> Opened:
    """A camera RAW file: its embedded preview when large enough, else a half-size demosaic; when the raw
    data is damaged, the preview Pillow finds in the file on its own."""
    label = suffix.lstrip(".").upper()
    exif = _tiff_exif(data)
    problem = None
    try:
        import rawpy
    except ImportError:
        rawpy = None  # type: ignore[assignment]
    if rawpy is not None:
        try:
            with rawpy.imread(io.BytesIO(data)) as raw:
                turn = _FLIPS.get(raw.sizes.flip)
                width, height = raw.sizes.width, raw.sizes.height
                size = (height, width) if raw.sizes.flip in (5, 6) else (width, height)
                try:
                    thumb = raw.extract_thumb()
                except Exception:  # noqa: BLE001 - no preview, or one LibRaw cannot give: demosaic instead
                    thumb = None
                if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                    preview = Image.open(io.BytesIO(bytes(thumb.data)))
                    if min(preview.size) >= PREVIEW_MIN:
                        return Opened(preview, label, turn, exif, size)
                rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                return Opened(Image.fromarray(rgb), label, None, exif, size)  # postprocess applied the flip
        except Exception as exc:  # noqa: BLE001 - LibRaw's errors are many; the preview may still read
            problem = " ".join(str(exc).strip("b'\"").split()) or type(exc).__name__
    try:
        preview = Image.open(io.BytesIO(data))
        if preview.format in ("JPEG", "MPO") or min(preview.size) >= PREVIEW_MIN:
            return Opened(preview, f"{label} (preview)", None, exif)
    except Exception:  # noqa: BLE001 - reported below with LibRaw's reason
        pass
    if rawpy is None:
        raise ImageError(
            f"camera RAW ({label}): reading it needs the [raw] extra (pip install 'catalog[raw]')"
        )
    raise ImageError(f"cannot decode the {label} file: {problem} (and no readable preview)")


def _tiff_exif(data: bytes) -> Image.Exif | None:
    """The EXIF of a TIFF-based RAW (NEF, CR2, ARW, DNG ...), read by Pillow from its first IFD."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.getexif()
    except Exception:  # noqa: BLE001 - optional facts
        return None


@dataclass(frozen=True)
class PhotoFacts:
    """What a photo's EXIF says: when it was taken (ISO 8601, with its UTC offset when the file records
    one), the camera, the orientation tag, GPS presence, and whether there is EXIF at all (a copy saved
    by a messenger or an editor has usually lost it)."""

    taken: str | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    gps: bool = False
    exif: bool = False


def facts(exif: Image.Exif | None) -> PhotoFacts:
    if exif is None or not len(exif):
        return PhotoFacts()
    try:
        sub = exif.get_ifd(0x8769)
    except Exception:  # noqa: BLE001 - a damaged sub-IFD: the main one still says something
        sub = {}
    taken = _iso(sub.get(0x9003), sub.get(0x9011)) or _iso(sub.get(0x9004), sub.get(0x9012))
    taken = taken or _iso(exif.get(0x0132), sub.get(0x9010))
    try:
        gps = bool(exif.get_ifd(0x8825))
    except Exception:  # noqa: BLE001
        gps = False
    orientation = exif.get(0x0112)
    return PhotoFacts(
        taken=taken,
        make=_text(exif.get(0x010F)),
        model=_text(exif.get(0x0110)),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        gps=gps,
        exif=True,
    )


def file_facts(path: str) -> PhotoFacts:
    """What the EXIF of the file at ``path`` says, reading its headers only (no pixels); nothing when
    it cannot be read."""
    heif_ready()
    try:
        with Image.open(path) as img:
            return facts(img.getexif())
    except Exception:  # noqa: BLE001 - facts are optional
        return PhotoFacts()


def _text(value: object) -> str | None:
    if not isinstance(value, str | bytes):
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = " ".join(text.replace("\x00", " ").split())
    return text[:64] or None


def _iso(value: object, offset: object) -> str | None:
    """EXIF's ``YYYY:MM:DD HH:MM:SS`` (and ``+HH:MM``) as ISO 8601, or None when it is not a date."""
    text = _text(value)
    if not text or len(text) < 19 or not text[:4].isdigit() or text.startswith("0000"):
        return None
    stamp = f"{text[:4]}-{text[5:7]}-{text[8:10]}T{text[11:19]}"
    if not (stamp[5:7].isdigit() and stamp[8:10].isdigit() and stamp[11:13].isdigit()):
        return None
    zone = _text(offset)
    if zone and len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        stamp += zone
    return stamp
