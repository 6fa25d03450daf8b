"""Keep policies: which image of a group to keep, as a person states it (``--keep largest,oldest``).

Policies apply in the order given; images they leave tied keep the group's own order (its reference,
the image the keep order chose, first).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from catalog.errors import UsageError
from catalog.store import ImageInfo

NAMES = ("largest", "biggest", "oldest", "newest", "shortest-path", "prefer:DIR")


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
        return sorted(range(len(images)), key=lambda k: (*(key(images[k]) for key in keys), k))

    def __str__(self) -> str:
        return ",".join(self.rules)


def _key(rule: str) -> Callable[[ImageInfo], object]:
    if rule == "largest":
        return lambda im: -im.pixels
    if rule == "biggest":
        return lambda im: -im.size
    if rule == "oldest":  # date taken is not catalogued yet: the modified time stands for it
        return lambda im: im.mtime_ns
    if rule == "newest":
        return lambda im: -im.mtime_ns
    if rule == "shortest-path":
        return lambda im: (len(im.path), im.path)
    folder = rule.removeprefix("prefer:").rstrip(os.sep) + os.sep
    return lambda im: 0 if im.path.startswith(folder) else 1
