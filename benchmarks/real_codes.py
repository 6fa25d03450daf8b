"""Write the upright phash codes of every picture under a folder to a .npy file (uint64), for
``scale.py --codes FILE.npy``: codes of real pictures only, with none of the crops scale.py adds to its
default pool. Each file is decoded and signed by catalog's own decoder and method; a file that does
not decode is named and left out.

    .venv/bin/python benchmarks/real_codes.py [--root ../shared/data] OUT.npy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from catalog.errors import CatalogError
from catalog.ingest.imaging import decode
from catalog.ingest.scan import image_suffix
from catalog.methods import get_method

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="the .npy file to write")
    parser.add_argument("--root", default=str(DATA), help="the folder of pictures (every file under it)")
    args = parser.parse_args()
    method = get_method("phash")
    codes = []
    for path in sorted(Path(args.root).rglob("*")):
        if not (path.is_file() and image_suffix(path.name)):
            continue
        try:
            decoded = decode(path.read_bytes(), suffix=path.suffix)
        except (CatalogError, OSError, ValueError) as error:
            print(f"left out: {path}: {error}")
            continue
        codes.append(int.from_bytes(method.prepare(decoded)[:8], "big"))
    np.save(args.out, np.asarray(codes, dtype=np.uint64))
    print(f"{len(codes)} upright phash codes of the pictures under {args.root} written to {args.out}")


if __name__ == "__main__":
    main()
