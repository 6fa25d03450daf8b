"""Signatures of image files outside any catalogue, and two files compared by every method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from catalog.config import DEFAULT_CNN, CnnChoice
from catalog.ingest.worker import Task, file_signatures, process  # noqa: F401 - compare signs files
from catalog.methods import Method, get_method, method_names


@dataclass
class Comparison:
    method: str
    score: float  # over turns and mirror-turns for the methods that search them by default (cnn)
    score_kind: str
    duplicate: bool  # what `dupes` would say at its defaults (cnn: verified by local features)

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "score": self.score,
            "score_kind": self.score_kind,
            "duplicate": self.duplicate,
        }


def compare_files(
    a: str, b: str, names: Sequence[str] | None = None, cnn: CnnChoice = DEFAULT_CNN
) -> list[Comparison]:
    """Two image files compared by the named methods (default: every method); each file decoded once."""
    names = list(names) if names else method_names()
    verifiers = {get_method(n).verified_by for n in names} - {None}
    signed = list(dict.fromkeys([*names, *(v for v in verifiers if v)]))
    first, second = file_signatures(a, signed, cnn), file_signatures(b, signed, cnn)
    results = []
    for name in names:
        method = get_method(name)
        if method.transforms_by_default:
            score = round(method.turned_score(first[name], second[name]), 6)
        else:
            score = round(float(method.score(first[name], second[name])), 6)
        if method.verified_by:
            verifier = get_method(method.verified_by)
            confirmed = method.is_match(score, method.verify_above) or _confirms(verifier, first, second)
            duplicate = bool(method.is_match(score, method.verified_threshold) and confirmed)
        elif not method.answers_alone:  # a verifier: whether it confirms the pair, as dupes asks it
            duplicate = _confirms(method, first, second)
        else:
            duplicate = bool(method.is_match(score, method.default_threshold))
        results.append(Comparison(name, score, method.score_kind, duplicate))
    return results


def _confirms(verifier: Method, first: Mapping[str, bytes], second: Mapping[str, bytes]) -> bool:
    """Whether ``verifier`` confirms the two files' pair, either way round (it is not symmetric; dupes
    asks one way, by the images' places in its tables, which two files alone do not have)."""
    a, b = first[verifier.name], second[verifier.name]
    return bool(verifier.confirms(a, b) or verifier.confirms(b, a))
