"""The command line: parse, call the library, print. Every command module registers its commands on
the one app (``catalog.cli.base``); ``main`` runs it."""

from __future__ import annotations

import gc
import os
import sys

import typer

from catalog.cli.base import app, report_interruption
from catalog.interrupts import Interrupts

# Each module registers its commands on the app, in the order --help lists them.
# isort: split
from catalog.cli import library  # noqa: F401

# isort: split
from catalog.cli import questions  # noqa: F401

# isort: split
from catalog.cli import bench  # noqa: F401

# isort: split
from catalog.cli import settling  # noqa: F401


def main() -> None:
    interrupts = Interrupts()
    try:
        try:
            app(obj=interrupts, prog_name="catalog")
        except KeyboardInterrupt as exc:  # before or after a command ran (the funnel covers the command)
            try:
                report_interruption(exc)
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
