"""The one exception type for problems a user can fix, and the one format every user-facing error line takes."""

from __future__ import annotations


class UserError(ValueError):
    """A user-fixable problem: a bad file, column, label, setting, checkpoint or environment (disk, permissions).

    The CLI prints the message as a single `error:` line and exits with status 2, without a traceback, so the message
    must say what is wrong, where (file and line, or the config key), and what to do about it. Build new messages
    with `user_error` so they all read alike.
    """


def user_error(what: str, where: str | None = None, todo: str | None = None) -> UserError:
    """`<what> (<where>): <what to do>`, e.g. user_error("unclosed quote", "train.csv:101", "close it or ...")."""
    message = what if where is None else f"{what} ({where})"
    return UserError(message if todo is None else f"{message}: {todo}")


def format_error(err: BaseException) -> str:
    """The single line the CLI prints for a user error (newlines folded so it stays one line)."""
    return "error: " + " ".join(str(err).split())
