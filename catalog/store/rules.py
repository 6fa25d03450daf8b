"""Folder rules for settling duplicates: prefer or avoid a folder, remembered in the catalogue."""

from __future__ import annotations

from sqlalchemy import delete, select

from catalog.store.base import StoreBase
from catalog.store.models import FolderRule
from catalog.store.sql import now

#: The rules a folder can have.
RULES = ("prefer", "avoid")


class RulesMixin(StoreBase):
    """Folder rules: ``prefer`` (keep what is in it) or ``avoid`` (never keep from it)."""

    def folder_rules(self) -> list[tuple[str, str]]:
        """Every folder rule: (folder, rule), by folder."""
        with self.session() as s:
            query = select(FolderRule.folder, FolderRule.rule).order_by(FolderRule.folder)
            return [(folder, rule) for folder, rule in s.execute(query)]

    def set_folder_rule(self, folder: str, rule: str) -> bool:
        """Give ``folder`` the rule (replacing its rule); False when it already had it."""
        if rule not in RULES:
            raise ValueError(f"unknown folder rule {rule!r}")
        with self.session() as s:
            found = s.get(FolderRule, folder)
            if found is not None and found.rule == rule:
                return False
            if found is None:
                s.add(FolderRule(folder=folder, rule=rule, created_at=now()))
            else:
                found.rule, found.created_at = rule, now()
        return True

    def remove_folder_rule(self, folder: str) -> bool:
        """Forget the rule of ``folder``; False when it had none."""
        with self.session() as s:
            result = s.execute(delete(FolderRule).where(FolderRule.folder == folder))
            return bool(result.rowcount)  # type: ignore[attr-defined]
