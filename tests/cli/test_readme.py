"""The README's CLI reference is checked against ``--help``: every command and every option documented,
nothing documented that ``--help`` does not offer, and each ``--format`` listing exactly the formats the
command accepts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def reference() -> dict[str, str]:
    """Command name -> the rest of its heading in the README's CLI reference."""
    section = README.read_text().split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^### `catalog (\S+)([^`]*)`", section, flags=re.MULTILINE))


def help_text(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    run = subprocess.run(
        [sys.executable, "-m", "catalog", *command, "--help"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def options(text: str) -> dict[str, str | None]:
    """Option -> its choices (``text|json``) or None, from the Options panel of a help text."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        match = re.match(r"^\W*(--[a-z][a-z-]*)(?:\s+-[a-z])?\s+(<[^>]+>)?", line)
        if match and match.group(1) != "--help":
            choices = match.group(2)
            found[match.group(1)] = choices[1:-1] if choices and "|" in choices else None
    return found


def test_every_command_in_help_is_documented_and_nothing_else():
    panel = help_text().split("Commands", 1)[1]
    commands = set(re.findall(r"^\W+([a-z]+)\s{2,}", panel, flags=re.MULTILINE))
    assert commands and set(reference()) == commands


def test_each_heading_lists_exactly_the_options_help_offers():
    for name, heading in reference().items():
        text = help_text(name)
        offered = options(text)
        assert set(re.findall(r"--[a-z][a-z-]*", heading)) == set(offered), name
        for option, choices in offered.items():
            if choices:
                documented = re.search(rf"{option} ([a-z|]+)", heading)
                assert documented and documented.group(1) == choices, (name, option, choices)
        usage = re.search(r"Usage: catalog \S+ \[OPTIONS\](.*)", text)
        assert usage, text
        # Optional arguments ([ID]...) are documented in brackets, with the options.
        arguments = [a.strip("{}") for a in usage.group(1).split() if not a.startswith("[")]
        positional = heading
        while "[" in positional:  # drop the options, nested ones too: what is left are the arguments
            positional = re.sub(r"\[[^\[\]]*\]", "", positional)
        positional = re.sub(r"--[a-z-]+(\s+[A-Za-z][\w|:-]*)?", "", positional)  # required options
        assert arguments == positional.split(), name


def test_global_options_are_documented():
    text = README.read_text().split("## CLI reference", 1)[1].split("### ", 1)[0]
    for option in options(help_text().split("Commands", 1)[0]):
        assert f"`{option}" in text, option
