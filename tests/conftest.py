"""Shared fixtures: a real catalogue file in tmp_path, real image files made with Pillow or copied from
the shared sample photos."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.evaluation.variants import synthetic  # noqa: F401 - the tests' distinct pictures
from catalog.store import Catalog
from tests.postgres_server import Unavailable, throwaway_server

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTOS = SHARED_DATA / "photos"
#: Small real photos (under 200 KB each) used as near-duplicate material.
SMALL_PHOTOS = [
    "Canon_IXUS.jpg",
    "Olympus_C960.jpg",
    "Ricoh_DC-3Z_(normal_res).jpg",
    "Nikon_E950.jpg",
    "Sony_DCR-PC110.jpg",
]


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` seconds pass (its last answer): how a test
    waits for something it can observe, never a fixed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def make_image(tmp_path: Path):  # type: ignore[no-untyped-def]
    """make_image("a/b.jpg", seed=1, size=(w, h), **save_kwargs) -> absolute path of a new image file."""

    def make(relative: str, seed: int = 0, size: tuple[int, int] = (160, 120), **save: object) -> Path:
        path = tmp_path / "pics" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic(seed, size).save(path, **save)
        return path

    return make


@pytest.fixture
def pics(tmp_path: Path) -> Path:
    folder = tmp_path / "pics"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def photo(pics: Path):  # type: ignore[no-untyped-def]
    """photo("Canon_IXUS.jpg", "dest.jpg") copies a real sample photo into the pictures folder."""

    def copy(name: str, dest: str | None = None) -> Path:
        target = pics / (dest or name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PHOTOS / name, target)
        return target

    return copy


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def catalog(db_path: Path):  # type: ignore[no-untyped-def]
    with Catalog.open(f"sqlite:///{db_path}") as opened:
        yield opened


@pytest.fixture(autouse=True)
def only_slow_tests_run_the_cnn(request):  # type: ignore[no-untyped-def]
    """``-m "not slow"`` leaves the CNN out: a test that loads a model in this process must say so."""
    import sys

    def loaded() -> int:
        module = sys.modules.get("catalog.methods.cnn")
        return len(module._embedders) if module else 0  # type: ignore[attr-defined]

    before = loaded()
    yield
    if loaded() > before and request.node.get_closest_marker("slow") is None:
        pytest.fail("this test runs the CNN: mark it @pytest.mark.slow")


# -- PostgreSQL: a throwaway server in a temporary folder (unix socket only, no TCP), or the server named
# by CATALOG_TEST_POSTGRES_URL. Skipped, with the reason, where neither is available.


@pytest.fixture(scope="session")
def postgres_url():  # type: ignore[no-untyped-def]
    if os.environ.get("CATALOG_TEST_POSTGRES_URL"):
        yield os.environ["CATALOG_TEST_POSTGRES_URL"]
        return
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_server())
        except Unavailable as reason:
            pytest.skip(str(reason))
        yield url


#: The test files that take longest (tens of seconds each, on this 2-core machine), longest first. The
#: runner keeps a file on one worker (``--dist loadfile``) and hands files out in the order collected:
#: starting the long ones first keeps one worker from running a long file alone at the end.
LONGEST_FIRST = (
    "tests/actions/test_kills.py",
    "tests/ingest/test_formats.py",
    "tests/review/test_settle_all.py",
    "tests/review/test_review.py",
    "tests/actions/test_settle.py",
    "tests/sync/test_watch.py",
    "tests/cli/test_interrupts.py",
    "tests/sync/test_ray.py",
    "tests/search/test_pairs.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and among the others, is kept
