"""The command line: parse, call the library, print.

The one place where a CatalogError becomes one line on stderr and an exit code is
``CatalogGroup.invoke``; everything below it only raises.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from types import GeneratorType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer
from typer.core import TyperGroup

from catalog.config import DEFAULT_METHODS, CnnChoice, Settings, sqlite_file
from catalog.errors import CatalogError, Interrupted, UsageError
from catalog.interrupts import Interrupts
from catalog.methods import get_method, method_names, parse_method_list
from catalog.text import groups_summary
from catalog.text import json_escaped as _escaped
from catalog.text import plural as _plural

if TYPE_CHECKING:
    from catalog.ingest.pool import EarlyStart
    from catalog.store import Catalog


class CatalogGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            result = super().invoke(ctx)
            state = ctx.obj
            if isinstance(state, State) and state.interrupts is not None:
                state.interrupts.check()  # a signal a library swallowed still ends the command so
            return result
        except CatalogError as exc:
            typer.echo(f"catalog: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            _report_interruption(exc)


app = typer.Typer(
    cls=CatalogGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="A persistent catalogue of images: finds duplicate and near-duplicate pictures and counts copies.",
)


class Format(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"


@dataclass
class State:
    """What every command gets: its settings and the process's signal handling (``main`` installs it;
    in-process test runs have none)."""

    settings: Settings
    interrupts: Interrupts | None = None

    @property
    def url(self) -> str:
        return self.settings.db_url

    @property
    def cnn(self) -> CnnChoice:
        return self.settings.cnn

    def open(self, create: bool = False, shielded: bool = True) -> Catalog:
        """The catalogue; ``shielded``: transactions defer Ctrl-C (not for a server, whose requests run
        in other threads and whose server stops on the signal itself)."""
        from catalog.store import Catalog  # SQLAlchemy loads here, not at start-up

        shield = self.interrupts.deferred if self.interrupts and shielded else nullcontext
        return Catalog.open(self.url, create=create, shield=shield)


def _thresholds_help() -> str:
    parts = [f"{n} {get_method(n).default_threshold:g}" for n in method_names()]
    return "Defaults: " + ", ".join(parts) + " (Hamming bits for the hashes)."


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Catalogue file or SQLAlchemy URL. "
            "Default: $CATALOG_DB, else ~/.local/share/catalog/catalog.db.",
        ),
    ] = None,
    cnn_model: Annotated[
        str | None,
        typer.Option(
            "--cnn-model",
            help="CNN model for the cnn methods: efficientnet-lite0 (default, works offline) or "
            "efficientnet-b0. A catalogue remembers its model; another one recomputes every feature.",
        ),
    ] = None,
    cnn_weights: Annotated[
        str | None,
        typer.Option(
            "--cnn-weights",
            help="A local weights file for the CNN model (required for efficientnet-b0 without internet).",
        ),
    ] = None,
) -> None:
    settings = Settings.from_options(db, cnn_model, cnn_weights)
    ctx.obj = State(settings, ctx.obj if isinstance(ctx.obj, Interrupts) else None)


class Engine(StrEnum):
    local = "local"
    ray = "ray"


class ReportFormat(StrEnum):
    """For reports that are not tables (``index``, ``status``): text or JSON."""

    text = "text"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
ReportFormatOption = Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")]
MethodOption = Annotated[str, typer.Option("--method", "-m", help=f"One of: {', '.join(method_names())}.")]


class GroupingChoice(StrEnum):
    reference = "reference"
    components = "components"


GroupingOption = Annotated[
    GroupingChoice,
    typer.Option(
        "--grouping",
        help="reference: every member matches the group's reference (the image to keep) directly; "
        "components: joined through chains of matches, as before.",
    ),
]
TransformsOption = Annotated[
    bool | None,
    typer.Option(
        "--transforms/--no-transforms",
        help="Also find copies that were mirrored or turned 90/180/270 degrees (default: on for cnn, "
        "off for the hashes, where it adds look-alike pairs).",
        show_default=False,
    ),
]
VerifyOption = Annotated[
    bool | None,
    typer.Option(
        "--verify/--no-verify",
        help="cnn: confirm pairs below a sure score by local features (orb), as by default when the "
        "catalogue has them.",
        show_default=False,
    ),
]
InOption = Annotated[
    list[str] | None,
    typer.Option("--in", metavar="PATH", help="Only groups with an image under PATH (repeatable)."),
]
AgainstOption = Annotated[
    list[str] | None,
    typer.Option(
        "--against",
        metavar="PATH",
        help="Only images (under --in, if given) that have a copy under PATH, grouped around that copy "
        "(repeatable): what in Downloads is already in my archive?",
    ),
]
ThresholdOption = Annotated[
    float | None, typer.Option("--threshold", "-t", help="Match threshold. " + _thresholds_help())
]


@app.command("index")
def index_command(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PATH]...", help="Folders (or files) to catalogue (none: every known root)."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            help="Comma-separated methods to compute, added to the catalogue's set. "
            "Default for a new catalogue: ahash,phash,dhash,whash (exact is always on).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Drop the images of roots that are gone from the disk.")
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where files are read and signed: local worker processes, or a Ray cluster "
            "(the ray extra; files at the same path on every node)."
        ),
    ] = Engine.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="The Ray cluster to use (default: start a local one for this run)."
        ),
    ] = None,
    fmt: ReportFormatOption = ReportFormat.text,
) -> None:
    """Catalogue image files: new and changed files are read, moved ones followed (a moved root too),
    vanished ones dropped. Without PATH: every catalogued root."""
    from catalog.ingest.scan import normalise_roots
    from catalog.lock import writer_lock

    requested = parse_method_list(methods) if methods else None
    paths = paths or []
    if not paths:
        with ctx.obj.open() as known:
            if not known.roots():
                raise UsageError("the catalogue has no roots yet: name the folders to catalogue")
    roots = [r for r in (os.path.abspath(os.path.expanduser(p)) for p in paths) if os.path.exists(r)]
    roots = normalise_roots(roots)
    from catalog.lock import current_writer

    if current_writer(ctx.obj.url) is not None and roots:
        from catalog.sync.handoff import hand_over

        answer = hand_over(ctx.obj.url, roots, requested)
        if answer is not None:  # a running `catalog watch` did it
            if "error" in answer:
                raise CatalogError(f"catalog watch could not index it: {answer['error']}")
            _print_index_report(answer, fmt, handed=True)
            return
    # A SQLite catalogue has one writer (its lock file); a server catalogue takes a lock per root in
    # the database, so that several machines index their own roots into it at once.
    server = sqlite_file(ctx.obj.url) is None
    with (
        nullcontext() if server else writer_lock(ctx.obj.url, "catalog index"),
        _early_start(ctx.obj.url, roots, workers, requested)
        if engine is Engine.local
        else nullcontext() as early,
    ):
        from catalog.sync.indexer import index

        with (
            ctx.obj.open(create=True) as catalog,
            catalog.root_locks(roots or catalog.roots()) if server else nullcontext(),
            _progress_bar() as progress,
        ):
            interrupts = ctx.obj.interrupts
            unknown = [p for p in paths if not os.path.exists(os.path.abspath(os.path.expanduser(p)))]
            known_roots = set(catalog.roots())
            for path in unknown:  # a path that is gone is an error, unless it is a known root
                if os.path.abspath(os.path.expanduser(path)) not in known_roots:
                    raise UsageError(f"no such file or folder: {path}")
            report = index(
                catalog,
                paths,
                requested,
                prune=prune,
                workers=workers,
                progress=progress,
                early=early,
                cancel=interrupts.stopping if interrupts else None,
                cnn=ctx.obj.cnn,
                engine=engine.value,
                ray_address=ray_address,
            )
            if report.cancelled and interrupts and interrupts.received is not None:
                raise Interrupted(interrupts.received, report.committed)
            if report.added or report.updated or report.removed or report.moved or report.backfilled:
                from catalog.search.vectors import sync_saved_indexes

                sync_saved_indexes(catalog, ctx.obj.cnn)  # the writer keeps the saved HNSW indexes in step
    _print_index_report(report.as_dict(), fmt)


def _print_index_report(report: dict[str, Any], fmt: ReportFormat, handed: bool = False) -> None:
    if fmt is ReportFormat.json:
        _print_json(report)
        return
    if handed:
        typer.echo(
            f"handed to the running catalog watch (pid {report.get('watcher')}), which now watches it too:"
        )
    typer.echo(
        f"{report['added']} added, {report['updated']} updated, {report['moved']} moved, "
        f"{report['removed']} removed, {report['unchanged']} unchanged, {report['backfilled']} completed "
        f"with new methods ({report['seconds']:.1f} s; methods: {', '.join(report['methods'])})"
    )
    for note in report["notes"]:
        typer.echo(note)
    errors = [(e["path"], e["error"]) for e in report["errors"]]
    problems = [(p["path"], p["problem"]) for p in report["problems"]]
    for title, rows in (("file", errors), ("path", problems)):
        if rows:
            typer.echo(
                f"{_plural(len(rows), title)} {'could not be read' if title == 'file' else 'skipped'}:"
            )
            for path, reason in rows:
                typer.echo(f"  {path}: {reason}")


@app.command("roots")
def roots_command(ctx: typer.Context, fmt: ReportFormatOption = ReportFormat.text) -> None:
    """The catalogued folders, each with its images and unreadable files, and whether it is on disk now
    (a root on a drive that is not mounted shows as absent; its images stay)."""
    with ctx.obj.open() as catalog:
        stats = catalog.root_stats()
    rows = [(root, images, errors, os.path.isdir(root)) for root, images, errors in stats]
    if fmt is ReportFormat.json:
        keys = ("root", "images", "errors", "present")
        _print_json({"roots": [dict(zip(keys, row, strict=True)) for row in rows]})
        return
    for root, images, errors, present in rows:
        state = "present" if present else "ABSENT"
        typer.echo(f"{state:>7}  {images:7,d} images  {errors:4,d} unreadable  {root}")


@app.command("forget")
def forget_command(
    ctx: typer.Context,
    roots: Annotated[list[str], typer.Argument(metavar="ROOT...", help="Catalogued roots to drop.")],
) -> None:
    """Drop roots and everything catalogued below them (files on disk are not touched)."""
    from catalog.lock import writer_lock

    with writer_lock(ctx.obj.url, "catalog forget"), ctx.obj.open() as catalog:
        known = set(catalog.roots())
        wanted = [os.path.abspath(os.path.expanduser(r)) for r in roots]
        unknown = [r for r, w in zip(roots, wanted, strict=True) if w not in known]
        if unknown:
            raise UsageError(f"not a catalogued root: {', '.join(unknown)} (see `catalog roots`)")
        for root in wanted:
            dropped = catalog.forget_root(root)
            typer.echo(f"forgot {root}: {_plural(dropped, 'file')} dropped from the catalogue")
        from catalog.grouping.stored import refresh_all
        from catalog.search.vectors import sync_saved_indexes

        refresh_all(catalog)
        sync_saved_indexes(catalog, ctx.obj.cnn)


@app.command("watch")
def watch_command(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PATH]...", help="Folders to watch (and catalogue); none: every known root."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods", help="Comma-separated methods, added to the catalogue's set (as for index)."
        ),
    ] = None,
    polling: Annotated[
        bool,
        typer.Option(
            "--polling",
            help="Poll the folders instead of kernel events (network drives, containers).",
        ),
    ] = False,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between scans with --polling (each lists every file: CPU).")
    ] = 1.0,
    settle: Annotated[
        float,
        typer.Option(help="Seconds a file must be left alone before it is read (a copy in progress waits)."),
    ] = 0.5,
    reconcile_every: Annotated[
        float, typer.Option(help="Seconds between full reconciliations with the disk (0: only at start).")
    ] = 3600.0,
    summary_every: Annotated[float, typer.Option(help="Seconds between summary lines.")] = 600.0,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
) -> None:
    """Keep the catalogue equal to the disk: reconcile, then index every change as it happens.

    Runs in the foreground and logs one line per change; stops cleanly on Ctrl-C or SIGTERM.
    """
    import logging

    from catalog.ingest.scan import normalise_roots
    from catalog.lock import writer_lock

    if not paths:
        with ctx.obj.open() as known:
            paths = [r for r in known.roots() if os.path.isdir(r)]
        if not paths:
            raise UsageError("the catalogue has no roots on disk yet: name the folders to watch")
    roots = normalise_roots(paths)
    not_folders = [r for r in roots if not os.path.isdir(r)]
    if not_folders:
        raise UsageError(f"catalog watch watches folders; not a folder: {not_folders[0]}")
    if settle < 0 or reconcile_every < 0 or summary_every <= 0 or poll_interval <= 0:
        raise UsageError(
            "--settle and --reconcile-every must be 0 or more, "
            "--summary-every and --poll-interval more than 0"
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr
    )
    requested = parse_method_list(methods) if methods else None
    with writer_lock(ctx.obj.url, "catalog watch"), ctx.obj.open(create=True) as catalog:
        from catalog.sync.watch import Watcher

        watcher = Watcher(
            catalog,
            roots,
            requested,
            polling=polling,
            poll_interval=poll_interval,
            settle=settle,
            reconcile_every=reconcile_every or float("inf"),
            summary_every=summary_every,
            workers=workers,
            cnn=ctx.obj.cnn,
            listen=True,
        )
        logging.getLogger("catalog.sync.watch").info(
            "watching %s (%s); Ctrl-C or SIGTERM stops", ", ".join(roots), "polling" if polling else "events"
        )
        interrupts = ctx.obj.interrupts or Interrupts()
        with interrupts.requesting(watcher.stop_on_signal):
            watcher.run()
    if watcher.stopped_by is not None:
        raise Interrupted(watcher.stopped_by)


@app.command("status")
def status_command(ctx: typer.Context, fmt: ReportFormatOption = ReportFormat.text) -> None:
    """What the catalogue holds: images, methods, roots and files that could not be read."""
    from catalog.lock import current_writer

    with ctx.obj.open() as catalog:
        summary = catalog.summary()
        errors = catalog.errors() if summary.errors else []  # (a pass over the images: only if any)
        data = {
            "catalogue": catalog.url,
            "writer": current_writer(catalog.url),
            "images": summary.images,
            "methods": catalog.methods(),
            "signatures": catalog.signature_counts(),
            "roots": catalog.roots(),
            "errors": [{"path": p, "error": e} for p, e in errors],
            "formats": summary.formats,
            "photos": {
                "with_exif": summary.with_exif,
                "with_date_taken": summary.with_date_taken,
                "with_gps": summary.with_gps,
            },
            "marks": len(catalog.marks()),
            "journal": catalog.journal_counts(),
            "pairs": catalog.pair_counts(),
            "groups": catalog.group_counts(),
        }
    if fmt is ReportFormat.json:
        _print_json(data)
        return
    typer.echo(f"catalogue: {data['catalogue']}")
    typer.echo(f"images:    {data['images']}")
    typer.echo(f"formats:   {', '.join(f'{k} {v}' for k, v in data['formats'].items()) or '-'}")
    photos = data["photos"]
    typer.echo(
        f"photos:    {photos['with_exif']} with EXIF, {photos['with_date_taken']} with a date taken, "
        f"{photos['with_gps']} with GPS"
    )
    typer.echo(f"methods:   {', '.join(f'{k} ({v})' for k, v in data['methods'].items()) or '-'}")
    typer.echo(f"roots:     {', '.join(data['roots']) or '-'}")
    pairs = [
        f"{name} {p['rows']} rows within {str(p['covers']).split('@')[0]}"
        + (f" ({p['waiting']} new signatures wait for the next index)" if p["waiting"] else "")
        for name, p in data["pairs"].items()
    ]
    typer.echo(f"pairs:     {'; '.join(pairs) or '-'}")
    typer.echo(f"writer:    {data['writer'] or '-'}")
    groups = [
        f"{name} {g['groups']} groups of {g['images']} images"
        + (f" ({g['waiting']} changes wait for the next index)" if g["waiting"] else "")
        for name, g in data["groups"].items()
    ]
    typer.echo(f"groups:    {'; '.join(groups) or '-'}")
    journal = ", ".join(f"{n} {state}" for state, n in sorted(data["journal"].items())) or "-"
    typer.echo(f"actions:   {journal}; not-duplicate marks: {data['marks']}")
    typer.echo(f"errors:    {len(data['errors'])}")
    for row in data["errors"]:
        typer.echo(f"  {row['path']}: {row['error']}")


@app.command("dupes")
def dupes_command(
    ctx: typer.Context,
    method: MethodOption = "phash",
    threshold: ThresholdOption = None,
    grouping: GroupingOption = GroupingChoice.reference,
    transforms: TransformsOption = None,
    verify: VerifyOption = None,
    inside: InOption = None,
    against: AgainstOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Groups of duplicate images, largest first: each group's reference (the image a person would keep:
    largest resolution inside any border, then largest file, then oldest) first, every other image with
    its score against it."""
    from catalog.grouping.reference import find_groups
    from catalog.grouping.stored import stored_grouping
    from catalog.methods import catalogue_method

    options = _answer_options(ctx, grouping, transforms, verify, inside, against)
    with ctx.obj.open() as catalog:
        method_used = catalogue_method(method, options.cnn, catalog.methods())
        found = stored_grouping(catalog, method_used, threshold, options)
        if found is None:
            found = find_groups(catalog, method, threshold, options)
    from catalog.cli import listing

    table = found.table
    columns = (table.images, table.member, table.starts, table.score)
    out = sys.stdout
    if fmt is Format.json:
        groups = (Encoded(group) for group in listing.all_group_json(*columns, ITEM_SEPARATOR))
        _print_json(
            {
                "method": found.method,
                "threshold": found.threshold,
                "grouping": found.grouping,
                "transforms": found.transforms,
                "verified": found.verified,
                "groups": groups,
            },
            out,
        )
    elif fmt is Format.csv:
        header = ["group", "score", "path", "size", "width", "height", "modified"]
        _print_csv(header, listing.group_rows(*columns), out)
    else:
        _print_lines(listing.all_group_lines(*columns), out)
        summary = groups_summary(
            len(table),
            len(table.member),
            found.method,
            found.threshold,
            found.verified,
            found.transforms,
            found.images,
        )
        typer.echo(summary, file=out)


def _print_lines(lines: Iterable[str], out: TextIO) -> None:
    """Echo ``lines`` in blocks (an echo per line costs more than making the line)."""
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) >= 4096:
            typer.echo("\n".join(block), file=out)
            block.clear()
    if block:
        typer.echo("\n".join(block), file=out)


def _answer_options(
    ctx: typer.Context,
    grouping: GroupingChoice,
    transforms: bool | None,
    verify: bool | None,
    inside: list[str] | None,
    against: list[str] | None,
) -> Any:
    from catalog.grouping.options import Options, Scope

    scope = Scope.of(inside or [], against or [])
    return Options(ctx.obj.cnn, grouping.value, transforms, verify, scope)


@app.command("copies")
def copies_command(
    ctx: typer.Context,
    method: MethodOption = "phash",
    threshold: ThresholdOption = None,
    grouping: GroupingOption = GroupingChoice.reference,
    transforms: TransformsOption = None,
    verify: VerifyOption = None,
    inside: InOption = None,
    against: AgainstOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """For every catalogued image (under --in), how many other copies of it the catalogue holds (under
    --against): the images that match it directly, or with --grouping components, the rest of its
    component."""
    from catalog.grouping.copies import copy_counts
    from catalog.grouping.stored import stored_copies
    from catalog.methods import catalogue_method

    options = _answer_options(ctx, grouping, transforms, verify, inside, against)
    with ctx.obj.open() as catalog:
        method_used = catalogue_method(method, options.cnn, catalog.methods())
        answer = stored_copies(catalog, method_used, threshold, options)
        if answer is None:
            answer = copy_counts(catalog, method, threshold, options)
        used_method, used_threshold, counts = answer
    from catalog.cli import listing

    columns = (counts.images, counts.listed, counts.counts)
    out = sys.stdout
    if fmt is Format.json:
        images = (Encoded(line) for line in listing.all_copies_json(*columns, ITEM_SEPARATOR))
        _print_json({"method": used_method, "threshold": used_threshold, "images": images}, out)
    elif fmt is Format.csv:
        paths = counts.images.path
        rows = zip([paths[p] for p in counts.listed.tolist()], counts.counts.tolist(), strict=True)
        _print_csv(["path", "copies"], rows, out)
    else:
        _print_lines(listing.all_copies_lines(*columns), out)


@app.command("query")
def query_command(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Any image file, catalogued or not.")],
    method: MethodOption = "phash",
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    threshold: ThresholdOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """The catalogued images nearest to IMAGE, best first, each with the threshold's verdict."""
    from catalog.search.query import nearest

    with ctx.obj.open() as catalog:
        found = nearest(catalog, image, method, k, ctx.obj.cnn, threshold)
    rows = list(zip(found.results, found.matches, strict=True))
    if fmt is Format.json:
        results = [{"path": im.path, "score": score, "match": match} for (im, score), match in rows]
        _print_json(
            {
                "method": found.method,
                "query": found.query,
                "score_kind": found.score_kind,
                "threshold": found.threshold,
                "results": results,
            }
        )
    elif fmt is Format.csv:
        _print_csv(["path", "score", "match"], [(im.path, score, match) for (im, score), match in rows])
    else:
        typer.echo(
            f"{found.method} ({found.score_kind}, threshold {found.threshold:g}) nearest to {found.query}:"
        )
        for (im, score), match in rows:
            typer.echo(f"{score:8.3g}  {'match   ' if match else 'no match'}  {im.path}")


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="An image file.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Another image file.")],
    method: Annotated[
        str | None, typer.Option("--method", "-m", help=f"One of: {', '.join(method_names())}.")
    ] = None,
    all_methods: Annotated[bool, typer.Option("--all", help="Every method (the default).")] = False,
    fmt: FormatOption = Format.text,
) -> None:
    """How alike two image files are, by one method or by every method (no catalogue needed)."""
    from catalog.evaluation.compare import compare_files

    if method and all_methods:
        raise UsageError("choose --method or --all, not both")
    results = compare_files(a, b, [method] if method else None, ctx.obj.cnn)
    if fmt is Format.json:
        _print_json({"a": a, "b": b, "results": [r.as_dict() for r in results]})
    elif fmt is Format.csv:
        _print_csv(["method", "score", "duplicate"], [(r.method, r.score, r.duplicate) for r in results])
    else:
        for r in results:
            verdict = "duplicate" if r.duplicate else "different"
            typer.echo(f"{r.method:14s} {r.score:10.4g}  {verdict:9s}  {r.score_kind}")


class BenchFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


@app.command("bench")
def bench_command(
    ctx: typer.Context,
    folder: Annotated[
        str,
        typer.Argument(
            metavar="DIR", help="A folder with a groups.csv (file,group), or images in runs of 4."
        ),
    ],
    methods: Annotated[
        str | None, typer.Option("--methods", help="Comma-separated methods (default: all but exact).")
    ] = None,
    make_variants: Annotated[
        str | None,
        typer.Option(
            "--make-variants",
            metavar="OUT",
            help="Treat FOLDER as originals: write altered copies of each (resize+JPEG, crop, brightness "
            "and contrast, mirror, 90-degree rotation, text, border, grayscale) and a groups.csv into OUT, "
            "then benchmark OUT.",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    fmt: Annotated[BenchFormat, typer.Option("--format", "-f", help="Output format.")] = BenchFormat.text,
) -> None:
    """Reproduce the founding article's experiments on FOLDER, with its figures alongside."""
    from pathlib import Path

    from catalog.evaluation import bench
    from catalog.evaluation.report import bench_markdown, bench_text

    names = parse_method_list(methods) if methods else None
    target = Path(folder)
    if make_variants:
        from catalog.evaluation.variants import make_variants as write_variants

        groups = write_variants(target, Path(make_variants))
        typer.echo(f"wrote {groups} groups of altered copies to {make_variants}", err=True)
        target = Path(make_variants)
    report = bench.run(
        target, names, workers=workers, progress=lambda m: typer.echo(m, err=True), cnn=ctx.obj.cnn
    )
    if fmt is BenchFormat.json:
        _print_json(report.as_dict())
    else:
        typer.echo(bench_markdown(report) if fmt is BenchFormat.markdown else bench_text(report))


@app.command("review")
def review_command(
    ctx: typer.Context,
    method: MethodOption = "phash",
    threshold: ThresholdOption = None,
    inside: InOption = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to serve on (another than 127.0.0.1 opens it to the network)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on (0: a free one).")] = 0,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes making thumbnails (default: one per core).")
    ] = None,
) -> None:
    """A page in the browser to look at the duplicate groups side by side and settle them: keep one and
    trash the others, or mark them "not duplicates" (remembered). Runs in the foreground until Ctrl-C;
    the first line printed is the page's address, with its access token."""
    import secrets
    import socket
    import webbrowser

    from catalog.actions.apply import recover
    from catalog.grouping.reference import find_groups
    from catalog.lock import actions_lock
    from catalog.review.thumbs import Thumbnails, cache_dir
    from catalog.review.web import Review, serve

    options = _answer_options(ctx, GroupingChoice.reference, None, None, inside, None)
    with ctx.obj.open(shielded=False) as catalog:
        with actions_lock(catalog.url):
            for note in recover(catalog):
                typer.echo(f"catalog: {note}", err=True)
        found = find_groups(catalog, method, threshold, options)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
        sock.listen(128)
        bound = sock.getsockname()[1]
        loopback = host in ("127.0.0.1", "localhost", "::1")
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
        netloc = f"[{shown_host}]:{bound}" if ":" in shown_host else f"{shown_host}:{bound}"
        hosts = {netloc, f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"}
        if not loopback:
            hosts.add(f"{socket.gethostname()}:{bound}")
            typer.echo(
                f"catalog: warning: serving on {host}, reachable from the network (anyone with the "
                "address and its token can act on your files)",
                err=True,
            )
        token = secrets.token_urlsafe(24)
        url = f"http://{netloc}/?token={token}"
        typer.echo(url)
        sys.stdout.flush()
        table = found.table
        redundant = len(table.member) - len(table)
        typer.echo(
            f"catalog: {_plural(len(table), 'group')}, {redundant:,} redundant copies "
            f"({found.method}, threshold {found.threshold:g}); Ctrl-C stops the page",
            err=True,
        )
        thumbnails = Thumbnails(cache_dir(catalog.url))
        paths, hashes = table.images.path, table.images.content_hash
        items = [(paths[p], hashes[p] or "") for p in table.member.tolist() if hashes[p]]
        background = thumbnails.make_all(items, workers or os.cpu_count() or 1)
        review = Review(catalog, found, thumbnails, token, hosts, any_host=not loopback, cnn=ctx.obj.cnn)
        if not no_open:
            if (
                sys.platform in ("darwin", "win32")
                or os.environ.get("DISPLAY")
                or os.environ.get("WAYLAND_DISPLAY")
            ):
                webbrowser.open(url)
            else:  # no screen: a console browser would take over the terminal
                typer.echo("catalog: no display to open a browser on: open the address above", err=True)
        try:
            serve(review, sock)
        finally:
            background.stop()
            sock.close()


class ActionChoice(StrEnum):
    trash = "trash"
    move = "move"
    hardlink = "hardlink"
    symlink = "symlink"
    delete = "delete"


_PAST = {"trash": "trashed", "move": "moved", "hardlink": "hard-linked", "symlink": "symlinked"}


@app.command("resolve")
def resolve_command(
    ctx: typer.Context,
    keep: Annotated[
        list[str],
        typer.Option(
            "--keep",
            metavar="POLICY",
            help="Which image of each group to keep, policies in order (comma-separated or repeated): "
            "largest (pixels), biggest (bytes), oldest, newest (modified time), prefer:DIR (files under "
            "DIR first), shortest-path. Ties keep the group's reference.",
        ),
    ],
    action: Annotated[
        ActionChoice,
        typer.Option(
            "--action",
            help="What to do with the other images: trash (the desktop trash), move (to --to DIR, keeping "
            "the path below its root), hardlink or symlink (byte-identical copies become links to the kept "
            "file), delete (needs --apply --yes-delete; cannot be undone).",
        ),
    ],
    method: MethodOption = "phash",
    threshold: ThresholdOption = None,
    inside: InOption = None,
    to: Annotated[
        str | None, typer.Option("--to", metavar="DIR", help="Destination of --action move.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Carry the plan out (without it, only print it: a dry run).")
    ] = False,
    yes_delete: Annotated[
        bool,
        typer.Option("--yes-delete", help="Confirms --action delete --apply: files are deleted for good."),
    ] = False,
    raw_pairs: Annotated[
        bool,
        typer.Option(
            "--raw-pairs",
            help="Treat the RAW and the JPEG of one shot (same folder and name) as duplicates; by default "
            "neither is acted on because of the other.",
        ),
    ] = False,
    fmt: FormatOption = Format.text,
) -> None:
    """Settle duplicate groups from the command line: keep one image of each group by --keep, and trash,
    move or link the others. A dry run unless --apply; every applied action is journaled first and can
    be undone (catalog undo)."""
    from catalog.actions.policies import KeepPolicy
    from catalog.actions.settle import resolve

    policy = KeepPolicy.parse(keep)
    if action is ActionChoice.delete and apply and not yes_delete:
        raise UsageError("--action delete --apply deletes files for good: add --yes-delete to confirm")
    options = _answer_options(ctx, GroupingChoice.reference, None, None, inside, None)
    with ctx.obj.open() as catalog, _progress_bar() as progress:
        result = resolve(
            catalog,
            method,
            threshold,
            options,
            policy,
            action.value,
            to,
            apply,
            progress=progress,
            raw_pairs=raw_pairs,
        )
    for note in result.notes:
        typer.echo(f"catalog: {note}", err=True)
    if result.outcome is not None:
        rows = [
            (step.action, step.image.path, step.keep.path, target) for step, target, _ in result.outcome.done
        ]
        skipped = result.outcome.skipped
    else:
        rows = [(step.action, step.image.path, step.keep.path, step.target) for step in result.plan.steps]
        skipped = result.plan.skipped
    if fmt is Format.json:
        _print_json(
            {
                "method": result.method,
                "threshold": result.threshold,
                "applied": apply,
                "batch": result.outcome.batch if result.outcome else None,
                "actions": [
                    dict(zip(("action", "path", "keep", "target"), row, strict=True)) for row in rows
                ],
                "skipped": [{"path": p, "reason": r} for p, r in skipped],
            }
        )
        return
    if fmt is Format.csv:
        _print_csv(
            ["action", "path", "keep", "target", "skipped"],
            [(*r, "") for r in rows] + [("", p, "", "", reason) for p, reason in skipped],
        )
        return
    for act, path, kept, target in rows:
        verb = _PAST.get(act, "deleted") if apply else f"would {act}"
        where = f" -> {target}" if target and act == "move" else ""
        typer.echo(f"{verb:>11}  {path}{where}  (keeping {kept})")
    for path, reason in skipped:
        typer.echo(f"{'skipped':>11}  {path}: {reason}")
    verb = _PAST.get(action.value, "deleted") if apply else "to " + action.value
    summary = f"{_plural(len(rows), 'file')} {verb}"
    if skipped:
        summary += f", {_plural(len(skipped), 'file')} skipped"
    if apply and result.outcome and result.outcome.batch and action is not ActionChoice.delete:
        summary += " (undo: catalog undo --last, or catalog undo --all)"
    elif not apply:
        summary += " (a dry run: add --apply to carry it out)"
    typer.echo(f"{summary}; {result.method}, threshold {result.threshold:g}")


@app.command("undo")
def undo_command(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="[ID]...", help="Journal entries to undo (catalog journal).")
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="Undo the last run of actions (the default).")] = False,
    everything: Annotated[bool, typer.Option("--all", help="Undo every action not yet undone.")] = False,
    fmt: ReportFormatOption = ReportFormat.text,
) -> None:
    """Put back files that resolve or the review page trashed, moved or replaced by links, byte for byte,
    newest first; the catalogue follows."""
    from catalog.actions.settle import undo

    if sum([bool(ids), last, everything]) > 1:
        raise UsageError("choose one of --last, --all or journal ids")
    which = "ids" if ids else "all" if everything else "last"
    with ctx.obj.open() as catalog:
        result = undo(catalog, which, ids or [], ctx.obj.cnn)
    for note in result.notes:
        typer.echo(f"catalog: {note}", err=True)
    restored, failed = result.outcome.restored, result.outcome.failed
    if fmt is ReportFormat.json:
        _print_json(
            {
                "restored": [{"id": e.id, "action": e.action, "path": e.path} for e in restored],
                "failed": [{"id": e.id, "action": e.action, "path": e.path, "reason": r} for e, r in failed],
                "catalogued": result.reindexed,
            }
        )
    else:
        for e in restored:
            typer.echo(f"restored  {e.path}  (was {_PAST.get(e.action, e.action)})")
        for e, reason in failed:
            typer.echo(f"  failed  {e.path}: {reason}")
        typer.echo(f"{_plural(len(restored), 'file')} put back, {len(failed)} could not be")
    if failed:
        raise typer.Exit(1)


@app.command("journal")
def journal_command(ctx: typer.Context, fmt: FormatOption = Format.text) -> None:
    """The journal of actions on files (resolve --apply, the review page), oldest first: id, run, time,
    action, state (done, undone, rolled-back), path and where it went."""
    with ctx.obj.open() as catalog:
        entries = catalog.journal()
    rows = [
        (
            e.id,
            e.batch,
            e.created_at.isoformat(timespec="seconds"),
            e.action,
            e.state,
            e.path,
            e.keep,
            e.target or "",
        )
        for e in entries
    ]
    header = ["id", "batch", "time", "action", "state", "path", "keep", "target"]
    if fmt is Format.json:
        _print_json({"entries": [dict(zip(header, r, strict=True)) for r in rows]})
    elif fmt is Format.csv:
        _print_csv(header, rows)
    else:
        for r in rows:
            typer.echo(f"{r[0]:6d}  run {r[1]:<4d} {r[2]}  {r[3]:<8} {r[4]:<11} {r[5]}")


class MarkKind(StrEnum):
    not_duplicate = "not-duplicate"


@app.command("mark")
def mark_command(
    ctx: typer.Context,
    kind: Annotated[MarkKind, typer.Argument(metavar="not-duplicate", help="The kind of mark.")],
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Two or more image files.")],
) -> None:
    """Remember that these pictures are not duplicates of each other (every two of them): dupes, copies,
    review and resolve never group them together again. Kept by content, so it survives renames, moves
    and re-indexing, for every method."""
    from catalog.actions.settle import mark_not_duplicates

    with ctx.obj.open(create=True) as catalog:
        added, pictures = mark_not_duplicates(catalog, paths)
    typer.echo(f"{_plural(added, 'new mark')} among {_plural(pictures, 'picture')}")


@app.command("marks")
def marks_command(
    ctx: typer.Context,
    remove: Annotated[
        list[str] | None,
        typer.Option(
            "--remove",
            metavar="PATH",
            help="Remove marks (repeatable): of this picture, or among the pictures named.",
        ),
    ] = None,
    fmt: FormatOption = Format.text,
) -> None:
    """The "not a duplicate" marks, each with the catalogued files of both pictures."""
    from catalog.actions.settle import unmark

    with ctx.obj.open() as catalog:
        if remove:
            removed = unmark(catalog, remove)
            typer.echo(f"{_plural(removed, 'mark')} removed")
            return
        marks = catalog.marks()
        paths = catalog.paths_by_hash([h for a, b, _ in marks for h in (a, b)])
    rows = [
        (
            a,
            "; ".join(paths.get(a, ["(not catalogued)"])),
            b,
            "; ".join(paths.get(b, ["(not catalogued)"])),
            t,
        )
        for a, b, t in marks
    ]
    if fmt is Format.json:
        _print_json(
            {
                "marks": [
                    {
                        "first": a,
                        "first_paths": paths.get(a, []),
                        "second": b,
                        "second_paths": paths.get(b, []),
                        "marked": t.isoformat(timespec="seconds"),
                    }
                    for a, b, t in marks
                ]
            }
        )
    elif fmt is Format.csv:
        _print_csv(["first", "first_paths", "second", "second_paths", "marked"], rows)
    else:
        for _, pa, _, pb, t in rows:
            typer.echo(f"{t.isoformat(timespec='seconds')}  {pa}  <>  {pb}")
        typer.echo(f"{_plural(len(rows), 'mark')}")


def _print_json(data: object, out: TextIO | None = None) -> None:
    """Write ``data`` as JSON (``_json_chunks``) to ``out`` (standard output if None), piece by piece:
    a list value may be a generator, so that a million images in groups are never all held as
    dictionaries at once."""
    out = sys.stdout if out is None else out
    pieces: list[str] = []
    for chunk in _json_chunks(data):
        pieces.append(chunk)
        if len(pieces) >= 4096:  # written in blocks: a write per image would cost more than encoding it
            out.write(_escaped("".join(pieces)))
            pieces.clear()
    pieces.append("\n")
    out.write(_escaped("".join(pieces)))
    out.flush()


def _json_chunks(data: object) -> Iterator[str]:
    """JSON a person can read and a machine can parse fast: an object's keys one per line, each item of
    a list value (or of a generator) on a line of its own. Every value goes through the C encoder
    (``indent`` would make Python's pure-Python one do all the work: 4 s for 100,000 images in groups)."""
    if not isinstance(data, dict) or not data:
        yield _ENCODE(data)
        return
    yield "{\n"
    for n, (key, value) in enumerate(data.items()):
        comma = "," if n < len(data) - 1 else ""
        name = _ENCODE(key)
        if isinstance(value, list | GeneratorType):
            first = True
            for item in value:
                yield f"  {name}: [\n    " if first else ITEM_SEPARATOR
                yield item if isinstance(item, Encoded) else _ENCODE(item)
                first = False
            yield f"  {name}: []{comma}\n" if first else f"\n  ]{comma}\n"
        else:
            yield f"  {name}: {_ENCODE(value)}{comma}\n"
    yield "}"


class Encoded(str):
    """A value already encoded as JSON (``_json_chunks`` writes it as it is); in a list, it may also
    be several items joined by ``ITEM_SEPARATOR``."""


#: What ``_json_chunks`` writes between two items of a list.
ITEM_SEPARATOR = ",\n    "


#: One encoder for every value (``json.dumps`` with options builds a new one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _print_csv(header: list[str], rows: Any, out: TextIO | None = None) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    typer.echo(buffer.getvalue(), nl=False, file=out)


@contextmanager
def _early_start(
    url: str, roots: list[str], workers: int | None, methods: list[str] | None
) -> Iterator[EarlyStart | None]:
    """A new catalogue: start reading files at once (see ``catalog.ingest.pool.start_new_catalogue``)."""
    db_file = sqlite_file(url)
    if db_file is None or db_file.exists():
        yield None
        return
    import numpy  # noqa: F401 - Pillow and NumPy load once here, not once in each worker

    import catalog.ingest.imaging  # noqa: F401
    from catalog.ingest.pool import start_new_catalogue

    early = start_new_catalogue(roots, methods or DEFAULT_METHODS, workers or os.cpu_count() or 1)
    with early.pool:
        yield early


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("indexing", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _report_interruption(exc: KeyboardInterrupt) -> NoReturn:
    """One line, no traceback, exit 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    from catalog.interrupts import exit_code

    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    done = exc.files_done if isinstance(exc, Interrupted) else None
    if done is None:
        typer.echo("catalog: interrupted", err=True)
    else:
        typer.echo(
            f"catalog: interrupted; {_plural(done, 'file')} done, the rest is indexed by the next run",
            err=True,
        )
    raise typer.Exit(exit_code(signum))


def main() -> None:
    interrupts = Interrupts()
    try:
        try:
            app(obj=interrupts, prog_name="catalog")
        except KeyboardInterrupt as exc:  # before or after a command ran (the funnel covers the command)
            try:
                _report_interruption(exc)
            except typer.Exit as stop:
                sys.exit(stop.exit_code)
    except SystemExit as stop:
        if interrupts.received is None:
            raise
        # Interrupted: every transaction is rolled back and every pool stopped by now. Skip the
        # interpreter's shutdown, which would also run the destructors of native threads a library may
        # have been starting when the signal came (ONNX Runtime's, in a model-loading thread), and
        # abort the process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(stop.code if isinstance(stop.code, int) else 1)
    finally:
        # Interpreter shutdown would walk every object SQLAlchemy and NumPy created (~0.1 s of a
        # short command); freezing them first skips that final collection.
        gc.freeze()
