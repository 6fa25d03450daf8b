"""How numbers are written for people, the same in every command and on the review page."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``523 B``, ``128.0 KB``, ``1.8 MB`` (decimal units)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
