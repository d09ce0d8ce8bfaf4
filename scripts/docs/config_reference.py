"""Write docs/reference/configuration.md from the signatures and docstrings that `textcls fit --help` reads.

    python scripts/docs/config_reference.py            # rewrite the page
    python scripts/docs/config_reference.py --check    # exit 1 when the committed page is stale

Every option comes from jsonargparse: the parser LightningCLI builds for `textcls fit` (TextClassifier, TextDataModule,
the checkpoint and prediction groups, the command's own options), one parser per network in `textcls.models`, and one
per Lightning callback defined anywhere in the textcls package. Nothing on the page is written by hand.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "configuration.md"
# Options every LightningCLI has, documented by Lightning itself; the page lists textcls's own.
LIGHTNING_OPTIONS = {"help", "config", "print_config"}


class _ParserBuilt(Exception):
    """Raised from parse_arguments: the parser is complete, nothing is parsed or instantiated."""


def fit_parser() -> tuple[Any, dict[str, Any]]:
    """The `textcls fit` parser exactly as the command builds it, and the trainer defaults it adds."""
    from textcls.cli import TextclsCLI

    class ParserOnly(TextclsCLI):
        def parse_arguments(self, parser: Any, args: Any) -> None:
            raise _ParserBuilt(parser, self.trainer_defaults)

    try:
        ParserOnly(args=["fit"])
    except _ParserBuilt as built:
        parser, trainer_defaults = built.args
    else:  # pragma: no cover - the override always raises
        raise RuntimeError("TextclsCLI did not build its parser")
    return parser._subcommands_action._name_parser_map["fit"], trainer_defaults


def short_type(hint: Any) -> str:
    if hint is None:
        return ""
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    text = re.sub(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)+([A-Za-z_][A-Za-z0-9_]*)", r"\1", text)
    return text.replace("NoneType", "None")


def show_default(value: Any) -> str:
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict) and "class_path" in value:
        args = value.get("init_args") or {}
        return value["class_path"] + (f" {yaml.safe_dump(dict(args), default_flow_style=True).strip()}" if args else "")
    if isinstance(value, str):
        return value if value else '""'
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text.removesuffix("...").strip()


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("``", "`").replace("|", "\\|")


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.search(r"(?<=[a-z0-9`)])\. (?=[A-Z`])", text)
    return text[: match.start() + 1] if match else text


def documented_by_textcls(cls: type | None, name: str) -> bool:
    """Whether the docstring of parameter `name` is textcls's own (else it is inherited, e.g. from Lightning)."""
    for klass in inspect.getmro(cls) if cls else ():
        init = vars(klass).get("__init__")
        if init is not None and name in inspect.signature(init).parameters:
            return klass.__module__.startswith("textcls")
    return False


def code(text: str) -> str:
    return f"`{text}`" if text else ""


def option_rows(
    parser: Any, prefix: str, links: dict[str, str], cls: type | None = None, dashes: str = "--"
) -> list[str]:
    from jsonargparse import ActionConfigFile

    rows = []
    for action in parser._actions:
        dest = action.dest
        if not dest.startswith(prefix) or dest.endswith(".help") or isinstance(action, ActionConfigFile):
            continue
        name = dest[len(prefix) :]
        if not name or "." in name or name in LIGHTNING_OPTIONS or type(action).__name__ == "_ActionConfigLoad":
            continue
        hint = getattr(action, "_typehint", None)
        if dest in links:
            default = f"set from the data (`{links[dest]}`)"
        elif action.default is None and getattr(action, "required", False):
            default = "required"
        else:
            default = code(cell(show_default(action.default)))
        help_text = action.help or ""
        if not documented_by_textcls(cls, name):
            help_text = first_sentence(help_text)  # Lightning's long docstrings: their first sentence, not the essay
        rows.append(f"| `{dashes}{dest}` | {code(cell(short_type(hint)))} | {default} | {cell(help_text)} |")
    return rows


def table(rows: list[str]) -> list[str]:
    return ["| option | type | default | description |", "|---|---|---|---|", *rows, ""]


def class_parser(cls: type, nested_key: str) -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, nested_key, fail_untyped=False, sub_configs=True)
    return parser


def first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return cell(doc.split("\n\n")[0])


def textcls_callbacks() -> list[type]:
    """Every Lightning callback class defined in a textcls module (not the CLI's config saver, which no config sets)."""
    from pytorch_lightning.callbacks import Callback
    from pytorch_lightning.cli import SaveConfigCallback

    import textcls

    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(textcls.__path__, "textcls."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Callback)
                and not issubclass(obj, SaveConfigCallback)
                and obj.__module__ == info.name
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[name] for name in sorted(found)]


def render() -> str:
    import textcls.models

    fit, trainer_defaults = fit_parser()
    links = {a.target[0]: a.source[0][0] for a in fit._links_group._group_actions}
    groups = {key: group.group_class for key, group in fit.groups.items() if hasattr(group, "group_class")}
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/docs/config_reference.py from the code's signatures; do not edit. -->",
        "",
        "Every option of `textcls fit` that textcls defines, with its type, default and docstring, read from the same",
        "signatures `textcls fit --help` reads. In YAML, `--model.label_smoothing 0.1` is `model: {label_smoothing:",
        "0.1}`. The Lightning `Trainer`'s options (`--trainer.*`) are documented by",
        "[Lightning](https://lightning.ai/docs/pytorch/stable/common/trainer.html#trainer-flags).",
        "Regenerate it with `.venv/bin/python scripts/docs/config_reference.py`.",
        "",
        "## The command's own options",
        "",
        *table(option_rows(fit, "", links)),
    ]
    for key, cls in groups.items():
        if not cls.__module__.startswith("textcls"):
            continue
        path = f"{cls.__module__}.{cls.__qualname__}"
        out += [f"## `{cls.__name__}` (`--{key}.*`)", "", f"`{path}`: {first_doc_line(cls)}", ""]
        out += table(option_rows(fit, f"{key}.", links, cls))
        if cls.__name__ == "TextClassifier":
            for name in textcls.models.__all__:
                net = getattr(textcls.models, name)
                prefix = f"{key}.model.init_args."
                out += [
                    f"### Network `{name}` (`--model.model {name}`)",
                    "",
                    f"`{net.__module__}.{net.__qualname__}`: {first_doc_line(net)}",
                    "",
                    *table(option_rows(class_parser(net, prefix.rstrip(".")), prefix, links, net)),
                ]
    from textcls.cli import DEFAULT_CALLBACKS

    default_types = {type(c) for c in trainer_defaults.get("callbacks", [])} | {
        _import_class(c["class_path"]) for c in DEFAULT_CALLBACKS
    }
    out += [
        "## Callbacks",
        "",
        "The callbacks textcls defines. Those marked *default* make up the default `trainer.callbacks` list (a",
        "list in your config replaces it, `callbacks+:` adds to it; configs/callbacks/ has examples); the others are",
        "used by the groups above or can be listed under `trainer.callbacks` by class path, with their options under",
        "`init_args`.",
        "",
    ]
    for cls in textcls_callbacks():
        path = f"{cls.__module__}.{cls.__qualname__}"
        group = next((k for k, c in groups.items() if c is cls), None)
        default = " *default*" if cls in default_types else ""
        out += [f"### `{cls.__name__}`{default}", "", f"`{path}`: {first_doc_line(cls)}", ""]
        if group:
            out += [f"Its options are the `--{group}.*` group above.", ""]
            continue
        rows = option_rows(class_parser(cls, "init_args"), "init_args.", {}, cls, dashes="")
        out += table(rows) if rows else ["No options.", ""]
    return "\n".join(out).rstrip() + "\n"


def _import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed page differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python {Path(__file__).relative_to(ROOT)}", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
