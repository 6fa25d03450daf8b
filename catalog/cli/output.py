"""Output formats: JSON streamed a piece at a time, CSV, and text lines in blocks."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from types import GeneratorType
from typing import TYPE_CHECKING, Any, TextIO

import typer

from catalog.text import json_escaped as _escaped

if TYPE_CHECKING:
    pass


def print_lines(lines: Iterable[str], out: TextIO) -> None:
    """Echo ``lines`` in blocks (an echo per line costs more than making the line)."""
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) >= 4096:
            typer.echo("\n".join(block), file=out)
            block.clear()
    if block:
        typer.echo("\n".join(block), file=out)


def print_json(data: object, out: TextIO | None = None) -> None:
    """Write ``data`` as JSON (``json_chunks``) to ``out`` (standard output if None), piece by piece:
    a list value may be a generator, so that a million images in groups are never all held as
    dictionaries at once."""
    out = sys.stdout if out is None else out
    pieces: list[str] = []
    for chunk in json_chunks(data):
        pieces.append(chunk)
        if len(pieces) >= 4096:  # written in blocks: a write per image would cost more than encoding it
            out.write(_escaped("".join(pieces)))
            pieces.clear()
    pieces.append("\n")
    out.write(_escaped("".join(pieces)))
    out.flush()


def json_chunks(data: object) -> Iterator[str]:
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
    """A value already encoded as JSON (``json_chunks`` writes it as it is); in a list, it may also
    be several items joined by ``ITEM_SEPARATOR``."""


#: What ``json_chunks`` writes between two items of a list.
ITEM_SEPARATOR = ",\n    "


#: One encoder for every value (``json.dumps`` with options builds a new one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def print_csv(header: list[str], rows: Any, out: TextIO | None = None) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    typer.echo(buffer.getvalue(), nl=False, file=out)
