"""What a command takes from its checkpoint: one merge of the checkpoint's settings under the user's own.

`fit --ckpt_path` continues a run with that run's model and data settings; `validate`, `test`, `predict` (and
`export`) read texts as training did. Precedence, lowest first: the parser's defaults, the experiment's own config
file (the first `--config`, when the run's folder runs/<experiment>/ carries its name), the checkpoint, every other
`--config` file, then the command-line flags. The checkpoint is checked (classes, consistency) before any of it
reaches the parser.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from textcls.checkpoint import DATA_STATE_KEY, load_checkpoint
from textcls.errors import UserError

SUBCOMMANDS = ("fit", "validate", "test", "predict")
# Lightning's own meanings of --ckpt_path, passed through untouched.
LIGHTNING_CKPT_NAMES = ("best", "hpc", "registry")
# The data settings that decide how a text becomes model input or a label is read: the ones evaluation and
# prediction take from the checkpoint (a fit takes them all).
INPUT_SETTINGS = (
    "text_column",
    "label_column",
    "multi_label",
    "label_separator",
    "empty_text",
    "max_length",
    "lowercase",
)


class CheckpointPlan:
    """The command line with the checkpoint's settings merged in, and the checkpoint itself (None without one)."""

    def __init__(self, argv: list[str], checkpoint: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.argv, self.checkpoint, self.path = argv, checkpoint, path


def plan(argv: list[str], announce: Any = print) -> CheckpointPlan:
    """Resolve `--ckpt_path` (given on the command line or in a config file; `last` included), check the checkpoint,
    and insert its settings at their place in the precedence order."""
    subcommand = next((a for a in argv if a in SUBCOMMANDS), None)
    if subcommand is None:
        return CheckpointPlan(argv)
    ckpt_path = user_value(argv, "ckpt_path")
    if ckpt_path is None or ckpt_path in LIGHTNING_CKPT_NAMES:
        return CheckpointPlan(argv)
    path = resolve_last(argv, announce) if ckpt_path == "last" else Path(str(ckpt_path))
    if not path.is_file():
        raise UserError(f"--ckpt_path '{path}' does not exist or is not a file; pass the path of a .ckpt file.")
    checkpoint = load_checkpoint(path, trusted=user_strings(argv))
    if subcommand == "fit":
        from textcls.checkpointing import require_training_state  # Lightning-level module: imported when resuming only

        require_training_state(checkpoint, path)  # a weights-only best.ckpt: resume from last.ckpt instead
    defaults = yaml.safe_dump(checkpoint_config(checkpoint, subcommand, path))
    position = _after_experiment_config(argv, argv.index(subcommand) + 1, _experiment_of(path))
    # The resolved path goes last, so it also replaces a `last` given in a config file.
    merged = [*argv[:position], "--config", defaults, *argv[position:], "--ckpt_path", str(path)]
    return CheckpointPlan(merged, checkpoint, path)


def checkpoint_config(checkpoint: dict[str, Any], subcommand: str, path: Path) -> dict[str, Any]:
    """The model and data settings a command takes from the checkpoint, as a config mapping."""
    from textcls.data import TextDataModule  # the DataModule's signature says which recorded keys are settings

    hparams = checkpoint.get("hyper_parameters") or {}
    model = {k: v for k, v in hparams.items() if not str(k).startswith("_")}
    state = checkpoint[DATA_STATE_KEY]
    known = set(inspect.signature(TextDataModule.__init__).parameters) - {"self"}
    settings = {k: v for k, v in (state.get("settings") or {}).items() if k in known and _plain(v)}
    data = settings if subcommand == "fit" else {k: settings[k] for k in INPUT_SETTINGS if k in settings}
    if isinstance(state.get("max_length"), int) and state["max_length"] > 0:
        data["max_length"] = state["max_length"]  # truncate as training did
    data["tokenizer_file"] = str(path)  # the run's own vocabulary and label names
    return {"model": model, "data": data}


def resolve_last(argv: list[str], announce: Any = print) -> Path:
    """`--ckpt_path last`: the newest complete last.ckpt of this experiment (runs/<first config's name>/*/) whose
    training data is the one this command names, if it names any; says which it took and why."""
    from textcls.resume import complete_last_checkpoints

    config = _config_files(argv)
    experiment = Path(config[0]).stem if config else "default"
    root = Path(str(user_value(argv, "runs_root") or "runs"))
    wanted = {key: user_value(argv, f"data.{key}") for key in ("train_file", "dataset")}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    skipped = 0
    for path in complete_last_checkpoints(root, experiment):
        settings = _recorded_settings(path)
        if all(_same_data(settings.get(key), value) for key, value in wanted.items()):
            why = f"trained on {', '.join(f'--data.{k} {v}' for k, v in wanted.items())}" if wanted else "any data"
            data = settings.get("train_file") or settings.get("dataset") or "?"
            announce(
                f"--ckpt_path last: continuing {path} (the newest complete run of experiment '{experiment}' "
                f"{'with ' + why if wanted else f'under {root / experiment}'}; its data: {data})"
            )
            return path
        skipped += 1
    named = " and ".join(f"--data.{k} {v}" for k, v in wanted.items())
    found = f"{skipped} run(s) there trained on other data" if skipped else "none there is complete"
    raise UserError(
        f"--ckpt_path last found no run of experiment '{experiment}' to continue"
        + (f" that was trained on {named}" if wanted else "")
        + f" ({root / experiment}/*/checkpoints/last.ckpt: {found}): start a new fit without --ckpt_path, or pass "
        "the path of a checkpoint."
    )


def user_value(argv: list[str], key: str) -> Any:
    """The value the user gave `key` (dotted, e.g. "data.train_file") on the command line or in a --config file;
    the later occurrence wins, as in the parser. None when not given."""
    value = None
    for kind, item in _user_sources(argv):
        if kind == "flag" and item[0] == key:
            value = item[1]
        elif kind == "file":
            node: Any = item
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                value = node
    return value


def user_strings(argv: list[str]) -> set[str]:
    """Every string the user typed or wrote in a config file: the classes they name are theirs to trust."""
    strings: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            strings.add(node)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for kind, item in _user_sources(argv):
        walk(item[1] if kind == "flag" else item)
    return strings


def _user_sources(argv: list[str]) -> Iterator[tuple[str, Any]]:
    """("flag", (key, value)) and ("file", mapping) in command-line order."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        elif arg.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            key, value = arg.lstrip("-"), argv[i + 1]
            i += 2
        else:
            i += 1
            continue
        if key in ("config", "c"):
            loaded = _read_yaml(value)
            if isinstance(loaded, dict):
                yield "file", loaded
        else:
            yield "flag", (key, value)


def _config_files(argv: list[str]) -> list[str]:
    files = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _after_experiment_config(argv: list[str], start: int, experiment: str | None) -> int:
    """Just after the subcommand's first --config when it is the experiment's own file (the one whose name the
    run's folder under runs/ carries), else `start`."""
    for i in range(start, len(argv)):
        if argv[i] in ("--config", "-c") and i + 1 < len(argv):
            return i + 2 if Path(argv[i + 1]).stem == experiment else start
        if argv[i].startswith("--config="):
            return i + 1 if Path(argv[i].split("=", 1)[1]).stem == experiment else start
    return start


def _experiment_of(path: Path) -> str | None:
    """runs/<experiment>/<run>/checkpoints/<file>.ckpt -> <experiment>."""
    parents = path.resolve().parents
    return parents[2].name if len(parents) > 2 and parents[0].name == "checkpoints" else None


def _read_yaml(path: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the parser reports a bad config file itself, naming it


def _recorded_settings(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(DATA_STATE_KEY) or {}
    except Exception:  # unreadable files were skipped already; a race with a writer just means no match
        return {}
    settings = state.get("settings") if isinstance(state, dict) else None
    return settings if isinstance(settings, dict) else {}


def _same_data(recorded: Any, wanted: Any) -> bool:
    if recorded is None:
        return False
    if str(recorded) == str(wanted):
        return True
    try:
        return Path(str(recorded)).resolve() == Path(str(wanted)).resolve()
    except OSError:
        return False


def _plain(value: Any) -> bool:
    """Plain config data only (a tampered checkpoint cannot slip a class path into the data settings)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    return isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value)
