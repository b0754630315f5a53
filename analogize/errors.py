"""The one exception type users see.

Every check on user input raises `AnalogizeError` with a single-line message that names the
offending file and says how to fix it; the CLI prints that line and exits with status 2 instead
of showing a traceback.
"""


class AnalogizeError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DiskFullError(AnalogizeError):
    """An output could not be written for lack of space: a batch stops at the first one, since the
    images after it would fail the same way."""
