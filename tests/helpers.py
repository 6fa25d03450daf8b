"""The tests' one way to run the command line: in this process through Typer's runner (``cli``), or as
the installed program in a process of its own (``run``), as a user runs it. Both are checked for a
traceback: an error is one line, whatever happens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from catalog.cli.app import app

_runner = CliRunner()


def cli(db: Path | str, *args: str) -> Result:
    """``catalog --db DB ARGS`` in this process."""
    result = _runner.invoke(app, ["--db", str(db), *args])
    assert "Traceback" not in result.output, result.output
    return result


def run(
    db: Path | str, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m catalog --db DB ARGS`` in a process of its own (``env``: its environment); with
    ``check``, it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "catalog", "--db", str(db), *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        env=env,
    )
    if check:
        assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done
