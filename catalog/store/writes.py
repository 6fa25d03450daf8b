"""Writing indexing results: one batch of added, replaced, failed, touched, moved and copied images in
one transaction (``Catalog.writing``)."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from catalog.store.models import Image, Signature
from catalog.store.sql import _method_names, _pair_rows_of, now

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ImageRow:
    """The columns an indexing result sets (an unreadable file keeps its error and no dimensions)."""

    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error: str | None = None
    content_width: int | None = None
    content_height: int | None = None
    taken: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    orientation: int | None = None
    has_gps: bool | None = None
    has_exif: bool | None = None

    def values(self) -> dict[str, object]:
        return {**asdict(self), "indexed_at": now()}


#: What a byte-identical copy takes from the catalogued image (``Writes.copy``): every fact read from
#: the picture; size, dates of the file and path are its own.
TWIN_FACTS = (
    "width",
    "height",
    "format",
    "content_width",
    "content_height",
    "taken",
    "camera_make",
    "camera_model",
    "orientation",
    "has_gps",
    "has_exif",
)


class Writes:
    """The statements of one indexing transaction (``Catalog.writing``)."""

    def __init__(self, session: Session):
        self.session = session
        self._twins: dict[
            tuple[str, str, frozenset[str]], tuple[dict[str, Any], list[tuple[str, bytes]]] | None
        ] = {}

    @cached_property
    def _methods(self) -> list[str]:
        """The catalogue's method names, read once per transaction (``fail`` deletes pair rows by them)."""
        return _method_names(self.session)

    def add(self, path: str, row: ImageRow, signatures: Mapping[str, bytes]) -> None:
        """A new image, with its signatures."""
        image = Image(path=path, **row.values())
        image.signatures = [Signature(method=m, value=v) for m, v in signatures.items()]
        self.session.add(image)

    def replace(self, image_id: int, row: ImageRow, signatures: Mapping[str, bytes]) -> None:
        """New content (or new methods) for a known image: its row, and these methods' signatures."""
        self.session.execute(update(Image).where(Image.id == image_id).values(**row.values()))
        self.session.execute(
            delete(Signature).where(Signature.image_id == image_id, Signature.method.in_(list(signatures)))
        )
        self.session.add_all(Signature(image_id=image_id, method=m, value=v) for m, v in signatures.items())

    def fail(self, image_id: int | None, path: str, row: ImageRow) -> None:
        """The file at ``path`` cannot be read: its row keeps the error, and no signatures."""
        if image_id is None:
            self.session.add(Image(path=path, **row.values()))
            return
        self.session.execute(delete(Signature).where(Signature.image_id == image_id))
        self.session.execute(_pair_rows_of(self._methods, [image_id]))
        self.session.execute(update(Image).where(Image.id == image_id).values(**row.values()))

    def touch(self, image_id: int, size: int, mtime_ns: int) -> None:
        """Same content, new size or modification time (rewritten with the same bytes)."""
        self.session.execute(
            update(Image).where(Image.id == image_id).values(size=size, mtime_ns=mtime_ns, indexed_at=now())
        )

    def move(self, image_id: int, path: str, size: int, mtime_ns: int) -> None:
        """The image's file is now at ``path`` (its signatures stay)."""
        self.session.execute(
            update(Image).where(Image.id == image_id).values(path=path, size=size, mtime_ns=mtime_ns)
        )

    def copy(self, path: str, row: ImageRow, methods: Collection[str]) -> bool:
        """A new file byte-identical to a catalogued image with the same ending (it chooses the decoder):
        a row with that image's facts and signatures, nothing decoded. One with a signature of each of
        ``methods`` is preferred; one with fewer leaves the rest to the next run (as it would a moved
        file). False when no readable image has ``row.content_hash`` and that ending."""
        twin = self._twin(row.content_hash or "", os.path.splitext(path)[1].lower(), frozenset(methods))
        if twin is None:
            return False
        facts, signatures = twin
        image = Image(path=path, **replace(row, **facts).values())
        image.signatures = [Signature(method=m, value=v) for m, v in signatures]
        self.session.add(image)
        return True

    def _twin(
        self, content_hash: str, ending: str, methods: frozenset[str]
    ) -> tuple[dict[str, Any], list[tuple[str, bytes]]] | None:
        """The facts and signatures of a catalogued readable image with this content and ending, asked
        once per transaction (ten copies of one photo put back ask once)."""
        key = (content_hash, ending, methods)
        if key not in self._twins:
            best: tuple[dict[str, Any], list[tuple[str, bytes]]] | None = None
            with self.session.no_autoflush:  # catalogued before this transaction: nothing to flush
                for found in self.session.execute(
                    select(Image.id, Image.path, *(getattr(Image, name) for name in TWIN_FACTS)).where(
                        Image.content_hash == content_hash, Image.error.is_(None)
                    )
                ):
                    if os.path.splitext(found[1])[1].lower() != ending:
                        continue
                    signatures = [
                        (method, value)
                        for method, value in self.session.execute(
                            select(Signature.method, Signature.value).where(Signature.image_id == found[0])
                        )
                    ]
                    candidate = (dict(zip(TWIN_FACTS, found[2:], strict=True)), signatures)
                    if methods <= {method for method, _ in signatures}:
                        best = candidate
                        break
                    best = best or candidate
            self._twins[key] = best
        return self._twins[key]
