"""The groups and copy counts kept as rows (``catalog.grouping.stored``), and the images whose groups
wait for a refresh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, text, update

from catalog.store.base import StoreBase
from catalog.store.models import CopyCount, GroupMember, MethodRecord, Regroup
from catalog.store.sql import _insert_rows, _raw, _raw_in, _signed, chunked

if TYPE_CHECKING:
    import numpy as np


class GroupsMixin(StoreBase):
    """The groups and copy counts kept as rows (``catalog.grouping.stored``), and the images whose groups
    wait for a refresh."""

    def groups_key(self, method: str) -> str | None:
        """What ``method``'s stored groups answer ("THRESHOLD@VERSION"), None when it keeps none."""
        with self.session() as s:
            return s.scalar(select(MethodRecord.groups_key).where(MethodRecord.name == method))

    def regroup_entries(self, method: str) -> tuple[list[int], list[int]]:
        """(the ``regroup`` entries of ``method``, the ids of the images they name, each once)."""
        with self.session() as s:
            rows = _raw(s, "SELECT id, image_id FROM regroup WHERE method = {}", method)
        return [r[0] for r in rows], sorted({r[1] for r in rows})

    def count_regroup(self, method: str) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).where(Regroup.method == method)) or 0)

    def drop_regroup(self, method: str) -> None:
        """Forget ``method``'s entries (a method that keeps no groups)."""
        with self.session() as s:
            s.execute(delete(Regroup).where(Regroup.method == method))

    def group_references(self, method: str, ids: Sequence[int]) -> list[int]:
        """The references of the stored groups of ``method`` that hold any of ``ids``."""
        # No DISTINCT: with it SQLite walks the (method, reference) index through every member to skip
        # sorting, 0.19 s for 1,000 ids at a million images, instead of 1,000 seeks by primary key (3 ms).
        sql = "SELECT reference_id FROM group_members WHERE method = {}"
        with self.session() as s:
            return sorted({r[0] for r in _raw_in(s, sql, method, "image_id", ids)})

    def group_rows(
        self, method: str, references: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(image id, reference id, rank, score: NaN for none) of every member of ``method``'s stored
        groups (or of the groups of ``references``), as NumPy arrays, read on the driver's cursor."""
        import numpy as np

        sql = "SELECT image_id, reference_id, rank, score FROM group_members WHERE method = {}"
        with self.session() as s:
            rows = _raw_in(s, sql, method, "reference_id", references)
        n = len(rows)
        image = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        reference = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        rank = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        score = np.fromiter((np.nan if r[3] is None else r[3] for r in rows), dtype=np.float64, count=n)
        return image, reference, rank, score

    def group_counts(self) -> dict[str, dict[str, int]]:
        """For each method that keeps groups: how many groups and images they hold, and how many
        ``regroup`` entries wait for the next refresh."""
        with self.session() as s:
            keys = dict(s.execute(select(MethodRecord.name, MethodRecord.groups_key)).all())
            held = {
                m: (int(g), int(n))
                for m, g, n in s.execute(
                    select(
                        GroupMember.method,
                        func.count(func.distinct(GroupMember.reference_id)),
                        func.count(),
                    ).group_by(GroupMember.method)
                ).all()
            }
            waiting = dict(s.execute(select(Regroup.method, func.count()).group_by(Regroup.method)).all())
        return {
            name: {
                "groups": held.get(name, (0, 0))[0],
                "images": held.get(name, (0, 0))[1],
                "waiting": int(waiting.get(name, 0)),
            }
            for name in sorted(keys)
            if keys[name] is not None
        }

    def copy_rows(
        self, method: str, ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image id, upright code, copies) of ``method``'s stored copy counts (of ``ids``, or all)."""
        import numpy as np

        sql = "SELECT image_id, code, copies FROM copy_counts WHERE method = {}"
        with self.session() as s:
            rows = _raw_in(s, sql, method, "image_id", ids)
        n = len(rows)
        image = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        code = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n).view(np.uint64)
        copies = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        return image, code, copies

    def replace_groups(
        self,
        method: str,
        key: str,
        drop: Sequence[int] | None,
        rows: Sequence[tuple[int, int, int, float | None]],
        entries: Sequence[int],
        recounted: Sequence[int] | None = (),
        counts: Sequence[tuple[int, int, int]] = (),
    ) -> bool:
        """In one transaction: drop the stored groups of ``method`` whose references are ``drop`` (all of
        them for None), add ``rows`` (image id, reference id, rank, score); drop the copy counts of the
        images ``recounted`` (all for None) and add ``counts`` (image id, upright code, copies); remove
        the ``regroup`` entries read and record that the groups answer ``key``. False (nothing written)
        when the groups no longer answer the key they were read at, or another refresh took the
        entries: another process made them meanwhile."""
        with self.session() as s:
            # A write first: the method's row is locked until this transaction ends (SQLite's one
            # writer; a row lock on PostgreSQL), so two refreshes of one method check and write one
            # after the other, and each check sees what the other wrote.
            s.execute(
                update(MethodRecord)
                .where(MethodRecord.name == method)
                .values(groups_key=MethodRecord.groups_key)
            )
            current = s.scalar(select(MethodRecord.groups_key).where(MethodRecord.name == method))
            if drop is not None and current != key:
                return False
            # The entries read are still there, and nothing else in their range: another refresh
            # would have taken them, and a writer adds rows after them.
            first, last = (min(entries), max(entries)) if entries else (0, -1)
            within = (Regroup.method == method, Regroup.id >= first, Regroup.id <= last)
            if entries and s.scalar(select(func.count()).where(*within)) != len(entries):
                return False
            if recounted is None:
                s.execute(delete(CopyCount).where(CopyCount.method == method))
            else:
                for chunk in chunked(sorted(recounted)):
                    s.execute(
                        delete(CopyCount).where(CopyCount.method == method, CopyCount.image_id.in_(chunk))
                    )
            if counts:
                _insert_rows(
                    s,
                    CopyCount,
                    [
                        {"method": method, "image_id": i, "code": _signed(c), "copies": n}
                        for i, c, n in counts
                    ],
                )
            if drop is None:
                s.execute(delete(GroupMember).where(GroupMember.method == method))
            else:
                for chunk in chunked(sorted(drop)):
                    s.execute(
                        delete(GroupMember).where(
                            GroupMember.method == method, GroupMember.reference_id.in_(chunk)
                        )
                    )
            if rows:
                _insert_rows(
                    s,
                    GroupMember,
                    [
                        {"method": method, "image_id": i, "reference_id": r, "rank": k, "score": v}
                        for i, r, k, v in rows
                    ],
                )
            if entries:
                s.execute(delete(Regroup).where(*within))
            s.execute(update(MethodRecord).where(MethodRecord.name == method).values(groups_key=key))
        if drop is None and self.engine.dialect.name == "postgresql":
            # Written all at once, the tables would keep no statistics until autovacuum comes by, and
            # the planner would join the members to their images row by row: a nested loop over
            # 80,000 members took 0.4 s where a hash join takes 0.1 s (``dupes`` at 100,000 images).
            with self.session() as s:
                s.execute(text("ANALYZE group_members, copy_counts"))
        return True
