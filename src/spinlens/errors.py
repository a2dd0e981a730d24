"""Errors a user can cause. Each carries one clear line; the CLI prints it, never a traceback."""


class SpinlensError(Exception):
    """Base class: ``str(error)`` is the one line shown to the user."""


class IngestError(SpinlensError):
    """A source could not be read or fetched (missing file, refused URL, bad encoding...)."""


class ExtractionError(SpinlensError):
    """A document was read but holds no article text."""


class UsageError(SpinlensError):
    """The command was called wrongly (exit code 1)."""
