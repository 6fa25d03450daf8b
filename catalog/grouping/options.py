"""What a question asks of the grouping: the kind of grouping, turned copies, verification, the folders
it is about (``--in``, ``--against``), and the CNN."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from catalog.config import DEFAULT_CNN, CnnChoice

GroupingKind = Literal["reference", "components"]


@dataclass(frozen=True)
class Scope:
    """Which images an answer is about: ``inside`` limits groups to those with a member under one of its
    folders; ``against`` pairs only images outside those folders with images under them (the reference
    side), as in "what in Downloads is already in my archive?"."""

    inside: tuple[str, ...] = ()
    against: tuple[str, ...] = ()

    @classmethod
    def of(cls, inside: Sequence[str] = (), against: Sequence[str] = ()) -> Scope:
        return cls(tuple(_folder(p) for p in inside), tuple(_folder(p) for p in against))

    def is_inside(self, path: str) -> bool:
        return not self.inside or _under(path, self.inside)

    def is_reference_side(self, path: str) -> bool:
        """Under an --against folder, and not under an --in folder that lies within one ("is
        WhatsApp/ already in my Pictures/?": Pictures/ but WhatsApp/ is the reference side)."""
        if not _under(path, self.against):
            return False
        nested = tuple(f for f in self.inside if _under(f, self.against) and f not in self.against)
        return not _under(path, nested)


def _folder(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _under(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


@dataclass(frozen=True)
class Options:
    """How to answer: the CNN (the catalogue's unless chosen), the grouping, whether to search turned
    copies and verify pairs (None: the method's default), and which images the answer is about."""

    cnn: CnnChoice = DEFAULT_CNN
    grouping: GroupingKind = "reference"
    transforms: bool | None = None
    verify: bool | None = None
    scope: Scope = Scope()


def outside_against(scope: Scope, path: str) -> bool:
    return scope.is_inside(path) and not scope.is_reference_side(path)
