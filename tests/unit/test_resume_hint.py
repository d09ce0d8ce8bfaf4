"""The resume command printed after Ctrl-C / SIGTERM runs as printed in a fresh shell: the program the user ran, by
absolute path (or `python -m textcls`), every argument shell-quoted, from the directory the run started in."""

from __future__ import annotations

import shlex
import sys
import types
from pathlib import Path

from textcls.resume import _resume_command, resume_hint

CKPT = Path("runs/mlp/20260101-000000/checkpoints/last.ckpt")


def test_the_console_script_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["bin/textcls", "fit", "--config", "my configs/mlp.yaml", "--ckpt_path", "last", "--trainer.max_epochs", "3"]
    assert _resume_command(argv, CKPT) == [
        str(tmp_path / "bin/textcls"), "fit", "--config", "my configs/mlp.yaml", "--trainer.max_epochs", "3",
        "--ckpt_path", str(CKPT),
    ]  # fmt: skip
    assert _resume_command(["/opt/env/bin/textcls", "fit", "--ckpt_path=old.ckpt"], CKPT) == [
        "/opt/env/bin/textcls", "fit", "--ckpt_path", str(CKPT),
    ]  # fmt: skip


def test_python_dash_m_textcls_is_resumed_the_same_way(monkeypatch):
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="textcls.__main__")  # what `python -m textcls` sets
    monkeypatch.setitem(sys.modules, "__main__", main)
    argv = [str(Path("src/textcls/__main__.py").resolve()), "fit", "--config", "configs/mlp.yaml"]
    assert _resume_command(argv, CKPT) == [sys.executable, "-m", "textcls", "fit", "--config", "configs/mlp.yaml",
                                           "--ckpt_path", str(CKPT)]  # fmt: skip


def test_the_hint_is_one_quoted_shell_line_that_starts_where_the_run_did(tmp_path, monkeypatch):
    workdir = tmp_path / "my project"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    argv = ["/opt/env/bin/textcls", "fit", "--data.train_file", "it's here.csv"]
    hint = resume_hint(argv, CKPT)
    assert hint.startswith(f"cd {shlex.quote(str(workdir))} && ")
    assert shlex.split(hint) == ["cd", str(workdir), "&&", *_resume_command(argv, CKPT)]
