"""The one exception type for problems a user can fix, and the one format every user-facing error line takes."""

from __future__ import annotations

import errno


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


# errno -> (why, what to do) for the file-system faults a user can fix
_OS_REASONS = {
    errno.ENOSPC: ("no space left on the device", "free some space there or point it at another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space there or point it at another disk"),
    errno.EROFS: ("read-only file system", "choose a writable location"),
    errno.EACCES: ("permission denied", "fix the permissions or choose a directory you can write to"),
    errno.EPERM: ("operation not permitted", "fix the permissions or choose a directory you can write to"),
    errno.ENOTDIR: ("a file, not a directory", "move that file away or choose another path"),
    errno.EEXIST: ("a file is in the way", "move it away or choose another path"),
    errno.EISDIR: ("a directory is in the way", "move it away or choose another path"),
}


def environment_error(err: OSError, what: str, path: object, todo: str | None = None) -> UserError:
    """A failed file-system operation as one line: `cannot <what> (<path>): <why>; <what to do>`."""
    why, default_todo = _OS_REASONS.get(err.errno or 0, (err.strerror or str(err), "check the path and the disk"))
    return user_error(f"cannot {what}", str(path), f"{why}; {todo or default_todo}")
