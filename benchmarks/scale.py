"""A catalogue of N photos with real-distribution phash signatures: what each command costs.

Real phash codes are not uniform: every code has 32 ones, the DC bit is always set, and a library with
bursts holds many near-identical frames. So the catalogue is filled with signatures built from real ones:
by default the phash codes of the sample photos (../shared/data: the camera photos, UKBench 500,
Fruits-360) and of 30 random crops of each, about 20,000 codes of real pictures (or ``--codes FILE.npy``,
a uint64 array of upright codes), sampled with replacement, each bit flipped with probability 0.05.
``--bursts F`` puts a share F of the images in bursts of 5-20 frames of one scene (each frame a base code
with bits flipped with probability 0.02).

Then, each as a whole process with its peak RSS (/usr/bin/time):

- ``first index``: the filled catalogue's first ``catalog index``, which stores the near pairs of every
  code (``catalog.search.pairs``) and the groups (``catalog.grouping.stored``), as a catalogue made
  before them gets them;
- ``index``: ``catalog index`` of 1,000 new real image files into the filled catalogue (and into an empty
  one, for the throughput ratio); ``--rounds R`` (3) folders of 1,000 each, indexed one after another
  into the filled catalogue and each into an empty one of its own: the median of each (this machine's
  timings of one run wander by a quarter), every run listed beside it;
- ``dupes, first``, ``copies, first``: the catalogue's first ``catalog dupes --method phash -f json``
  and ``catalog copies --method phash -f json`` after its first index (both also with the peak of all
  their processes: from 50,000 images on ``copies`` forks a reader and a formatter): ``dupes`` reads
  the groups that index stored (``catalog.grouping.stored``), ``copies`` counts from the stored pairs;
- ``dupes``, ``copies``: the same questions after the ``index`` of 1,000 new files, which brought the
  stored groups up to date; the groups read are checked against the groups made from every image
  (``catalog.grouping.reference.find_groups``, not timed);
- ``query``: ``catalog query IMAGE --method phash`` (and, in one process, the p95 of 50 queries).

With ``--postgres`` the catalogues live in a throwaway PostgreSQL server started as the tests start one
(``tests/postgres_server.py``); the peaks are then the catalog processes' alone, not the server's.

    .venv/bin/python benchmarks/scale.py [--n 100000] [--bursts 0.3] [--codes FILE.npy] [--postgres]
                                         [--format json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from catalog.ingest.imaging import decode  # noqa: E402
from catalog.ingest.scan import image_suffix  # noqa: E402
from catalog.methods import get_method  # noqa: E402
from common import fill_catalogue, run_catalog, run_catalog_tree  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def sample_codes(crops: int = 30, seed: int = 11) -> np.ndarray:
    """Upright phash codes of the sample photos and of ``crops`` random crops of each (50-95 % of each
    side): about 20,000 codes of real pictures, as many as the 20,494 real photos issue 13 measured on,
    computed by catalog's own method from one decode per photo."""
    from catalog.ingest.imaging import Decoded

    method = get_method("phash")
    rng = np.random.default_rng(seed)
    codes = []
    for folder in ("photos", "ukbench-500", "fruits360-96"):
        for path in sorted((DATA / folder).iterdir()):
            if not (path.is_file() and image_suffix(path.name)):
                continue
            decoded = decode(path.read_bytes())
            codes.append(int.from_bytes(method.prepare(decoded)[:8], "big"))
            picture = decoded.rgb
            w, h = picture.size
            for _ in range(crops):
                cw, ch = int(w * rng.uniform(0.5, 0.95)), int(h * rng.uniform(0.5, 0.95))
                x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                crop = picture.crop((x, y, x + cw, y + ch))
                value = method.prepare(Decoded(source=crop, width=cw, height=ch, format="JPEG"))
                codes.append(int.from_bytes(value[:8], "big"))
    return np.asarray(codes, dtype=np.uint64)


def flip(codes: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    bits = rng.random((len(codes), 64)) < p
    masks = np.packbits(bits, axis=1, bitorder="big").view(">u8").astype(np.uint64).ravel()
    return codes ^ masks


def make_codes(real: np.ndarray, n: int, bursts: float, rng: np.random.Generator) -> np.ndarray:
    in_bursts = int(n * bursts)
    plain = flip(real[rng.integers(0, len(real), n - in_bursts)], 0.05, rng)
    frames = []
    while sum(len(f) for f in frames) < in_bursts:
        base = flip(real[rng.integers(0, len(real), 1)], 0.05, rng)
        frames.append(flip(np.repeat(base, int(rng.integers(5, 21))), 0.02, rng))
    burst = np.concatenate(frames)[:in_bursts] if frames else np.zeros(0, dtype=np.uint64)
    out = np.concatenate([plain, burst])
    rng.shuffle(out)
    return out


def signatures(codes: np.ndarray) -> list[bytes]:
    """64-byte phash signatures (8 codes: the picture's and its turns'); the turned codes are left as the
    upright one, which only ``--transforms`` reads."""
    raw = np.repeat(codes.astype(">u8")[:, None], 8, axis=1)
    data = raw.tobytes()
    return [data[k * 64 : (k + 1) * 64] for k in range(len(codes))]


def new_images(folder: Path, count: int, seed: int = 7) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        img = Image.new("RGB", (320, 240), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(8):
            x, y = int(rng.integers(0, 280)), int(rng.integers(0, 200))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.rectangle((x, y, x + int(rng.integers(10, 120)), y + int(rng.integers(10, 90))), fill=fill)
        img.save(folder / f"new{k:04d}.jpg", quality=90)


def _median_row(command: str, runs: list[tuple[float, float, str]]) -> dict[str, object]:
    """A table row of several runs of one command: the median seconds, the largest peak, each run."""
    seconds = sorted(run[0] for run in runs)
    return {
        "command": command,
        "seconds": float(np.median(seconds)),
        "peak_mb": max(run[1] for run in runs),
        "runs": [round(run[0], 2) for run in runs],
    }


def check_stored_groups(url: str) -> None:
    """The stored groups, read as ``dupes`` reads them, equal the groups made from every image."""
    from catalog.grouping.options import Options
    from catalog.grouping.reference import find_groups
    from catalog.grouping.stored import stored_grouping
    from catalog.store import Catalog

    with Catalog.open(url) as catalog:
        kept = stored_grouping(catalog, get_method("phash"), None, Options())
        if kept is None:
            raise SystemExit("dupes: the stored groups do not answer after the index")
        made = find_groups(catalog, "phash")
        a, b = kept.table, made.table
        same = (
            np.array_equal(a.images.id[a.member], b.images.id[b.member])
            and np.array_equal(a.starts, b.starts)
            and np.array_equal(a.score, b.score, equal_nan=True)
        )
        if not same:
            raise SystemExit("dupes: the stored groups differ from the groups made from every image")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--bursts", type=float, default=0.0, help="share of images in bursts of frames")
    parser.add_argument("--codes", help="a .npy file of uint64 upright phash codes to sample from")
    parser.add_argument("--crops", type=int, default=30, help="crops of each sample photo in the code pool")
    parser.add_argument("--method", default="phash", choices=["phash"])
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--postgres", action="store_true", help="catalogues in a throwaway PostgreSQL server")
    parser.add_argument("--rounds", type=int, default=3, help="folders of 1,000 new files indexed (median)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    rng = np.random.default_rng(2026)
    real = np.load(args.codes).astype(np.uint64) if args.codes else sample_codes(args.crops)
    work = Path(tempfile.mkdtemp(prefix="catalog-scale-"))
    rows = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        if args.postgres:
            from sqlalchemy import create_engine, text

            from tests.postgres_server import throwaway_server

            db = stack.enter_context(throwaway_server())
        else:
            db = f"sqlite:///{work / 'big.db'}"

        def empty(k: int) -> str:
            """An empty catalogue of its own for round ``k``."""
            if args.postgres:
                return db.replace("/postgres?", f"/empty{k}?")
            return f"sqlite:///{work / f'empty{k}.db'}"

        fill_catalogue(db, "phash", signatures(make_codes(real, args.n, args.bursts, rng)))
        folders = [work / f"new{k}" for k in range(args.rounds)]
        for k, folder in enumerate(folders):
            new_images(folder, 1000, seed=7 + k)
        (work / "nothing").mkdir()
        # A catalogue made before stored pairs: its first index stores the pairs of every code.
        seconds, peak, _ = run_catalog("--db", db, "index", str(work / "nothing"), "--methods", "phash")
        rows.append({"command": "first index (stores every pair)", "seconds": seconds, "peak_mb": peak})
        runs = []
        for k, folder in enumerate(folders):
            if args.postgres:
                with create_engine(db, isolation_level="AUTOCOMMIT").connect() as server:
                    server.execute(text(f"CREATE DATABASE empty{k}"))
            runs.append(run_catalog("--db", empty(k), "index", str(folder), "--methods", "phash"))
        rows.append(_median_row("index (1,000 into an empty catalogue)", runs))
        # The catalogue's first answers, after its first index.
        for command in ("dupes", "copies"):
            asked = ("--db", db, command, "--method", "phash", "-f", "json")
            seconds, peak, tree, _ = run_catalog_tree(*asked)
            rows.append(
                {"command": f"{command}, first", "seconds": seconds, "peak_mb": peak, "tree_pss_mb": tree}
            )
        runs = [run_catalog("--db", db, "index", str(folder), "--methods", "phash") for folder in folders]
        rows.append(_median_row("index", runs))
        # Asked again after the index, which brought the stored groups up to date.
        for command in ("dupes", "copies"):
            asked = ("--db", db, command, "--method", "phash", "-f", "json")
            seconds, peak, tree, out = run_catalog_tree(*asked)
            rows.append({"command": command, "seconds": seconds, "peak_mb": peak, "tree_pss_mb": tree})
            if command == "dupes":
                groups = json.loads(out)["groups"]
        check_stored_groups(db)
        probe = str(folders[0] / "new0000.jpg")
        seconds, peak, _ = run_catalog("--db", db, "query", probe, "--method", "phash")
        rows.append({"command": "query", "seconds": seconds, "peak_mb": peak})
        from catalog.search.query import nearest
        from catalog.store import Catalog

        with Catalog.open(db) as catalog:
            nearest(catalog, probe, "phash", 10)
            times = []
            for k in range(50):
                started = time.perf_counter()
                nearest(catalog, str(folders[0] / f"new{k:04d}.jpg"), "phash", 10)
                times.append(time.perf_counter() - started)
        p95 = float(np.percentile(times, 95))
    store = "postgresql" if args.postgres else "sqlite"
    result = {"n": args.n, "method": args.method, "bursts": args.bursts, "store": store, "rows": rows}
    if args.format == "json":
        print(json.dumps({**result, "query_p95_ms": round(p95 * 1000, 1), "groups": len(groups)}, indent=2))
        return
    print(
        f"{args.n:,} phash signatures ({args.bursts:.0%} in bursts), "
        f"{len(groups):,} groups at the default threshold, {store}"
    )
    print("| command | seconds | peak MB (largest process) | peak MB (all its processes, PSS) |")
    print("|---|---|---|---|")
    for row in rows:
        tree = f"{row['tree_pss_mb']:.0f}" if "tree_pss_mb" in row else ""
        runs = f" (median of {', '.join(map(str, row['runs']))})" if len(row.get("runs", ())) > 1 else ""
        print(f"| {row['command']} | {row['seconds']:.2f}{runs} | {row['peak_mb']:.0f} | {tree} |")
    seconds = {row["command"]: row["seconds"] for row in rows}
    ratio = seconds["index (1,000 into an empty catalogue)"] / seconds["index"]
    print(f"index throughput into the filled catalogue vs an empty one: {ratio:.2f}")
    print(f"query in one process, p95 of 50: {p95 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
