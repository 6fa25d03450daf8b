"""Golden tests: every command's output (text, JSON, CSV), byte for byte, on a fixed library of real photos,
and a catalogue made by commit 76bda6e opened by the current code. The contract a redesign must keep.

The library (``build_library``) is made afresh in a temporary folder from the shared sample photos: 7 camera
photos in ``Camera/``; byte copies and altered copies of them (half size, 10 % crop, mirror, white border,
grayscale, quarter turn, re-encoded, PNG) in ``Backup/`` and ``Downloads/``; two UKBench objects (4 views
each) and six Fruits-360 frames in ``Samples/``; an unreadable ``broken.jpg``, a unicode name, a hidden file
and a text file. Every file gets a fixed modified time. ``library-manifest.txt`` pins the files themselves
(size, SHA-256): when it fails, the altered copies came out differently (another Pillow or libjpeg), not
the catalogue. The four folders are catalogued as four roots, by every method but the CNN, once per
session (``library``); a test that changes files, marks or roots gets a library of its own. The CNN test
(``slow``) catalogues the same library with ``--methods cnn``.

Each golden file under ``tests/golden/`` is a transcript of one or more commands: a line
``# catalog ARGS -> exit N``, the command's standard output, then ``# stderr:`` and its standard error when
there is any. Normalised: paths (the library -> ``LIB``, the catalogue -> ``DB``, the desktop trash's data
home -> ``HOME``, the test's temporary folder -> ``TMP``), wall-clock values (times within two days of now
-> ``<now>``, durations -> ``<seconds>``), and, in ``query`` results only, the order of results with equal
scores (``sorted_ties``: today it follows the image ids, which the worker processes' finishing order
decides). Everything else, scores included, is compared as it is. Some pinned answers look wrong; the
tests that pin them say so (``--against`` of the hashes, ``resolve --action move`` of two files of one name).

``CATALOG_UPDATE_GOLDEN=1 pytest tests/cli/test_golden.py`` writes the golden files instead of comparing (a
warning names each file written); review the diff before committing it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import re
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from catalog.cli.app import app
from tests.conftest import SHARED_DATA

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
DATA = Path(__file__).resolve().parents[1] / "data"
UPDATE = os.environ.get("CATALOG_UPDATE_GOLDEN") == "1"

#: Every method but the CNN ones (the slow test adds ``cnn``).
METHODS = "exact,ahash,phash,dhash,whash,euclidean,cosine,ssim"
HASHES = ("ahash", "phash", "dhash", "whash")
PIXELS = ("euclidean", "cosine", "ssim")
FORMATS = {"text": "txt", "json": "json", "csv": "csv"}

runner = CliRunner()

# -- the library -------------------------------------------------------------------------------------


def _exif(img: Image.Image) -> dict[str, Any]:
    return {"exif": img.info["exif"]} if "exif" in img.info else {}


def _resized(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:  # as a messenger sends it
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS), {"quality": 80}


def _cropped(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:  # 10 %: 5 % off each side
    dx, dy = img.width // 20, img.height // 20
    return img.crop((dx, dy, img.width - dx, img.height - dy)), {"quality": 90, **_exif(img)}


def _mirrored(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    return ImageOps.mirror(img), {"quality": 90}


def _bordered(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:  # 5 % of the long side, white
    return ImageOps.expand(img, border=max(img.size) // 20, fill="white"), {"quality": 90}


def _grayscale(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    return ImageOps.grayscale(img), {"quality": 90, **_exif(img)}


def _turned(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:  # a quarter turn
    return img.transpose(Image.Transpose.ROTATE_90), {"quality": 90}


def _reencoded(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    return img.copy(), {"quality": 85, **_exif(img)}


def _png(img: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    return img.copy(), {}


Alteration = Callable[[Image.Image], tuple[Image.Image, dict[str, Any]]]
BROKEN = b"this is not a picture\x00\xff" * 8

#: (path in the library, source under the shared data or None for junk bytes, alteration or None for a
#: byte copy). Listed in the order of their modified times: one day apart from BASE_TIME on.
LIBRARY: list[tuple[str, str | None, Alteration | None]] = [
    ("Camera/IMG_0001.jpg", "photos/Canon_IXUS.jpg", None),
    ("Camera/IMG_0002.jpg", "photos/Olympus_C960.jpg", None),
    ("Camera/IMG_0003.jpg", "photos/Ricoh_DC-3Z_(normal_res).jpg", None),
    ("Camera/IMG_0004.jpg", "photos/Nikon_E950.jpg", None),
    ("Camera/IMG_0005.jpg", "photos/Sony_DCR-PC110.jpg", None),
    ("Camera/IMG_0006.jpg", "photos/Canon_PowerShot_A40.jpg", None),
    ("Camera/scan-154.jpg", "photos/Issue_154.jpg", None),  # no EXIF at all
    ("Backup/IMG_0001.jpg", "photos/Canon_IXUS.jpg", None),
    ("Backup/IMG_0002.jpg", "photos/Olympus_C960.jpg", None),
    ("Backup/2001/IMG_0004.jpg", "photos/Nikon_E950.jpg", None),
    ("Backup/IMG_0003-small.jpg", "photos/Ricoh_DC-3Z_(normal_res).jpg", _resized),
    ("Backup/IMG_0006.png", "photos/Canon_PowerShot_A40.jpg", _png),
    ("Downloads/IMG_0001 (1).jpg", "photos/Canon_IXUS.jpg", None),
    ("Downloads/canon-small.jpg", "photos/Canon_IXUS.jpg", _resized),
    ("Downloads/olympus-crop.jpg", "photos/Olympus_C960.jpg", _cropped),
    ("Downloads/nikon-mirror.jpg", "photos/Nikon_E950.jpg", _mirrored),
    ("Downloads/sony-border.jpg", "photos/Sony_DCR-PC110.jpg", _bordered),
    ("Downloads/ricoh-gray.jpg", "photos/Ricoh_DC-3Z_(normal_res).jpg", _grayscale),
    ("Downloads/a40-turned.jpg", "photos/Canon_PowerShot_A40.jpg", _turned),
    ("Downloads/Café été – 写真.jpg", "photos/Sony_DCR-PC110.jpg", _reencoded),
    ("Downloads/broken.jpg", None, None),
    ("Downloads/.thumbnail.jpg", "photos/Nikon_E950.jpg", None),  # hidden: never catalogued
    ("Downloads/notes.txt", None, None),  # not an image file by its ending: not looked at
    ("Samples/Objects/ukbench00040.jpg", "ukbench-500/ukbench00040.jpg", None),
    ("Samples/Objects/ukbench00041.jpg", "ukbench-500/ukbench00041.jpg", None),
    ("Samples/Objects/ukbench00042.jpg", "ukbench-500/ukbench00042.jpg", None),
    ("Samples/Objects/ukbench00043.jpg", "ukbench-500/ukbench00043.jpg", None),
    ("Samples/Objects/ukbench00100.jpg", "ukbench-500/ukbench00100.jpg", None),
    ("Samples/Objects/ukbench00101.jpg", "ukbench-500/ukbench00101.jpg", None),
    ("Samples/Objects/ukbench00102.jpg", "ukbench-500/ukbench00102.jpg", None),
    ("Samples/Objects/ukbench00103.jpg", "ukbench-500/ukbench00103.jpg", None),
    ("Samples/Fruit/000.jpg", "fruits360-96/000.jpg", None),
    ("Samples/Fruit/001.jpg", "fruits360-96/001.jpg", None),
    ("Samples/Fruit/002.jpg", "fruits360-96/002.jpg", None),
    ("Samples/Fruit/003.jpg", "fruits360-96/003.jpg", None),
    ("Samples/Fruit/040.jpg", "fruits360-96/040.jpg", None),
    ("Samples/Fruit/041.jpg", "fruits360-96/041.jpg", None),
]
#: The catalogued roots, in the order ``index`` is given them.
ROOTS = ("Camera", "Backup", "Downloads", "Samples")
BASE_TIME = 1_600_000_000  # 2020-09-13T12:26:40Z
DAY = 86_400


def build_library(root: Path) -> Path:
    """Lay out LIBRARY below ``root``: the same bytes and modified times every time."""
    for n, (relative, source, alteration) in enumerate(LIBRARY):
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_bytes(BROKEN if target.suffix == ".jpg" else b"not a picture\n")
        elif alteration is None:
            shutil.copyfile(SHARED_DATA / source, target)
        else:
            with Image.open(SHARED_DATA / source) as img:
                img.load()
                altered, save = alteration(img)
                altered.save(target, **save)
        stamp = (BASE_TIME + n * DAY) * 10**9
        os.utime(target, ns=(stamp, stamp))
    return root


def manifest(root: Path) -> str:
    """Every file below ``root``: modified time, size, SHA-256, path."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{st.st_mtime_ns // 10**9} {st.st_size:8d} {digest}  {path.relative_to(root)}")
    return "\n".join(lines) + "\n"


# -- running commands and comparing their output ------------------------------------------------------

#: An ISO date and time (with ``T`` or a space, optional fraction and offset).
_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")
_JSON_SECONDS = re.compile(r'("[a-z_]*seconds")\s*:\s*-?[0-9.e+-]+')
_TEXT_SECONDS = re.compile(r"(?<![\w.])\d+(?:\.\d+)? s\b")
_RATE = re.compile(r"(?<![\w.])[\d,]+(?:\.\d+)? (images|files)/s\b")


def _wall_clock(text: str) -> str:
    """Times within two days of now (journal, marks, indexed_at) -> ``<now>``; other times (the
    library's fixed modified times, EXIF dates) are kept."""
    now = datetime.now(UTC)

    def replace(match: re.Match[str]) -> str:
        try:
            when = datetime.fromisoformat(match.group().replace("Z", "+00:00"))
        except ValueError:
            return match.group()
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # naive times are UTC here; local ones are within a day
        return "<now>" if abs(now - when) < timedelta(days=2) else match.group()

    return _TIME.sub(replace, text)


@dataclass
class Run:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Library:
    """A library below ``base/lib``, its catalogue ``base/catalog.db`` and a desktop trash in
    ``base/home`` (never the user's)."""

    base: Path
    captured: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.base / "lib"

    @property
    def db(self) -> Path:
        return self.base / "catalog.db"

    @property
    def data_home(self) -> Path:
        return self.base / "home"

    def path(self, relative: str) -> str:
        return str(self.root / relative)

    def roots(self) -> list[str]:
        return [self.path(r) for r in ROOTS]

    def invoke(self, *args: str, db: Path | None = None) -> Run:
        self.data_home.mkdir(parents=True, exist_ok=True)
        env = {
            "XDG_DATA_HOME": str(self.data_home),  # the desktop trash (send2trash) and the default db
            "COLUMNS": "80",  # Typer's usage-error panel is as wide as this
            "NO_COLOR": "1",
            "FORCE_COLOR": None,
            "CATALOG_DB": None,
        }
        result = runner.invoke(
            app, ["--db", str(db or self.db), *args], env=env, prog_name="catalog", catch_exceptions=False
        )
        return Run(args, result.exit_code, result.stdout, result.stderr)

    def normalise(self, text: str, db: Path | None = None, clock: bool = True) -> str:
        for path, name in (
            (db or self.db, "DB"),
            (self.data_home, "HOME"),
            (self.root, "LIB"),
            (self.base, "TMP"),
        ):
            text = text.replace(str(path), name)
        text = _JSON_SECONDS.sub(r'\1: "<seconds>"', text)
        text = _TEXT_SECONDS.sub("<seconds> s", text)
        text = _RATE.sub(r"<rate> \1/s", text)
        return _wall_clock(text) if clock else text

    def transcript(
        self, *args: str, db: Path | None = None, exit_code: int | None = 0, clock: bool = True
    ) -> str:
        """Run ``catalog ARGS`` and give its normalised transcript; ``exit_code``: the one it must
        have (None: any, pinned by the transcript alone); ``clock``: replace recent times."""
        run = self.invoke(*args, db=db)
        if exit_code is not None:
            assert run.exit_code == exit_code, (args, run.exit_code, run.stdout, run.stderr)
        assert "Traceback" not in run.stdout + run.stderr, run.stderr
        return self.render(run, db, clock)

    def render(self, run: Run, db: Path | None = None, clock: bool = True) -> str:
        command = " ".join(_quoted(a) for a in run.args)
        text = f"# catalog {command} -> exit {run.exit_code}\n{run.stdout}"
        if run.stdout and not run.stdout.endswith("\n"):
            text += "\n# (no newline at the end of stdout)\n"
        if run.stderr:
            text += f"# stderr:\n{run.stderr}"
        return self.normalise(text, db, clock)

    def index(self) -> str:
        return self.transcript("index", *self.roots(), "--methods", METHODS)


def _quoted(arg: str) -> str:
    return f"'{arg}'" if not arg or re.search(r"[\s'\"]", arg) else arg


#: What this session wrote to each golden file (CATALOG_UPDATE_GOLDEN=1): a file two tests write must
#: get the same text from both.
_written: dict[str, str] = {}


def check(name: str, *transcripts: str) -> None:
    """Compare the transcripts with ``tests/golden/NAME`` (or write it, with CATALOG_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    got = "".join(transcripts)
    if UPDATE:
        if _written.setdefault(name, got) != got:
            pytest.fail(f"two tests give golden/{name} different texts")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != got:
            path.write_text(got, encoding="utf-8")
            warnings.warn(f"golden file written: {path}", stacklevel=2)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}: run with CATALOG_UPDATE_GOLDEN=1 to write it")
    expected = path.read_text(encoding="utf-8")
    if got != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                got.splitlines(keepends=True),
                f"golden/{name}",
                "this run",
            )
        )
        pytest.fail(f"output differs from golden/{name} (CATALOG_UPDATE_GOLDEN=1 rewrites it):\n{diff}")


def golden_text(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def fresh_library(base: Path) -> Library:
    """A library of its own, catalogued, for a test that changes files, marks or roots."""
    library = Library(base)
    build_library(library.root)
    library.index()
    return library


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """The shared library and catalogue; what depends on the catalogue being untouched (the reports of
    ``index``, ``status``, ``roots``: no kept answers yet) is captured here, before any test asks."""
    lib = Library(tmp_path_factory.mktemp("golden"))
    build_library(lib.root)
    lib.captured["manifest"] = manifest(lib.root)
    lib.captured["index"] = lib.index()
    lib.captured["index-again.txt"] = lib.transcript("index")
    lib.captured["index-again.json"] = lib.transcript("index", "--format", "json")
    for fmt in ("text", "json"):
        lib.captured[f"status.{FORMATS[fmt]}"] = lib.transcript("status", "--format", fmt)
        lib.captured[f"roots.{FORMATS[fmt]}"] = lib.transcript("roots", "--format", fmt)
    return lib


def formats(
    library: Library, name: str, *args: str, which: tuple[str, ...] = ("text", "json", "csv")
) -> None:
    """``catalog ARGS --format F`` for each format, each against ``NAME.<ending>``."""
    for fmt in which:
        check(f"{name}.{FORMATS[fmt]}", library.transcript(*args, "--format", fmt))


# -- index, roots, status -----------------------------------------------------------------------------


def test_library_manifest(library: Library) -> None:
    check("library-manifest.txt", library.captured["manifest"])


def test_index(library: Library) -> None:
    check("index.txt", library.captured["index"])
    check("index-again.txt", library.captured["index-again.txt"])
    check("index-again.json", library.captured["index-again.json"])


def test_status_and_roots(library: Library) -> None:
    for name in ("status.txt", "status.json", "roots.txt", "roots.json"):
        check(name, library.captured[name])


# -- dupes ---------------------------------------------------------------------------------------------

#: ``dupes`` at its defaults, as several tests ask it (the same arguments: one golden file).
DUPES_PHASH = ("dupes", "--method", "phash", "--format", "text")


@pytest.mark.parametrize("method", ["exact", *HASHES, *PIXELS])
def test_dupes_at_default_threshold(library: Library, method: str) -> None:
    formats(library, f"dupes-{method}", "dupes", "--method", method)


@pytest.mark.parametrize(
    ("method", "threshold", "which"),
    [
        ("phash", "10", ("text", "json", "csv")),  # wider than the stored pairs: searched again
        ("dhash", "1", ("text", "json")),  # narrower: from the stored pairs
        ("ahash", "4", ("text",)),
        ("ssim", "0.9", ("text", "json")),
        ("euclidean", "0.02", ("text",)),
        ("cosine", "0.999", ("text",)),
    ],
)
def test_dupes_at_another_threshold(
    library: Library, method: str, threshold: str, which: tuple[str, ...]
) -> None:
    name = f"dupes-{method}-t{threshold}"
    formats(library, name, "dupes", "--method", method, "--threshold", threshold, which=which)


def test_dupes_thresholds_out_of_range_of_the_pixel_methods(library: Library) -> None:
    """A similarity above 1 or a distance below 0 is refused, as the hashes refuse theirs (until issue
    24 the pixel methods took them and answered)."""
    check(
        "dupes-pixel-thresholds-out-of-range.txt",
        library.transcript("dupes", "-m", "cosine", "-t", "2", exit_code=2),
        library.transcript("dupes", "-m", "ssim", "-t", "2", exit_code=2),
        library.transcript("dupes", "-m", "euclidean", "-t", "-1", exit_code=2),
    )


@pytest.mark.parametrize("method", ["phash", "dhash", "ssim"])
def test_dupes_components(library: Library, method: str) -> None:
    which = ("text", "json", "csv") if method == "phash" else ("text",)
    name = f"dupes-{method}-components"
    formats(library, name, "dupes", "-m", method, "--grouping", "components", which=which)


@pytest.mark.parametrize("method", ["phash", "dhash", "whash"])
def test_dupes_transforms(library: Library, method: str) -> None:
    which = ("text", "json") if method == "phash" else ("text",)
    formats(library, f"dupes-{method}-transforms", "dupes", "-m", method, "--transforms", which=which)


def test_dupes_in_against(library: Library) -> None:
    downloads, camera, backup = (library.path(p) for p in ("Downloads", "Camera", "Backup"))
    formats(
        library, "dupes-phash-in-downloads-against-camera", "dupes", "--in", downloads, "--against", camera
    )
    check(
        "dupes-exact-in-backup.txt",
        library.transcript("dupes", "-m", "exact", "--in", backup),
        library.transcript("dupes", "-m", "exact", "--in", backup, "--in", downloads),
    )
    # Pins today's answers, which look wrong for exact and the hashes: no group around a copy under
    # Backup/ when a better image outside it has the same signature (copies --against finds them).
    check(
        "dupes-against-backup.txt",
        *(library.transcript("dupes", "-m", m, "--against", backup) for m in ("exact", "phash", "ssim")),
        library.transcript("copies", "-m", "phash", "--against", backup),
    )


def test_dupes_twice_gives_the_same_bytes(library: Library) -> None:
    """The second answer comes from the kept answers: the same bytes as the golden file."""
    for _ in range(2):
        check("dupes-dhash.json", library.transcript("dupes", "--method", "dhash", "--format", "json"))
        check("dupes-phash.txt", library.transcript(*DUPES_PHASH))


# -- copies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["exact", "phash", "ssim"])
def test_copies(library: Library, method: str) -> None:
    formats(library, f"copies-{method}", "copies", "--method", method)


def test_copies_components_and_against(library: Library) -> None:
    formats(library, "copies-dhash-components", "copies", "-m", "dhash", "--grouping", "components")
    downloads, camera = library.path("Downloads"), library.path("Camera")
    check(
        "copies-phash-in-downloads-against-camera.txt",
        library.transcript("copies", "--in", downloads, "--against", camera),
    )
    check("copies-phash-transforms.txt", library.transcript("copies", "-m", "phash", "--transforms"))


# -- query and compare ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def probe(library: Library) -> Path:
    """An image outside the catalogue: the Nikon photo at 400x300, as a PNG."""
    path = library.base / "probe.png"
    with Image.open(SHARED_DATA / "photos" / "Nikon_E950.jpg") as img:
        img.resize((400, 300), Image.Resampling.LANCZOS).save(path)
    return path


#: A result line of ``query``: its score, in text, JSON and CSV.
_QUERY_SCORE = re.compile(
    r"^\s*(?P<text>[-\d.e+]+)  (?:match   |no match)  "  # text
    r'|"score": (?P<json>[^,]+), "match"'  # JSON
    r"|,(?P<csv>[^,]+),(?:True|False)$"  # CSV
)


def sorted_ties(transcript: str) -> str:
    """``query``'s results with equal scores sorted by their text (so by path): today they come in the
    order of the catalogue's image ids, which the worker processes' finishing order decides (the goldens'
    ``k`` never cuts through such a tie)."""
    out: list[str] = []
    run: list[str] = []
    last: str | None = None

    def flush() -> None:
        commas = [line.endswith(",") for line in run]  # a JSON list's commas stay where they were
        lines = sorted(line.removesuffix(",") for line in run)
        out.extend(line + ("," if comma else "") for line, comma in zip(lines, commas, strict=True))
        run.clear()

    for line in transcript.split("\n"):
        found = _QUERY_SCORE.search(line)
        score = next((g for g in found.groups() if g is not None), None) if found else None
        if score is None or score != last:
            flush()
        (run if score is not None else out).append(line)
        last = score
    flush()
    return "\n".join(out)


def test_query(library: Library, probe: Path) -> None:
    for fmt in ("text", "json", "csv"):
        check(
            f"query-phash.{FORMATS[fmt]}",
            sorted_ties(library.transcript("query", str(probe), "-k", "3", "-f", fmt)),
        )
    mirror = library.path("Downloads/nikon-mirror.jpg")
    check(
        "query-methods.txt",
        *(
            sorted_ties(library.transcript("query", str(probe), "-m", m, "-k", k))
            for m, k in (
                ("ahash", "7"),
                ("dhash", "7"),
                ("whash", "7"),
                ("euclidean", "6"),
                ("cosine", "3"),
                ("ssim", "6"),
            )
        ),
        library.transcript("query", str(probe), "-m", "exact", "-k", "3"),  # lists nothing
        sorted_ties(
            library.transcript("query", library.path("Camera/IMG_0001.jpg"), "-m", "exact", "-k", "3")
        ),
        sorted_ties(library.transcript("query", mirror, "-m", "dhash", "-k", "3", "-t", "10")),
        sorted_ties(library.transcript("query", mirror, "-m", "ssim", "-k", "5", "--format", "json")),
        sorted_ties(library.transcript("query", mirror, "-m", "euclidean", "-k", "4", "--format", "csv")),
    )


def test_compare(library: Library) -> None:
    original = library.path("Camera/IMG_0005.jpg")
    check(
        "compare-methods.txt",
        *(
            library.transcript("compare", original, library.path(other), "-m", m)
            for other in ("Downloads/sony-border.jpg", "Downloads/Café été – 写真.jpg")
            for m in ["exact", *HASHES, *PIXELS]
        ),
        library.transcript(
            "compare",
            library.path("Camera/IMG_0004.jpg"),
            library.path("Backup/2001/IMG_0004.jpg"),
            "-m",
            "exact",
        ),
    )
    gray = library.path("Downloads/ricoh-gray.jpg")
    formats(library, "compare-phash", "compare", library.path("Camera/IMG_0003.jpg"), gray, "-m", "phash")


# -- resolve, dry runs -----------------------------------------------------------------------------------


def test_resolve_dry_runs(library: Library) -> None:
    formats(library, "resolve-oldest-trash", "resolve", "--keep", "oldest", "--action", "trash")
    check(
        "resolve-policies.txt",
        library.transcript(
            "resolve", "--keep", "newest", "--action", "move", "--to", str(library.base / "moved")
        ),
        library.transcript("resolve", "--keep", "largest,biggest", "--action", "hardlink"),
        library.transcript(
            "resolve",
            "-m",
            "exact",
            "--keep",
            f"prefer:{library.path('Backup')}",
            "--keep",
            "shortest-path",
            "--action",
            "symlink",
        ),
        library.transcript("resolve", "-m", "dhash", "--keep", "exif", "--action", "delete"),
        library.transcript(
            "resolve",
            "-m",
            "ssim",
            "--keep",
            "shortest-path",
            "--action",
            "trash",
            "--in",
            library.path("Downloads"),
        ),
        library.transcript("resolve", "-m", "whash", "-t", "0", "--keep", "raw,oldest", "--action", "trash"),
    )
    # A dry run touches nothing: the files and the answer are as they were.
    assert manifest(library.root) == library.captured["manifest"]
    check("dupes-phash.txt", library.transcript(*DUPES_PHASH))


# -- marks, resolve --apply, journal, undo, forget: each on a library of its own --------------------------


def test_mark_not_duplicate(tmp_path: Path) -> None:
    lib = fresh_library(tmp_path)
    original, gray = lib.path("Camera/IMG_0003.jpg"), lib.path("Downloads/ricoh-gray.jpg")
    small, canon = lib.path("Backup/IMG_0003-small.jpg"), lib.path("Camera/IMG_0001.jpg")
    fruit = [lib.path(f"Samples/Fruit/00{n}.jpg") for n in range(4)]
    check(
        "mark.txt",
        lib.transcript("mark", "not-duplicate", original, gray),
        lib.transcript("mark", "not-duplicate", fruit[0], fruit[3]),
        lib.transcript("mark", "not-duplicate", gray, original, small),
        lib.transcript("mark", "not-duplicate", canon, lib.path("Backup/IMG_0001.jpg"), exit_code=2),
        lib.transcript("mark", "not-duplicate", canon, exit_code=2),
        lib.transcript("mark", "not-duplicate", canon, lib.path("Elsewhere/x.jpg"), exit_code=2),
    )
    formats(lib, "marks", "marks")
    formats(lib, "dupes-phash-after-mark", "dupes", "-m", "phash")
    check("copies-phash-after-mark.txt", lib.transcript("copies", "-m", "phash"))
    check(
        "resolve-oldest-trash-after-mark.txt",
        lib.transcript("resolve", "--keep", "oldest", "--action", "trash"),
    )
    check(
        "marks-remove.txt",
        lib.transcript("marks", "--remove", gray, "--remove", small),
        lib.transcript("marks"),
        lib.transcript("marks", "--remove", fruit[3]),
        lib.transcript("marks"),
        lib.transcript("status"),
        lib.transcript("marks", "--remove", original),
        lib.transcript("marks", "--format", "json"),
    )
    check("dupes-phash.txt", lib.transcript(*DUPES_PHASH))  # no mark left: the groups are back


def test_resolve_apply_journal_undo(tmp_path: Path) -> None:
    lib = fresh_library(tmp_path)
    check(
        "resolve-apply.txt",
        lib.transcript("resolve", "--keep", "oldest", "--action", "trash", "--apply"),
        lib.transcript(
            "resolve", "-m", "exact", "--keep", "oldest", "--action", "trash", "--apply", "--format", "json"
        ),
    )
    # 14: the framed copy of the Sony photo is a duplicate under the hashes since they hash the picture
    # inside any frame (it was 13).
    assert len(list((lib.data_home / "Trash" / "files").iterdir())) == 14
    formats(lib, "journal", "journal")
    check("after-apply.txt", lib.transcript(*DUPES_PHASH), lib.transcript("status"))
    check("undo.txt", lib.transcript("undo"))
    formats(lib, "journal-after-undo", "journal")
    check("status-after-undo.txt", lib.transcript("status"))
    # Every file is back, byte for byte and with its modified time; so are the groups.
    assert manifest(lib.root) == manifest_of_the_library()
    assert list((lib.data_home / "Trash" / "files").iterdir()) == []
    check("dupes-phash.txt", lib.transcript(*DUPES_PHASH))
    check(
        "undo-nothing-left.txt", lib.transcript("undo"), lib.transcript("undo", "--all", "--format", "json")
    )


def test_resolve_apply_move(tmp_path: Path) -> None:
    """Pins today's answer, which disagrees with its dry run (resolve-policies.txt): two files of one name
    in two roots go to one destination, and the second is skipped."""
    lib = fresh_library(tmp_path)
    check(
        "resolve-apply-move.txt",
        lib.transcript(
            "resolve", "--keep", "newest", "--action", "move", "--to", str(tmp_path / "moved"), "--apply"
        ),
        lib.transcript(*DUPES_PHASH),
        lib.transcript("undo", "--all", "--format", "json"),
        lib.transcript("journal", "--format", "csv"),
    )
    assert manifest(lib.root) == manifest_of_the_library()
    check("dupes-phash.txt", lib.transcript(*DUPES_PHASH))


def test_forget(tmp_path: Path) -> None:
    lib = fresh_library(tmp_path)
    check(
        "forget.txt",
        lib.transcript("forget", lib.path("Samples")),
        lib.transcript("roots"),
        lib.transcript("status"),
        lib.transcript("dupes", "-m", "phash"),
        lib.transcript("index", "--format", "json"),  # a forgotten root stays forgotten
    )


def manifest_of_the_library() -> str:
    """The files of LIBRARY as built (golden/library-manifest.txt; a new build while it is rewritten)."""
    if UPDATE:
        with tempfile.TemporaryDirectory() as folder:
            return manifest(build_library(Path(folder)))
    return golden_text("library-manifest.txt")


# -- usage errors -----------------------------------------------------------------------------------------


def test_errors(library: Library, tmp_path: Path) -> None:
    lib = library
    one, two = lib.path("Camera/IMG_0001.jpg"), lib.path("Camera/IMG_0002.jpg")
    check(
        "errors.txt",
        lib.transcript("dupes", "--method", "nope", exit_code=2),
        lib.transcript("dupes", "--method", "ahash", "--threshold", "99", exit_code=2),
        lib.transcript("dupes", "--method", "phash", "--threshold", "2.5", exit_code=2),
        lib.transcript("dupes", "--method", "phash", "--threshold", "-1", exit_code=2),
        lib.transcript("dupes", "--method", "exact", "--threshold", "1", exit_code=2),
        lib.transcript("dupes", "--method", "phash", "--threshold", "abc", exit_code=2),
        lib.transcript("dupes", "--method", "phash", "--grouping", "chains", exit_code=2),
        lib.transcript("dupes", "--method", "exact", "--transforms", exit_code=2),
        lib.transcript("copies", "--method", "cnn", exit_code=2),
        lib.transcript("query", one, "--method", "cnn", exit_code=2),
        lib.transcript("status", "--format", "csv", exit_code=2),
        lib.transcript("index", lib.path("Missing"), exit_code=2),
        lib.transcript("index", lib.path("Camera"), "--methods", "ahash,bogus", exit_code=2),
        lib.transcript("query", lib.path("Camera"), exit_code=2),
        lib.transcript("query", lib.path("Downloads/broken.jpg"), exit_code=2),
        lib.transcript("compare", one, lib.path("nothing.jpg"), "-m", "phash", exit_code=2),
        lib.transcript("compare", one, two, "-m", "phash", "--all", exit_code=2),
        lib.transcript("resolve", "--keep", "oldest", "--action", "delete", "--apply", exit_code=2),
        lib.transcript("resolve", "--keep", "tallest", "--action", "trash", exit_code=2),
        lib.transcript("resolve", "--keep", "oldest", "--action", "move", exit_code=2),
        lib.transcript("forget", lib.path("Nowhere"), exit_code=2),
        lib.transcript("undo", "--all", "--last", exit_code=2),
        lib.transcript("frobnicate", exit_code=2),
        lib.transcript("status", db=tmp_path / "none.db", exit_code=1),
    )
    assert not (tmp_path / "none.db").exists()
    assert manifest(lib.root) == lib.captured["manifest"]


# -- the CNN ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cnn(tmp_path: Path) -> None:
    """``--methods cnn`` on the same library (a catalogue of its own: the CNN's signatures would change
    the shared catalogue's status); the model is the default one, shipped in a package (offline)."""
    lib = Library(tmp_path)
    build_library(lib.root)
    check("cnn-index.txt", lib.transcript("index", *lib.roots(), "--methods", "cnn"))
    formats(lib, "dupes-cnn", "dupes", "--method", "cnn", which=("text", "json"))
    check("copies-cnn.txt", lib.transcript("copies", "--method", "cnn"))
    original, mirror = lib.path("Camera/IMG_0004.jpg"), lib.path("Downloads/nikon-mirror.jpg")
    formats(lib, "compare-all", "compare", original, mirror, "--all")
    check(
        "cnn-more.txt",
        lib.transcript(
            "compare", lib.path("Camera/IMG_0006.jpg"), lib.path("Downloads/a40-turned.jpg"), "--all"
        ),
        sorted_ties(lib.transcript("query", lib.path("Downloads/a40-turned.jpg"), "-m", "cnn", "-k", "4")),
        sorted_ties(lib.transcript("query", lib.path("Camera/IMG_0006.jpg"), "-m", "cnn", "-k", "4")),
        lib.transcript("dupes", "--method", "cnn", "--no-verify"),
        lib.transcript("dupes", "--method", "cnn-euclidean"),
        lib.transcript(
            "dupes", "--method", "cnn", "--in", lib.path("Downloads"), "--against", lib.path("Camera")
        ),
        lib.transcript("status"),
    )


# -- a catalogue made by commit 76bda6e -------------------------------------------------------------------

UPGRADE_DB = DATA / "catalogue-76bda6e.db"


def upgrade_script() -> ModuleType:
    """tests/data/make_upgrade_catalogue.py, which made UPGRADE_DB (and lays out its library)."""
    spec = importlib.util.spec_from_file_location(
        "make_upgrade_catalogue", DATA / "make_upgrade_catalogue.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _alembic_version(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def head_of_this_checkout() -> str | None:
    """The head revision of the migrations beside the ``catalog`` package under test (the repository's
    ``migrations/``): an editable install of another checkout maps ``catalog.migrations`` to its own."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import catalog

    folder = Path(catalog.__file__).resolve().parents[1] / "migrations"
    if not (folder / "env.py").exists():  # an installed package: its own catalog.migrations
        from catalog.store.migrate import head_revision

        return head_revision()
    config = Config()
    config.set_main_option("script_location", str(folder))
    return ScriptDirectory.from_config(config).get_current_head()


def test_upgrade_from_76bda6e(tmp_path: Path) -> None:
    """The catalogue 76bda6e made (tests/data/make_upgrade_catalogue.py) opened by today's code: the
    same answers as 76bda6e gave (the golden files were recorded from it before any redesign). Its paths
    are the script's fixed /tmp ones, and no command here reads the library's files (so they need not
    exist); its times were written once, so nothing but the catalogue's own path is normalised.

    Since the hashes are taken of the picture inside any frame or bars (2026-12-07), a catalogue made
    before holds hash signatures of another version: ``dupes`` and ``copies`` with a hash method say,
    in one line, to run ``catalog index`` (which recomputes them); ``exact`` answers as before."""
    db = tmp_path / "catalogue.db"
    shutil.copyfile(UPGRADE_DB, db)
    assert _alembic_version(db) == "0009"  # what 76bda6e made
    lib = Library(tmp_path)
    library_root = str(upgrade_script().LIBRARY_ROOT)

    def run(*args: str) -> str:
        return lib.transcript(*args, db=db, clock=False, exit_code=None)

    check("upgrade-76bda6e-status.txt", run("status"))
    assert _alembic_version(db) == head_of_this_checkout()  # upgraded when opened
    check("upgrade-76bda6e-status.json", run("status", "--format", "json"))
    for method in ("phash", "exact"):
        for fmt in ("text", "json"):
            check(
                f"upgrade-76bda6e-dupes-{method}.{FORMATS[fmt]}", run("dupes", "-m", method, "--format", fmt)
            )
    check("upgrade-76bda6e-dupes-dhash.txt", run("dupes", "-m", "dhash"))
    for fmt in ("text", "json"):
        check(f"upgrade-76bda6e-copies-phash.{FORMATS[fmt]}", run("copies", "-m", "phash", "--format", fmt))
    check(
        "upgrade-76bda6e-settled.txt",
        run("marks"),
        run("journal"),
        run("journal", "--format", "json"),
        run("dupes", "-m", "whash", "--in", f"{library_root}/Samples"),
        run("copies", "-m", "whash", "--format", "csv"),
    )
