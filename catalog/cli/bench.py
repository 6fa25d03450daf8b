"""``catalog bench``: the founding article's experiments on a grouped folder."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.methods import parse_method_list

if TYPE_CHECKING:
    pass
from catalog.cli.base import app
from catalog.cli.output import print_json


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
        print_json(report.as_dict())
    else:
        typer.echo(bench_markdown(report) if fmt is BenchFormat.markdown else bench_text(report))
