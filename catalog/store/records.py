"""The plain records the store gives and takes: an image's facts, a summary, a file known to the
catalogue, a scope of folders and files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from catalog.store.models import Image
from catalog.store.sql import chunked, under

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Scope:
    """Where an indexing run looks: whole folders (recursively) and single files. A path that no longer
    exists may have been either, so it goes in both."""

    folders: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def conditions(self):  # type: ignore[no-untyped-def]
        """SQL conditions whose union selects the scope's images (file lists in chunks)."""
        conditions = [under(folder) for folder in self.folders]
        conditions += [Image.path.in_(chunk) for chunk in chunked(sorted(self.files))]
        return conditions


@dataclass
class ImageSummary:
    """Readable images (by format, and how many carry EXIF, a date taken, GPS) and unreadable ones."""

    images: int = 0
    errors: int = 0
    formats: dict[str, int] = field(default_factory=dict)  # most first
    with_exif: int = 0
    with_date_taken: int = 0
    with_gps: int = 0


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What commands print about an image."""

    id: int
    path: str
    size: int
    width: int | None
    height: int | None
    format: str | None
    content_hash: str | None
    mtime_ns: int = 0
    content_width: int | None = None
    content_height: int | None = None
    taken: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    has_gps: bool | None = None
    has_exif: bool | None = None

    @property
    def camera(self) -> str | None:
        """Make and model, without the make twice ("Canon Canon EOS 20D")."""
        return camera_name(self.camera_make, self.camera_model)

    @property
    def pixels(self) -> int:
        """Pixels of the picture itself: inside any uniform border someone added, where known."""
        if self.content_width and self.content_height:
            return self.content_width * self.content_height
        return (self.width or 0) * (self.height or 0)


def camera_name(make: str | None, model: str | None) -> str | None:
    """Make and model, without the make twice ("Canon Canon EOS 20D")."""
    make, model = make or "", model or ""
    if model.lower().startswith(make.lower()):
        return model or None
    return f"{make} {model}".strip() or None


@dataclass(frozen=True)
class KnownFile:
    id: int
    size: int
    mtime_ns: int
    content_hash: str | None
    error: str | None
    has_exif: bool | None = False  # None: indexed before photo facts were read


class Acted(NamedTuple):
    """An action that reached the disk: its journal entry, the acted-on path, where the catalogue row
    goes (``moved_to``: a move within catalogued ground), and where the file went or what it links to
    (``target``)."""

    entry_id: int
    path: str
    moved_to: str | None
    target: str | None
