"""`textcls <subcommand> --help` that fits on a few screens: short usage, short lists of known classes."""

from __future__ import annotations

import argparse
import re
from typing import Any

from jsonargparse import DefaultHelpFormatter

# Where jsonargparse lists every imported subclass of an argument's type (for nn.Module: all of torch.nn).
_KNOWN = re.compile(r", known subclasses: (?P<paths>[^()]*?)\)$", re.DOTALL)
# Classes of these packages are not the ones a textcls user picks for a network (all of torch.nn, torchmetrics).
_NOT_NETWORKS = ("torch.", "torchmetrics.", "pytorch_lightning.", "lightning_fabric.", "textcls.module.")
_MAX_LISTED = 12
# Option groups documented at length by Lightning (the Trainer's and ModelCheckpoint's docstrings).
_LIGHTNING_GROUPS = ("trainer.", "checkpoint.")


class ShortHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's formatter with a one-line usage and the known-subclass lists cut down to short names."""

    def _get_help_string(self, action: Any) -> str:
        full = action.help
        if isinstance(full, str) and str(getattr(action, "dest", "")).startswith(_LIGHTNING_GROUPS):
            action.help = _first_sentence(full)  # Lightning's own options: its docs have the rest
        try:
            text = super()._get_help_string(action)
        finally:
            action.help = full
        found = _KNOWN.search(text)
        if found is None:
            return text
        paths = [p.strip() for p in found["paths"].split(",") if p.strip()]
        if any(p.startswith("textcls.models.") for p in paths):  # the network: textcls's own and the user's
            paths = [p for p in paths if not p.startswith(_NOT_NETWORKS)]
        names = [p.rsplit(".", 1)[-1] for p in paths]
        listed = ", ".join(names[:_MAX_LISTED]) + (
            f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
        )
        option = action.option_strings[0] if action.option_strings else ""
        hint = f"; {option}.help CLASS shows a class's options" if option else ""
        return text[: found.start()] + f", e.g. {listed}{hint})"

    def add_usage(self, usage: str | None, actions: Any, *args: Any, **kwargs: Any) -> None:
        # A subcommand's default usage lists every option (over 100 lines for fit), which are listed below anyway.
        # (jsonargparse gives subcommand parsers their parent's formatter; the top-level usage names the subcommands.)
        actions = list(actions)
        parent = any(isinstance(a, argparse._SubParsersAction) for a in actions)
        if usage is None and len(actions) > _MAX_LISTED and not parent:
            usage, actions = "%(prog)s [-h] [-c CONFIG] [--print_config] [--OPTION VALUE ...]", []
        super().add_usage(usage, actions, *args, **kwargs)


def _first_sentence(text: str) -> str:
    end = re.search(r"\.(\s|$)", text)
    return text[: end.start() + 1] if end else text


def one_line_parser_error(message: str) -> str:
    """jsonargparse's multi-line type errors as one line; a bad choice as `--key VALUE is invalid: expected ...`."""
    keys = re.findall(r'Parser key "([^"]+)"', message)  # outer first; a nested one is an init_args key of a class
    given = re.search(r"(?:Given|Got) value: (.*)", message)
    choices = re.search(r"Literal\[([^\]]*)\]", message)
    if keys and given and choices:
        names = ", ".join(c.strip(" '\"") for c in choices.group(1).split(","))
        return f"--{'.init_args.'.join(keys)} {given.group(1).strip()} is invalid: expected one of {names}."
    return " ".join(line.strip() for line in message.splitlines())
