"""The one exception type a user ever sees: a one-line message saying what, where and what to do."""


class PyflowError(Exception):
    """A user-facing error. The CLI prints `pyflow: error: <message>` and exits with status 2."""
