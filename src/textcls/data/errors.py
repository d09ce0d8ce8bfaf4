"""The one exception type for problems a user can fix (a bad file, column, label or setting)."""


class DataError(ValueError):
    """A user-fixable data or configuration problem.

    The CLI prints the message as a single line and exits non-zero, without a traceback, so the message
    must say what is wrong (file, line, column, key) and what to do about it.
    """
