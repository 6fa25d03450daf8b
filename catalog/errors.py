"""Errors a user can act on. The CLI turns every CatalogError into one line on stderr and an exit code."""


class CatalogError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 1


class UsageError(CatalogError):
    """The command cannot run as asked (bad path, unknown method, bad threshold)."""

    exit_code = 2


class StoreError(CatalogError):
    """The catalogue cannot be opened or written."""


class ImageError(CatalogError):
    """One file could not be read as an image. Recorded per file; never stops a scan."""


class BusyError(CatalogError):
    """Another process is writing the catalogue (one writer per catalogue)."""

    exit_code = 3


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the command (see :mod:`catalog.interrupts`). A ``KeyboardInterrupt``, so
    that every clean-up runs as it would for Ctrl-C. ``files_done``: files indexed and committed before
    the signal, when the command was indexing; ``acted``: files acted on (journaled as done) before it,
    when the command was settling (``resolve --apply``), and whether ``undo`` can put them back
    (``undoable``: not when they were deleted)."""

    def __init__(self, signum: int, files_done: int | None = None):
        super().__init__(signum)
        self.signum = signum
        self.files_done = files_done
        self.acted: int | None = None
        self.undoable = True
