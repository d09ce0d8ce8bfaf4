"""Every shell command in README.md and docs/**/*.md runs as written, or parses with the real parser.

Commands are taken from the fenced ```bash / ```sh / ```shell / ```console blocks, in page order (README first), and
run in one temporary working directory (with configs/ linked in), so a page's `fit` makes the checkpoint its `test`
and `predict` use; a command that appears on several pages runs once. `textcls` commands run in-process with tiny
data written at the paths they name and overrides appended that make a fit a few steps. What cannot run here (GPU,
several processes or nodes, W&B's service, a server, an install, hours of benchmark) is parsed by the real parser
instead: TextclsCLI's parser, the function signature for `export`/`serve`, `make -n`, or the
script's own argparse parser with the command's arguments. The tables below say which and why; a command that
drifts from the code fails either way.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import gzip
import json
import re
import runpy
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}

# Appended to every `fit` that runs: a few steps of a tiny network on a few rows.
FIT_OVERRIDES = [
    "--trainer.max_epochs", "1", "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1",
    "--trainer.limit_test_batches", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--model.model.init_args.embedding_dim", "8",
    "--data.max_train_samples", "96", "--data.max_eval_samples", "32", "--trainer.num_sanity_val_steps", "0",
    "--test_after_fit", "false",
]  # fmt: skip
EVAL_OVERRIDES = ["--trainer.limit_test_batches", "1", "--trainer.limit_val_batches", "1"]
EVAL_OVERRIDES += ["--trainer.enable_progress_bar", "false"]
VECTOR_DIM = 8  # = the embedding_dim override, so a documented vector file fits the tiny network

# textcls commands that are only parsed (by the CLI's own parser), by what they contain, and why.
PARSE_ONLY_TEXTCLS = {
    "configs/trainer/gpu.yaml": "needs a GPU",
    "configs/trainer/ddp.yaml": "needs GPUs",
    "configs/trainer/fsdp.yaml": "needs GPUs",
    "configs/trainer/deepspeed.yaml": "needs CUDA and DeepSpeed",
    "configs/trainer/multinode.yaml": "needs several nodes (tests/integration/test_ddp.py runs 2 on loopback)",
    "configs/trainer/ddp_cpu.yaml": "relaunches itself in 2 processes (tests/integration/test_ddp.py runs it)",
    "--trainer.strategy ddp": "relaunches itself in several processes (tests/integration/test_ddp.py)",
    "--trainer.accelerator gpu": "needs a GPU",
    "configs/logger/wandb.yaml": "starts W&B's service process (tests/integration/test_wandb.py runs it offline)",
    "--model.compile true": "torch.compile takes minutes to compile on this CPU",
    "configs/data/": "downloads a Hugging Face hub dataset",
    "--data.dataset": "loads a Hugging Face hub dataset",
    "serve": "starts a server that runs until stopped (the serving tests start it on 127.0.0.1)",
}
# Other programs: each is checked by its own function below; the reason is why it does not simply run.
OTHER_PROGRAMS = {
    "make": "`make -n TARGET` (a dry run; `make train` then runs its textcls command in-process)",
    "pip": "installs packages: the extras it names must exist in pyproject.toml, torch at its pinned version",
    "source": "changes the shell: the virtual environment it names must be the one the Makefile creates",
    "wandb": "needs a W&B account: the wandb CLI must have the subcommand",
    "sbatch": "needs SLURM: the script must exist, pass `bash -n`, and its textcls command must parse",
    "torchrun": "needs several nodes: the textcls command it starts must parse",
    "curl": "needs a running server (the serving tests send these requests to a real one)",
    "git": "needs the network",
    "cd": "a shell builtin (the test runs in its own directory)",
    "export": "a shell builtin that sets a variable for later commands",
}
SCRIPT_DIRS = ("benchmarks/", "studies/", "scripts/")  # scripts run for minutes to hours: their parser only


@dataclass
class Command:
    page: str
    line: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdout_to: str | None = None
    needed: bool = False  # a later command on its page uses the run it makes: it must run, never only parse

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {shlex.join(self.argv)}"


def shell_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of every fenced shell block."""
    blocks, current, start, language = [], None, 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*```\s*([\w-]*)", line)
        if current is None and fence:
            language, current, start = fence.group(1).lower(), [], number + 1
        elif current is not None and re.match(r"\s*```\s*$", line):
            if language in SHELL_LANGUAGES:
                blocks.append((start, language, current))
            current = None
        elif current is not None:
            current.append(line.strip())
    return blocks


def page_files(path: Path) -> dict[str, str]:
    """Files a page shows in full: a ```python block whose first line is `# NAME.py` (the page's worked example)."""
    files = {}
    for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
        name = re.match(r"# ([\w/]+\.py)\n", block)
        if name:
            files[name.group(1)] = block
    return files


def page_commands(path: Path) -> list[Command]:
    page = str(path.relative_to(ROOT))
    commands = []
    for start, language, lines in shell_blocks(path.read_text(encoding="utf-8")):
        logical: list[tuple[int, str]] = []
        pending: tuple[int, str] | None = None
        for offset, line in enumerate(lines):
            if pending is None:
                if language == "console" and not line.startswith("$ "):
                    continue  # console output
                line = line.removeprefix("$ ")
                pending = (start + offset, "")
            pending = (pending[0], pending[1] + " " + line.removesuffix("\\"))
            if not line.endswith("\\"):
                logical.append(pending)
                pending = None
        for number, line in logical:
            words = shlex.split(line, comments=True)
            while words:
                cut = next((i for i, w in enumerate(words) if w in ("&&", ";")), len(words))
                commands.append(to_command(page, number, words[:cut]))
                words = words[cut + 1 :]
    commands = [c for c in commands if c.argv]
    mark_needed(commands)
    return commands


def experiment_of_fit(argv: list[str]) -> str | None:
    """runs/<experiment>/ of a `textcls fit` (the first config's name), or None for another command."""
    words = [w.removeprefix(".venv/bin/") for w in argv]
    if words[:2] != ["textcls", "fit"] and words[:4] != ["python", "-m", "textcls", "fit"]:
        return None
    config = option_value(argv, "--config")
    return Path(config).stem if config else "default"


def mark_needed(commands: list[Command]) -> None:
    for j, later in enumerate(commands):
        used = {m for w in later.argv for m in re.findall(r"runs/([^/]+)/<run>", w)}
        if option_value(later.argv, "--ckpt_path") == "last" and option_value(later.argv, "--config"):
            used.add(Path(option_value(later.argv, "--config") or "").stem)
        for experiment in used:
            fit = next((c for c in reversed(commands[:j]) if experiment_of_fit(c.argv) == experiment), None)
            if fit is not None:
                fit.needed = True


def to_command(page: str, line: int, words: list[str]) -> Command:
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    stdout_to = None
    if ">" in words:
        at = words.index(">")
        stdout_to, words = words[at + 1], words[:at]
    return Command(page, line, words, env, stdout_to)


# ---------------------------------------------------------------- tiny data at the paths a command names


def column_names() -> tuple[set[str], set[str]]:
    """Every text and label column any page names, so one generated table fits every command."""
    texts, labels = {"text"}, {"label"}
    for page in PAGES:
        for command in page_commands(page):
            for option, names in (("--data.text_column", texts), ("--data.label_column", labels)):
                value = option_value(command.argv, option)
                if value:
                    names.update(w.strip() for w in value.strip("[]").split(","))
    return texts, labels


LABELS = ("negative", "neutral", "positive")
WORDS = {"negative": ["awful", "dull", "poor"], "neutral": ["fine", "okay", "average"], "positive": ["great", "superb"]}


def rows(n: int, texts: set[str], labels: set[str]) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        label = LABELS[i % 3]
        row = {"id": f"r{i:03d}"}
        row.update({c: f"the film was {WORDS[label][i % len(WORDS[label])]} number{i % 5}" for c in sorted(texts)})
        row.update(dict.fromkeys(sorted(labels), label))
        out.append(row)
    return out


def write_data(path: Path, option: str, fmt: str | None, columns: tuple[set[str], set[str]]) -> None:
    """A small file of the kind `option` takes, in the format its name (or --data.format) says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = rows(60, *columns)
    name = path.name.removesuffix(".gz")
    suffix = Path(name).suffix
    if option == "--model.pretrained_embeddings":
        words = sorted({w for r in table for w in r["text"].split()})
        body = "".join(f"{w} " + " ".join(f"{(i * 7 + j) % 10 / 10:.1f}" for j in range(VECTOR_DIM)) + "\n"
                       for i, w in enumerate(words))  # fmt: skip
        text = (f"{len(words)} {VECTOR_DIM}\n" if suffix == ".vec" else "") + body
    elif suffix == ".txt" and (option == "--data.predict_file" or fmt == "lines"):
        text = "".join(r["text"] + "\n" for r in table)
    elif suffix in (".txt", ".dat") and fmt != "fasttext":
        text = "".join(f"{r['label']} {r['text']}\n" for r in table)
    elif suffix in (".ft", ".fasttext", ".txt"):
        text = "".join(f"__label__{r['label']} {r['text']}\n" for r in table)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        # a `labels` column is a multi-label one, as the pages that name it mean: lists of names
        text = "".join(json.dumps({k: [v] if k == "labels" else v for k, v in r.items()}) + "\n" for r in table)
    elif suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(table), path)
        return
    elif suffix in (".csv", ".tsv"):
        with contextlib.closing(_Buffer()) as buffer:
            writer = csv.DictWriter(buffer, fieldnames=list(table[0]), delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(table)
            text = buffer.getvalue()
    else:
        raise AssertionError(f"no tiny data for {path} ({option}): add its format to write_data")
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def getvalue(self) -> str:
        return "".join(self.parts)

    def close(self) -> None:
        pass


DATA_OPTIONS = ("--data.train_file", "--data.val_file", "--data.test_file", "--data.predict_file")


def option_value(argv: list[str], option: str) -> str | None:
    for i, word in enumerate(argv):
        if word == option and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(option + "="):
            return word.split("=", 1)[1]
    return None


def prepare(argv: list[str], cwd: Path, columns: tuple[set[str], set[str]]) -> list[str]:
    """Resolve `<run>` to the newest matching run of this page, and write the data files a command names."""
    out = []
    for word in argv:
        if "<run>" in word:
            matches = sorted(cwd.glob(word.replace("<run>", "*")), key=lambda p: p.stat().st_mtime)
            assert matches, f"{word}: no earlier command on this page made such a run"
            word = str(matches[-1].relative_to(cwd))
        out.append(word)
    fmt = option_value(out, "--data.format")
    for option in (*DATA_OPTIONS, "--model.pretrained_embeddings"):
        value = option_value(out, option)
        if value and not (cwd / value).exists():
            assert not value.startswith(("~", "/", "$")), f"{option} {value}: use a path inside the project"
            write_data(cwd / value, option, fmt, columns)
    return out


# ---------------------------------------------------------------- running and parsing


def textcls_main(args: list[str]) -> None:
    """The console script's entry point, in-process; fails unless it returns or exits 0."""
    try:
        from textcls.entry import main  # the entry point, where it exists
    except ImportError:
        from textcls.cli import main
    try:
        main(args)
    except SystemExit as done:
        assert done.code in (0, None), f"exit status {done.code}"


def parse_only_reason(args: list[str]) -> str | None:
    line = " ".join(args)
    if args[:1] == ["serve"]:
        return PARSE_ONLY_TEXTCLS["serve"]
    return next((why for key, why in PARSE_ONLY_TEXTCLS.items() if key != "serve" and key in line), None)


def parse_function_command(args: list[str]) -> None:
    """`export` and `serve` parse their options from one function's signature (jsonargparse's auto_cli)."""
    from jsonargparse import ArgumentParser

    if args[0] == "export":
        from textcls.export import export as function
    else:
        from textcls.serve.main import serve as function
    parser = ArgumentParser(exit_on_error=False, prog=f"textcls {args[0]}")
    parser.add_function_arguments(function, as_positional=False)
    parser.parse_args(args[1:])


def run_textcls(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    args = prepare(args, cwd, columns)
    reason = parse_only_reason(args)
    subcommand = next((a for a in args if not a.startswith("-")), None)
    if (reason is None and subcommand in (None, "--help")) or "--help" in args or "--print_config" in args:
        textcls_main(args)
        return "ran"
    if subcommand in ("export", "serve") and reason is not None:
        parse_function_command(args)
        return f"parsed: {reason}"
    if reason is not None:
        parse_with_cli(args)
        return f"parsed: {reason}"
    if subcommand == "fit" and fit_shape(args) in TRAINED and not command.needed:
        parse_with_cli(args)
        return "parsed: a fit of this shape already ran (see fit_shape)"
    overrides = FIT_OVERRIDES if subcommand == "fit" else [] if subcommand == "export" else EVAL_OVERRIDES
    textcls_main([*args, *overrides])
    if subcommand == "fit":
        TRAINED.add(fit_shape(args))
    return "ran"


# Shapes of the fits that ran in this test. A fit whose shape already ran differs only in option values (of the data,
# network, optimizer, schedule or trainer), which the real parser checks against the signatures; training it again
# would cost seconds each for nothing new. New configs, file formats, class paths, `null`s, a checkpoint or vectors
# run for real, and so does every fit whose run a later command on its page uses.
TRAINED: set[tuple[Any, ...]] = set()


def fit_shape(args: list[str]) -> tuple[Any, ...]:
    files = tuple(sorted(Path(v).suffix for o in DATA_OPTIONS if (v := option_value(args, o))))
    configs = tuple(args[i + 1] for i, a in enumerate(args) if a == "--config")
    classes = tuple(sorted(w for w in args if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", w)))
    nulls = tuple(sorted(args[i - 1] for i, a in enumerate(args) if a == "null"))
    inputs = tuple(o for o in ("--ckpt_path", "--model.pretrained_embeddings") if option_value(args, o))
    return configs, files, classes, nulls, inputs


class _ParserBuilt(Exception):
    pass


@functools.cache
def cli_parser() -> Any:
    """The parser `textcls` builds (TextclsCLI's own, all subcommands), built once: it costs a second or two."""
    from textcls.cli import TextclsCLI

    class ParserOnly(TextclsCLI):
        def parse_arguments(self, parser: Any, args: Any) -> None:
            raise _ParserBuilt(parser)

    try:
        ParserOnly(args=["fit"])
    except _ParserBuilt as built:
        return built.args[0]
    raise AssertionError("TextclsCLI did not build its parser")


def parse_with_cli(args: list[str]) -> None:
    """Parse with the real parser: every option name, type and config file is checked; nothing is instantiated."""
    cli_parser().parse_args(args)


def check_make(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    if args[:1] == ["train"]:
        lines = [line for line in dry.stdout.splitlines() if line.startswith(".venv/bin/textcls ")]
        assert len(lines) == 1, dry.stdout
        return run_textcls(shlex.split(lines[0])[1:], command, cwd, columns)
    return "dry run (make -n)"


def check_pip(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert args[:1] == ["install"], command
    pins = [d.replace(" ", "") for d in project["dependencies"]]
    for word in args[1:]:
        extras = re.fullmatch(r"\.?\[(.+)\]", word)
        if extras:
            missing = set(extras.group(1).split(",")) - set(project["optional-dependencies"])
            assert not missing, f"extras {missing} are not in pyproject.toml"
        elif word.startswith("torch"):
            assert word in pins, f"{word}: not the torch that pyproject.toml pins"
    return "checked against pyproject.toml"


def check_source(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    assert args == [".venv/bin/activate"], command
    assert "-m venv .venv" in (ROOT / "Makefile").read_text(), "the Makefile no longer creates .venv"
    return "checked against the Makefile"


def check_wandb(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    from wandb.cli.cli import cli

    assert args[0] in cli.commands, f"wandb has no subcommand {args[0]}"
    return "subcommand exists"


def check_sbatch(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    positional = [a for a in args if not a.startswith("-") and not a.isdigit()]
    script, rest = ROOT / positional[0], args[args.index(positional[0]) + 1 :]
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    config = rest[0] if rest else "configs/textcnn.yaml"
    parse_with_cli(["fit", "--config", config, "--config", "configs/trainer/multinode.yaml", *rest[1:]])
    return "parsed: needs SLURM"


def check_torchrun(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    at = args.index("-m")
    assert args[at + 1] == "textcls", command
    parse_with_cli(args[at + 2 :])
    return "parsed: needs several nodes"


def check_curl(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    urls = [a for a in args if re.match(r"(https?://)?[\w.]+:\d+/", a)]
    assert urls, f"{command}: no URL"
    for url in urls:
        assert re.match(r"(http://)?(127\.0\.0\.1|localhost):\d+/", url), f"{url}: the server listens on 127.0.0.1"
    return "needs a running server"


def skip_program(args: list[str], command: Command, cwd: Path, columns: Any) -> str:
    return "not run: " + OTHER_PROGRAMS[command.argv[0]]


class _Parsed(Exception):
    pass


def parse_script(script: str, args: list[str]) -> str:
    """Run a script up to its argparse parse of `args` (the real parser), then stop it."""
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    state = threading.local()
    real_parse_args, real_parse_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def parse_args(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        state.inside = True
        try:
            result = real_parse_args(self, *a, **k)
        finally:
            state.inside = False
        raise _Parsed(result)

    def parse_known_args(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        result = real_parse_known(self, *a, **k)
        if getattr(state, "inside", False):
            return result
        raise _Parsed(result)

    argv, sys.argv = sys.argv, [str(path), *args]
    sys.path.insert(0, str(path.parent))  # as `python script.py` does: a script may import its neighbours
    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[method-assign]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _Parsed:
        return "parsed: a script of minutes to hours"
    finally:
        sys.argv = argv
        sys.path.remove(str(path.parent))
        argparse.ArgumentParser.parse_args = real_parse_args  # type: ignore[method-assign]
        argparse.ArgumentParser.parse_known_args = real_parse_known  # type: ignore[method-assign]
    raise AssertionError(f"{script} never parsed its arguments")


CHECKS = {"make": check_make, "pip": check_pip, "source": check_source, "wandb": check_wandb}
CHECKS |= {"sbatch": check_sbatch, "torchrun": check_torchrun, "curl": check_curl}
CHECKS |= {"git": skip_program, "cd": skip_program, "export": skip_program}
assert set(CHECKS) == set(OTHER_PROGRAMS)


def dispatch(command: Command, cwd: Path, columns: Any) -> str:
    program, args = command.argv[0].removeprefix(".venv/bin/"), command.argv[1:]
    if program in ("python", "python3"):
        if args[:2] == ["-m", "textcls"]:
            program, args = "textcls", args[2:]
        else:
            assert args and args[0].endswith(".py") and args[0].startswith(SCRIPT_DIRS), command
            return parse_script(args[0], args[1:])
    if program == "textcls":
        return run_textcls(args, command, cwd, columns)
    assert program in CHECKS, f"{command}: unknown program; add it to OTHER_PROGRAMS with how to check it"
    return CHECKS[program](args, command, cwd, columns)


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 35 short fits in-process: well under this on an idle machine, not on a loaded one
def test_every_shell_command_runs_or_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """All pages in one working directory, README first: a command that appears twice runs once."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    for page in PAGES:
        for name, text in page_files(page).items():
            (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # the pages' own modules import as they would from the user's folder
    columns = column_names()
    TRAINED.clear()
    done: dict[tuple[str, ...], Command] = {}
    for command in (c for page in PAGES for c in page_commands(page)):
        key = (*command.argv, *sorted(command.env.items()), command.stdout_to or "")
        if key in done and not command.needed:
            print(f"{command}: as {done[key].page}:{done[key].line}", file=sys.__stderr__)
            continue
        try:
            with monkeypatch.context() as env:  # `VAR=value cmd` sets VAR for that command only
                for name, value in command.env.items():
                    env.setenv(name, value)
                outcome = dispatch(command, tmp_path, columns)
        except (Exception, SystemExit) as err:
            out = capsys.readouterr()
            pytest.fail(f"{command}\n  failed: {err!r}\n{out.out[-2000:]}\n{out.err[-2000:]}")
        out = capsys.readouterr()
        if command.stdout_to:
            (tmp_path / command.stdout_to).write_text(out.out, encoding="utf-8")
        done[key] = command
        print(f"{command}: {outcome}", file=sys.__stderr__)


def test_commands_are_found_in_the_readme() -> None:
    """The extraction itself: the README's walkthrough is there, line continuations joined, comments dropped."""
    commands = [c.argv for c in page_commands(ROOT / "README.md")]
    assert ["make", "train"] in commands
    fits = [a for a in commands if a[:2] == ["textcls", "fit"] and "--data.train_file" in a]
    assert fits, "the README has no fit on the user's own data"
    assert all("#" not in word and "\\" not in word for argv in commands for word in argv)


def test_every_program_is_known() -> None:
    for page in PAGES:
        for command in page_commands(page):
            program = command.argv[0].removeprefix(".venv/bin/")
            known = program in ("textcls", "python", "python3") or program in OTHER_PROGRAMS
            assert known, f"{command}: add {program} to OTHER_PROGRAMS with how to check it"


def test_a_drifted_command_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: an option the code does not have is caught by each kind of check."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    columns = column_names()
    drifted = [
        ["textcls", "fit", "--config", "configs/textcnn.yaml", "--config", "configs/trainer/gpu.yaml", "--no_such"],
        ["textcls", "export", "--no_such", "1"],
        ["python", "benchmarks/optimizer_step.py", "--no-such-option"],
        ["make", "no-such-target"],
        ["pip", "install", "-e", ".[no_such_extra]"],
    ]
    for argv in drifted:
        with pytest.raises((Exception, SystemExit)):
            dispatch(Command("drift", 0, argv), tmp_path, columns)
