"""Indexing throughput, whole processes (start-up included), side by side in one run:

- a decode-only floor: read + JPEG draft decode with 2 processes, nothing else;
- imagededup's ``PHash().encode_images(image_dir, num_enc_workers=2)`` (the peer);
- ``catalog index`` on a new catalogue with each hash method, and with all of them at once;
- re-indexing an unchanged folder of 10,000 files against its first indexing.

Needs ``scripts/bench-setup`` (imagededup without its CNN dependencies). Usage:

    .venv/bin/python benchmarks/indexing.py [--photos ../shared/data/photos] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATALOG = [sys.executable, "-P", "-m", "catalog"]


def floor(folder: str) -> None:
    """The decode-only floor: each file read and draft-decoded once, 2 processes."""
    from multiprocessing import Pool

    files = sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with Pool(2) as pool:
        sizes = pool.map(_decode_one, files, chunksize=1)
    print(len(sizes))


def _decode_one(path: str) -> tuple[int, int]:
    import io

    from PIL import Image

    with open(path, "rb") as handle:
        img = Image.open(io.BytesIO(handle.read()))
    img.draft("RGB", (256, 256))
    img.load()
    return img.size


def imagededup_phash(folder: str) -> None:
    """imagededup's PHash with 2 workers. Its package imports its CNN and plotting modules, which need
    torchvision and matplotlib: empty stand-ins take their place (the hashing code does not use them)."""
    import types

    for name, attrs in {
        "imagededup.methods.cnn": {"CNN": object},
        "imagededup.utils.models": {"CustomModel": object},
        "imagededup.utils.plotter": {"plot_duplicates": None},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    from imagededup.methods import PHash

    encodings = PHash(verbose=False).encode_images(image_dir=folder, num_enc_workers=2)
    print(len(encodings))


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, largest process) of a whole command."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def best_of(repeat: int, make_command) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    results = [run(make_command(n)) for n in range(repeat)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def throughput_table(photos: Path, repeat: int, tmp: Path) -> None:
    count = sum(1 for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    me = [sys.executable, __file__]
    cases: list[tuple[str, object]] = [
        ("decode-only floor (draft, 2 processes)", lambda n: [*me, "_floor", str(photos)]),
        ("imagededup PHash, 2 workers", lambda n: [*me, "_imagededup", str(photos)]),
    ]
    for methods in ("phash", "ahash", "dhash", "whash", "ahash,phash,dhash,whash"):
        cases.append(
            (
                f"catalog index --methods {methods}",
                lambda n, m=methods: [
                    *CATALOG,
                    "--db",
                    str(tmp / f"{m}-{n}.db"),
                    "index",
                    str(photos),
                    "--methods",
                    m,
                ],
            )
        )
    results = {name: best_of(repeat, make) for name, make in cases}
    peer = results["imagededup PHash, 2 workers"][0]
    print(f"\n{count} photos in {photos}, median of {repeat} runs, whole processes\n")
    print("| run | seconds | images/s | throughput vs imagededup | peak RSS MB |")
    print("|---|---|---|---|---|")
    for name, (seconds, rss) in results.items():
        print(f"| {name} | {seconds:.2f} | {count / seconds:.1f} | {peer / seconds:.2f}x | {rss:.0f} |")
    separate = sum(results[f"catalog index --methods {m}"][0] for m in ("phash", "ahash", "dhash", "whash"))
    together = results["catalog index --methods ahash,phash,dhash,whash"][0]
    print(
        f"\nall four hashes in one run: {together:.2f} s; four separate runs: {separate:.2f} s "
        f"({together / separate:.0%} of the sum)"
    )


def reindex_table(tmp: Path, files: int) -> None:
    folder = tmp / "ten-thousand"
    sources = sorted((DATA / "fruits360-96").glob("*.jpg")) + sorted((DATA / "ukbench-500").glob("*.jpg"))
    for n in range(files):
        target = folder / f"{n // 1000:02d}" / f"{n:05d}-{sources[n % len(sources)].name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[n % len(sources)], target)
    db = tmp / "ten-thousand.db"
    first, _ = run([*CATALOG, "--db", str(db), "index", str(folder)])
    again, _ = run([*CATALOG, "--db", str(db), "index", str(folder)])
    from catalog.store import Catalog
    from catalog.sync.indexer import index

    with Catalog.open(f"sqlite:///{db}") as catalog:
        started = time.perf_counter()
        report = index(catalog, [str(folder)])
        in_process = time.perf_counter() - started
    assert report.unchanged == files, report.as_dict()
    startup, _ = run([*CATALOG, "--db", str(db), "status"])
    print(f"\nre-index of {files:,} unchanged files (copies of the fruit/ukbench samples), default methods\n")
    print("| run | seconds | share of first indexing |")
    print("|---|---|---|")
    print(f"| first indexing (whole process) | {first:.2f} | 100% |")
    print(f"| re-index, whole process | {again:.2f} | {again / first:.1%} |")
    share = in_process / first
    print(f"| re-index, library call (scan + compare, no start-up) | {in_process:.3f} | {share:.1%} |")
    print(f"| start-up alone (`catalog status`) | {startup:.2f} | {startup / first:.1%} |")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_floor":
        return floor(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "_imagededup":
        return imagededup_phash(sys.argv[2])
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=Path, default=DATA / "photos")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        throughput_table(args.photos, args.repeat, Path(tmp))
        reindex_table(Path(tmp), args.files)


if __name__ == "__main__":
    main()
