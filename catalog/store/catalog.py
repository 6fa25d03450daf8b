"""The catalogue: one class over the store's concerns, each a module of its own (images, signatures,
pairs, groups, journal, marks, folder rules), all SQL. Import the store's names from ``catalog.store``."""

from __future__ import annotations

from catalog.store.groups import GroupsMixin
from catalog.store.images import ImagesMixin
from catalog.store.journal import JournalMixin
from catalog.store.marks import MarksMixin
from catalog.store.pairs import PairsMixin
from catalog.store.rules import RulesMixin
from catalog.store.signatures import SignaturesMixin


class Catalog(ImagesMixin, SignaturesMixin, PairsMixin, GroupsMixin, JournalMixin, MarksMixin, RulesMixin):
    """An open catalogue. Use :meth:`open`; close with :meth:`close` or as a context manager."""

    def counts(self) -> dict[str, int]:
        summary = self.summary()
        per_method = self.signature_counts()
        return {
            "images": summary.images,
            "errors": summary.errors,
            **{f"signatures:{k}": v for k, v in per_method.items()},
        }
