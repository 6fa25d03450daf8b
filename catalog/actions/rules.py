"""Folder rules across groups: a person says once which folders hold the pictures to keep (``prefer``)
and which hold copies (``avoid``), and every group is settled by them at once, with a preview first.

- The deepest rule over a path holds: ``prefer ~/Pictures`` with ``avoid ~/Pictures/WhatsApp`` avoids
  what is in WhatsApp.
- In a group, the image kept is the first (in the group's keep order) in a preferred folder, else the
  first in no avoided folder. Every other image in a preferred folder is kept too (dupeGuru's reference
  folders): a rule never removes a file from a folder the person prefers.
- A group is left undecided when every image in it is in an avoided folder, and, unless the keep order
  may decide (``others``), when no rule reaches any image of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from catalog.actions.plan import Plan, make_plan
from catalog.actions.policies import folder_names
from catalog.errors import UsageError
from catalog.store import ImageInfo
from catalog.store.rules import RULES

PREFER, NONE, AVOID = 0, 1, 2


def folder_of(given: str) -> str:
    """A folder as a rule names it: absolute, without a trailing separator."""
    if not given.strip():
        raise UsageError("a folder rule needs a folder")
    return os.path.abspath(os.path.expanduser(given)).rstrip(os.sep) or os.sep


@dataclass(frozen=True)
class FolderRules:
    #: (folder, rule), deepest folders first.
    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str]], roots: Sequence[str] = ()) -> FolderRules:
        """The rules of ``rows`` (folder, rule), each folder also under its names in the catalogue's
        paths (``roots``: :func:`catalog.actions.policies.folder_names`)."""
        named = []
        for folder, rule in rows:
            if rule not in RULES:
                raise UsageError(f"unknown folder rule {rule!r}: use {' or '.join(RULES)}")
            named += [(name, rule) for name in folder_names(folder, tuple(roots))]
        return cls(tuple(sorted(named, key=lambda row: (-len(row[0]), row[0]))))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule_of(self, path: str) -> tuple[str, str] | None:
        """The rule that holds for ``path`` (the deepest folder over it), or None."""
        for folder, rule in self.rules:
            if path.startswith(folder.rstrip(os.sep) + os.sep):
                return folder, rule
        return None

    def place(self, path: str) -> int:
        found = self.rule_of(path)
        if found is None:
            return NONE
        return PREFER if found[1] == "prefer" else AVOID


@dataclass
class Decided:
    """What the rules decide for one group (its images in keep order, the reference first)."""

    keep: int | None  # position of the image kept; None: left undecided
    act: list[int] = field(default_factory=list)  # positions acted on
    protected: list[int] = field(default_factory=list)  # other images kept: in a preferred folder
    reason: str = ""  # why it is left undecided, or what decided it

    @property
    def by_rule(self) -> bool:
        return self.keep is not None and self.reason.startswith("rule")


def decide(group: Sequence[ImageInfo], rules: FolderRules, others: bool = False) -> Decided:
    """Which image of ``group`` the rules keep, and which they act on. With ``others``, a group no rule
    reaches keeps its reference (the keep order's original)."""
    places = [rules.place(im.path) for im in group]
    if all(place == AVOID for place in places):
        return Decided(None, reason="every image is in a folder to avoid")
    if all(place == NONE for place in places):
        if not others:
            return Decided(None, reason="no folder rule reaches it")
        return Decided(0, act=list(range(1, len(group))), reason="the keep order (no rule reaches it)")
    keep = min(range(len(group)), key=lambda k: (places[k], k))
    act = [k for k in range(len(group)) if k != keep and places[k] != PREFER]
    protected = [k for k in range(len(group)) if k != keep and places[k] == PREFER]
    if not act:
        return Decided(None, protected=protected, reason="every other copy is in a folder you prefer")
    return Decided(keep, act, protected, reason="rule")


@dataclass
class RulePlan:
    """The plan for every group, with what a person reads before saying yes."""

    plan: Plan
    decided: list[Decided]
    #: Groups settled by a rule, by the keep order alone, and left undecided (by reason).
    by_rule: int = 0
    by_order: int = 0
    undecided: dict[str, int] = field(default_factory=dict)
    protected: int = 0  # images kept because they are in a preferred folder

    @property
    def files(self) -> int:
        return sum(1 for step in self.plan.steps if step.sidecar_of is None)

    @property
    def bytes(self) -> int:
        return sum(step.image.size for step in self.plan.steps)


def plan_by_rules(
    groups: Sequence[Sequence[ImageInfo]],
    rules: FolderRules,
    action: str,
    roots: Sequence[str],
    to: str | None = None,
    others: bool = False,
    verify_content: bool = False,
    raw_pairs: bool = False,
    linked: Mapping[str, int] | None = None,
) -> RulePlan:
    """Plan ``action`` on every group as the folder rules decide it (each step checked against the disk
    now, as :func:`catalog.actions.plan.make_plan` checks; ``apply`` checks again)."""
    decided = [decide(group, rules, others) for group in groups]
    chosen = [
        [group[d.keep], *(group[k] for k in d.act)]
        for group, d in zip(groups, decided, strict=True)
        if d.keep is not None and d.act
    ]
    result = RulePlan(make_plan(chosen, None, action, roots, to, verify_content, raw_pairs, linked), decided)
    for d in decided:
        if d.keep is None:
            result.undecided[d.reason] = result.undecided.get(d.reason, 0) + 1
        elif d.by_rule:
            result.by_rule += 1
        else:
            result.by_order += 1
        result.protected += len(d.protected)
    return result
