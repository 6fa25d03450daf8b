"""The review page at scale, and what its thumbnails cost.

1. **10,000 groups.** Makes 10,000 distinct pictures (random shapes on gradients, 160x120, like the
   tests' synthetic images) and a re-encoded copy of each (JPEG quality 70): 20,000 files, indexed with
   phash. Starts `catalog review --no-open` as a process and opens its address in Debian's Chromium
   (Playwright): the time from the request to the first groups on screen (DOMContentLoaded; the page is
   rendered on the server), and until the first screen's thumbnails have arrived (cold cache).
2. **Thumbnails against indexing.** On the sample photos (the 60 camera photos of 0.3-22 MP, and
   UKBench 500), `catalog.sync.indexer.index` with the default methods (2 processes) and the thumbnail maker
   (2 processes) on the same files: images per second, and the ratio.

    .venv/bin/python benchmarks/review.py [--groups 10000] [--keep DIR] [--format json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog.evaluation.variants import synthetic
from catalog.ingest.scan import image_suffix
from catalog.review.thumbs import Thumbnails
from catalog.store import Catalog
from catalog.sync.indexer import index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def page_at_scale(work: Path, groups: int) -> dict[str, float]:
    library = work / "many"
    for n in range(groups):
        folder = library / f"{n // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        img = synthetic(n)
        img.save(folder / f"{n:05d}.jpg", quality=95)
        img.save(folder / f"{n:05d}-copy.jpg", quality=70)
    db = work / "many.db"
    started = time.perf_counter()
    with Catalog.open(f"sqlite:///{db}") as catalog:
        index(catalog, [str(library)], methods=["phash"], workers=2)
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-P", "-m", "catalog", "--db", str(db), "review", "-m", "phash", "--no-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        ready = time.perf_counter() - started
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            timing = page.evaluate(
                "(() => { const t = performance.getEntriesByType('navigation')[0];"
                " return {request: t.requestStart, dom: t.domContentLoadedEventEnd}; })()"
            )
            shown = page.locator("section.group").count()
            page.wait_for_function(
                "Array.from(document.querySelectorAll('img.thumb')).filter(i => {"
                " const r = i.getBoundingClientRect(); return r.top < innerHeight; })"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=60000,
            )
            thumbs = page.evaluate("performance.now()")
            total = int(page.locator("#remaining").inner_text())
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    return {
        "groups": total,
        "files": groups * 2,
        "index_seconds": round(indexed, 1),
        "server_ready_seconds": round(ready, 2),
        "first_groups_ms": round(timing["dom"] - timing["request"]),
        "groups_in_first_page": shown,
        "first_screen_thumbnails_ms": round(thumbs - timing["request"]),
    }


def thumbnails_against_indexing(work: Path) -> dict[str, float]:
    files = sorted(
        str(p)
        for folder in (DATA / "photos", DATA / "ukbench-500")
        for p in folder.rglob("*")
        if p.is_file() and image_suffix(p.name)
    )
    copied = work / "sample"
    copied.mkdir()
    for k, f in enumerate(files):
        shutil.copyfile(f, copied / f"{k:04d}{Path(f).suffix}")
    db = work / "sample.db"
    with Catalog.open(f"sqlite:///{db}") as catalog:
        started = time.perf_counter()
        index(catalog, [str(copied)], workers=2)
        indexing = time.perf_counter() - started
        images = catalog.image_info()
    items = [(im.path, im.content_hash or "") for im in images.values()]
    thumbnails = Thumbnails(work / "thumbs")
    started = time.perf_counter()
    background = thumbnails.make_all(items, 2)
    background.finished.wait()
    making = time.perf_counter() - started
    background.stop()
    made = sum(1 for _ in (work / "thumbs").rglob("*.jpg"))
    n = len(items)
    return {
        "files": n,
        "thumbnails_made": made,
        "index_img_s": round(n / indexing, 1),
        "thumbnails_img_s": round(n / making, 1),
        "ratio": round(indexing / making, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="catalog-review-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        thumbs = thumbnails_against_indexing(work)
        page = page_at_scale(work, args.groups)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.format == "json":
        print(json.dumps({"page": page, "thumbnails": thumbs}, indent=2))
        return
    print(f"page: {page['groups']:,} groups ({page['files']:,} files, indexed in {page['index_seconds']} s)")
    print(f"  server ready (groups found, address printed): {page['server_ready_seconds']} s")
    print(f"  request -> first {page['groups_in_first_page']} groups on screen: {page['first_groups_ms']} ms")
    print(f"  request -> first screen's thumbnails (cold): {page['first_screen_thumbnails_ms']} ms")
    print(f"thumbnails on the sample photos ({thumbs['files']} files, {thumbs['thumbnails_made']} made):")
    print("| | images/s |")
    print("|---|---|")
    print(f"| catalog index (default methods, 2 processes) | {thumbs['index_img_s']} |")
    print(f"| thumbnails (2 processes) | {thumbs['thumbnails_img_s']} |")
    print(f"| ratio thumbnails / indexing | {thumbs['ratio']} |")


if __name__ == "__main__":
    main()
