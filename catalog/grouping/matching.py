"""The matching pairs a question asks for: the search layer's near pairs of a method (stored, searched,
or from the HNSW index), between classes of identical signatures, verified by local features where
the method asks for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from catalog.errors import UsageError
from catalog.grouping.early import EarlyReads
from catalog.grouping.options import Options
from catalog.methods import Method, catalogue_method, check_threshold, get_method
from catalog.search.kinds import search_for
from catalog.search.matches import Pairs
from catalog.store import Catalog

if TYPE_CHECKING:
    from catalog.search.verdicts import KeptVerdicts


def matching_pairs(
    catalog: Catalog,
    method_name: str,
    threshold: float | None,
    options: Options,
    reads: EarlyReads | None = None,
) -> tuple[Method, float, Pairs, Verification | None, bool]:
    """(method, threshold, pairs, their verification if they are to be verified, whether turned copies
    were searched). ``verify`` None: when the method has a verifier and the catalogue its signatures;
    ``transforms`` None: the method's default. ``reads``: started here, once the method is known."""
    stored = catalog.methods()
    method = catalogue_method(method_name, options.cnn, stored, threshold)
    transforms = method.transforms_by_default if options.transforms is None else options.transforms
    verify = options.verify
    verifier = method.verified_by
    if verify and verifier is None:
        raise UsageError(f"{method.name} pairs are not verified: --verify applies to cnn and cnn-euclidean")
    if verify and verifier not in stored:
        raise UsageError(
            f"this catalogue has no {verifier} features to verify pairs with; add them with "
            f"`catalog index PATH --methods {verifier}`"
        )
    verifying = verifier is not None and verifier in stored and verify is not False
    if threshold is None and verifying:
        threshold = method.verified_threshold
    threshold = check_threshold(method, threshold)
    search = search_for(method)
    if reads is not None:
        reads.start(search.early_reader())
    pairs = search.near_pairs(catalog, threshold, transforms, reads.first if reads is not None else None)
    verification = (
        Verification(catalog, method, pairs, get_method(verifier)) if verifier and verifying else None
    )
    return method, threshold, pairs, verification, transforms


class Verification:
    """Confirms a method's pairs that score below its ``verify_above`` by ``verifier``'s local features,
    each pair once, on demand: reference grouping asks only about the pairs of each new reference with
    the images not yet grouped, a fraction of all pairs in a dense library. A pair with an image that
    lacks the features (indexed before they were) is kept without asking: which images have them is
    read once."""

    def __init__(self, catalog: Catalog, method: Method, pairs: Pairs, verifier: Method):
        self.catalog, self.verifier = catalog, verifier
        first = np.full(pairs.count, -1, dtype=np.int64)
        first[pairs.class_of[::-1]] = pairs.image_ids[::-1]  # each class's first image
        self.first = first.tolist()
        featured = np.isin(first, np.asarray(catalog.signature_ids(verifier.name), dtype=np.int64))
        unsure = ~method.is_match(pairs.scores, method.verify_above)
        #: The pairs to ask about: unsure, both sides with features.
        self.asked = unsure & featured[pairs.left] & featured[pairs.right]
        self.unsure = set(zip(pairs.left[self.asked].tolist(), pairs.right[self.asked].tolist(), strict=True))
        self.verdicts: dict[tuple[int, int], bool] = {}
        self.left, self.right = pairs.left, pairs.right
        #: Verdicts of earlier answers (``catalog.search.verdicts``), read by :meth:`recall`; the content hash
        #: of each asked class's first image, their key.
        self.kept: KeptVerdicts | None = None
        self.hashes: dict[int, str] = {}

    def recall(self) -> None:
        """Take the verdicts kept from earlier answers for the pairs to ask about (once): the verifier
        is then asked only about the others."""
        if self.kept is not None:
            return
        from catalog.search.verdicts import KeptVerdicts

        self.kept = KeptVerdicts.of(self.catalog, self.verifier)
        asked = np.flatnonzero(self.asked)
        if not len(asked):
            return
        left, right = self.left[asked], self.right[asked]
        classes = np.unique(np.concatenate([left, right])).tolist()
        by_id = self.catalog.content_hashes([self.first[c] for c in classes])
        self.hashes = {c: by_id[self.first[c]] for c in classes if self.first[c] in by_id}
        if not self.kept.known:
            return
        for a, b in self.unsure:
            low, high = min(a, b), max(a, b)
            if high in self.hashes and low in self.hashes:
                verdict = self.kept.get(self.hashes[high], self.hashes[low])
                if verdict is not None:
                    self.verdicts[(low, high)] = verdict

    def known(self) -> np.ndarray:
        """Per pair: -1 (not decided yet, or not asked about), 0 (rejected) or 1 (confirmed); the kept
        verdicts recalled first."""
        self.recall()
        known = np.full(len(self.asked), -1, dtype=np.int8)
        asked = np.flatnonzero(self.asked)
        low = np.minimum(self.left[asked], self.right[asked]).tolist()
        high = np.maximum(self.left[asked], self.right[asked]).tolist()
        for k, key in zip(asked.tolist(), zip(low, high, strict=True), strict=True):
            verdict = self.verdicts.get(key)
            if verdict is not None:
                known[k] = verdict
        return known

    def save(self) -> None:
        """Keep what the verifier was asked this time, for the next answer."""
        if self.kept is not None:
            self.kept.save()

    def pending(self) -> int:
        """How many pairs are still to be verified."""
        return len(self.unsure) - len(self.verdicts)

    def confirm(
        self, reference: int, candidates: list[int], features: Mapping[int, bytes] | None = None
    ) -> list[int]:
        """The candidate classes whose pair with ``reference`` is sure or confirmed (``features``: the
        verifier's signatures by image id, when read already)."""
        keys = {n: (min(reference, n), max(reference, n)) for n in candidates}
        self.recall()
        todo = [n for n in candidates if keys[n] in self.unsure and keys[n] not in self.verdicts]
        if todo:
            if features is None:
                ids = [self.first[c] for c in (reference, *todo)]
                features = self.catalog.signature_map(self.verifier.name, ids)
            for n in todo:
                # One way for every pair, whichever of the two is the reference (the verifier is not
                # symmetric): a verdict never depends on the order in which the loop meets the pairs.
                low, high = keys[n]
                a, b = features.get(self.first[high]), features.get(self.first[low])
                if a is None or b is None:
                    self.verdicts[keys[n]] = True
                    continue
                verdict = self.verdicts[keys[n]] = self.verifier.confirms(a, b)
                if self.kept is not None and high in self.hashes and low in self.hashes:
                    self.kept.add(self.hashes[high], self.hashes[low], verdict)
        return [n for n in candidates if keys[n] not in self.unsure or self.verdicts[keys[n]]]

    def decide(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Whether each pair (``left[k]``, ``right[k]``) of classes is kept (verified where asked). The
        features of all of them are read in one go."""
        self.recall()
        by_class: dict[int, list[int]] = {}
        low, high = np.minimum(left, right).tolist(), np.maximum(left, right).tolist()
        for a, b in zip(low, high, strict=True):
            if (a, b) in self.unsure and (a, b) not in self.verdicts:  # not known yet: read and ask
                by_class.setdefault(a, []).append(b)
        classes = sorted({c for a, others in by_class.items() for c in (a, *others)})
        features = self.catalog.signature_map(self.verifier.name, [self.first[c] for c in classes])
        for a, others in by_class.items():
            self.confirm(a, others, features)
        keys = zip(low, high, strict=True)
        return np.asarray([k not in self.unsure or self.verdicts[k] for k in keys], dtype=bool)

    def all(self, pairs: Pairs) -> Pairs:
        """``pairs`` (those this verification was made for) without those verification rejects (every
        pair to ask about checked)."""
        keep = np.ones(len(pairs.left), dtype=bool)
        asked = np.flatnonzero(self.asked)
        keep[asked] = self.decide(pairs.left[asked], pairs.right[asked])
        return pairs.keeping(keep)
