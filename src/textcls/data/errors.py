"""The data layer's name for the package's user-error type (see textcls.errors)."""

from textcls.errors import UserError as DataError
from textcls.errors import user_error

__all__ = ["DataError", "user_error"]
