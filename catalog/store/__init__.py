"""The catalogue's store: every table, every SQL statement, the schema's migrations. The truth; every
other file is a cache rebuilt from it."""

from catalog.store.base import CREATION_WAIT, HEAD_REVISION
from catalog.store.catalog import Catalog
from catalog.store.records import Acted, ImageInfo, ImageSummary, KnownFile, Scope, camera_name
from catalog.store.sql import IN_CHUNK, WHOLE_TABLE, chunked, now, under
from catalog.store.writes import ImageRow, Writes

__all__ = [
    "Acted",
    "CREATION_WAIT",
    "HEAD_REVISION",
    "IN_CHUNK",
    "WHOLE_TABLE",
    "Catalog",
    "ImageInfo",
    "ImageRow",
    "ImageSummary",
    "KnownFile",
    "Scope",
    "Writes",
    "camera_name",
    "chunked",
    "now",
    "under",
]
