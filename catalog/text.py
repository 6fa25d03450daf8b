"""How numbers are written for people, the same in every command and on the review page."""

from __future__ import annotations

import re


def human_size(size: int) -> str:
    """``523 B``, ``128.0 KB``, ``1.8 MB`` (decimal units)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def plural(count: int, noun: str, plural: str | None = None) -> str:
    """``1 group``, ``2 groups``, ``1 copy``, ``0 copies`` (thousands separated)."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def groups_summary(
    groups: int, members: int, method: str, threshold: float, verified: bool, transforms: bool, images: int
) -> str:
    """The last line of ``dupes``'s text: how many groups and redundant copies, and what was asked."""
    extra = plural(members - groups, "redundant copy", "redundant copies")
    turns = ", with turns and mirrors" if transforms else ""
    return (
        f"{plural(groups, 'group')}, {extra} "
        f"({method}, threshold {threshold:g}{', verified' if verified else ''}"
        f"{turns}, {plural(images, 'image')})"
    )


def shown(path: str) -> str:
    """A file name as text output shows it: control characters (a newline, a terminal's escape
    sequence) written as backslash escapes, so that a name can neither forge a line of the output nor
    drive the terminal. JSON and CSV keep names exact."""
    return path if path.isprintable() else path.translate(_CONTROLS)


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
}


def json_escaped(text: str) -> str:
    """A file name that is not UTF-8 holds lone surrogates (PEP 383): written as \\udcXX escapes, the
    JSON stays valid UTF-8, and json.loads + os.fsencode give back the name's bytes."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")
