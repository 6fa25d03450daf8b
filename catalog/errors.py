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
