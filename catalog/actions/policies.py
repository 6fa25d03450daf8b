"""Keep policies: which image of a group to keep, as a person states it (``--keep largest,oldest``).

Policies apply in the order given; images they leave tied keep the group's own order (its reference,
the image the keep order chose as the original, first). ``original`` (the default) keeps the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from catalog.errors import UsageError
from catalog.grouping.keep import time_of
from catalog.ingest.formats import RAW_SUFFIXES
from catalog.store import ImageInfo

NAMES = ("original", "largest", "biggest", "oldest", "newest", "exif", "raw", "shortest-path", "prefer:DIR")


@dataclass(frozen=True)
class KeepPolicy:
    rules: tuple[str, ...]

    @classmethod
    def parse(cls, values: Sequence[str]) -> KeepPolicy:
        rules: list[str] = []
        for value in values:
            for rule in (r.strip() for r in value.split(",")):
                if not rule:
                    continue
                if rule.startswith("prefer:"):
                    folder = rule.removeprefix("prefer:")
                    if not folder:
                        raise UsageError("prefer: needs a folder (prefer:DIR)")
                    rules.append("prefer:" + os.path.abspath(os.path.expanduser(folder)))
                elif rule in NAMES:
                    rules.append(rule)
                else:
                    raise UsageError(f"unknown keep policy {rule!r}: use {', '.join(NAMES)}")
        if not rules:
            raise UsageError(f"--keep needs a policy: {', '.join(NAMES)}")
        return cls(tuple(rules))

    def order(self, images: Sequence[ImageInfo]) -> list[int]:
        """Positions of ``images`` (in their group's order) from the one to keep first."""
        keys = [_key(rule) for rule in self.rules]
        # "original" is the group's reference (position 0) before the rest, whatever rules follow.
        return sorted(
            range(len(images)),
            key=lambda k: (*((k > 0) if key is None else key(images[k]) for key in keys), k),
        )

    def __str__(self) -> str:
        return ",".join(self.rules)


def _key(rule: str) -> Callable[[ImageInfo], object] | None:
    """The sort key of a policy (None for ``original``: by position in the group, the reference first)."""
    if rule == "original":  # the group's reference: the keep order's original (catalog.grouping.keep)
        return None
    if rule == "largest":
        return lambda im: -im.pixels
    if rule == "biggest":
        return lambda im: -im.size
    if rule == "oldest":  # date taken, else modified time
        return time_of
    if rule == "newest":
        return lambda im: tuple(-t for t in time_of(im))
    if rule == "exif":  # files that carry EXIF first (a stripped copy is usually not the original)
        return lambda im: 0 if im.has_exif else 1
    if rule == "raw":  # camera RAW files first
        return lambda im: 0 if os.path.splitext(im.path)[1].lower() in RAW_SUFFIXES else 1
    if rule == "shortest-path":
        return lambda im: (len(im.path), im.path)
    folder = rule.removeprefix("prefer:").rstrip(os.sep) + os.sep
    return lambda im: 0 if im.path.startswith(folder) else 1
