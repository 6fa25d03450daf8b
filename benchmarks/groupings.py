"""Which grouping to ship: the same verified pairs grouped four ways, on the near-miss mixture.

- reference (catalog's default): images in keep order; each one not yet grouped becomes the reference of
  the images not yet grouped that match it directly;
- components: connected components of all pairs (catalog before issue 10);
- greedy: pairs from the strongest down; two groups merge only when every member of the merged group
  matches its reference (the image to keep) directly;
- mutual best: components of the pairs in which each image is the other's best match.

Uses the mixture and catalogue that benchmarks/near_misses.py leaves with ``--keep DIR``.

    .venv/bin/python benchmarks/groupings.py --keep DIR [--method cnn] [--threshold T]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from near_misses import load_truth, score  # noqa: E402

from catalog.grouping.keep import keep_order  # noqa: E402
from catalog.grouping.matching import matching_pairs  # noqa: E402
from catalog.grouping.options import Options  # noqa: E402
from catalog.grouping.reference import find_groups  # noqa: E402
from catalog.grouping.table import components  # noqa: E402
from catalog.store import Catalog  # noqa: E402


def greedy(pairs, order_rank, higher):  # type: ignore[no-untyped-def]
    direct = {}
    for a, b, s in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.scores.tolist(), strict=True):
        direct[(a, b)] = direct[(b, a)] = s
    members = {c: [c] for c in range(len(pairs.classes))}
    owner = list(range(len(pairs.classes)))
    for k in np.argsort(-pairs.scores if higher else pairs.scores, kind="stable").tolist():
        a, b = owner[pairs.left[k]], owner[pairs.right[k]]
        if a == b:
            continue
        merged = members[a] + members[b]
        reference = min(merged, key=lambda c: order_rank[c])
        if all(c == reference or (reference, c) in direct for c in merged):
            members[a] = merged
            del members[b]
            for c in merged:
                owner[c] = a
    return [g for g in members.values() if len(g) > 1]


def mutual_best(pairs, higher):  # type: ignore[no-untyped-def]
    best = {}
    for a, b, s in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.scores.tolist(), strict=True):
        for x, y in ((a, b), (b, a)):
            if x not in best or (s > best[x][1] if higher else s < best[x][1]):
                best[x] = (y, s)
    keep = [k for k, (a, b) in enumerate(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
            if best[a][0] == b and best[b][0] == a]  # fmt: skip
    labels = components(len(pairs.classes), pairs.left[keep], pairs.right[keep])
    by_label: dict[int, list[int]] = {}
    for c, label in enumerate(labels.tolist()):
        by_label.setdefault(label, []).append(c)
    return [g for g in by_label.values() if len(g) > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--method", default="cnn")
    parser.add_argument("--threshold", type=float)
    args = parser.parse_args()
    truth = load_truth(args.keep / "mixture")
    with Catalog.open(f"sqlite:///{args.keep}/mixture.db") as catalog:
        method, threshold, pairs, verification, transforms = matching_pairs(
            catalog, args.method, args.threshold, Options()
        )
        verified = verification is not None
        if verification is not None:
            pairs = verification.all(pairs)
        info = catalog.image_info()
        first = [info[members[0]] for members in pairs.classes]
        rank = {c: r for r, c in enumerate(keep_order(first))}
        paths = [[info[i].path for i in members] for members in pairs.classes]

        def expand(groups):  # type: ignore[no-untyped-def]
            return [[p for c in g for p in paths[c]] for g in groups]

        print(f"{method.name}, threshold {threshold:g}, verified {verified}, transforms {transforms}\n")
        print(
            "| grouping | pair recall | pair precision | groups | groups mixing pictures | largest excess |"
        )
        print("|---|---|---|---|---|---|")
        options = Options(transforms=transforms, verify=verified)
        candidates = {
            "reference (default)": [
                [m.image.path for m in g]
                for g in find_groups(catalog, args.method, threshold, options).groups
            ],
            "components": [
                [m.image.path for m in g]
                for g in find_groups(
                    catalog, args.method, threshold, Options(grouping="components", transforms=transforms)
                ).groups
            ],
            "greedy by strength": expand(greedy(pairs, rank, method.higher_is_similar)),
            "mutual best match": expand(mutual_best(pairs, method.higher_is_similar)),
        }
        for name, groups in candidates.items():
            s = score(groups, truth)
            print(
                f"| {name} | {s['recall']:.3f} | {s['precision']:.4f} | {s['groups']} | {s['mixed']} "
                f"| {s['largest_excess']} |"
            )


if __name__ == "__main__":
    main()
