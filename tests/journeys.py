"""What the journey matrix and the preset tests share: a user's own CSV files (non-default column names, string labels,
an id column), the experiment configs with the arguments that keep them tiny, and a callback that kills a run once."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("billing", "tech", "other")
# the one place the columns are named: at fit time; every later step must take them from the checkpoint
COLUMNS = ["--data.text_column", "subject_line", "--data.label_column", "category"]
VECTOR_DIM = 8
PRECISIONS = ["32-true", "bf16-mixed", "16-mixed"]
# every single-process CPU preset, stacked on every fit cell (the precision preset after them: cpu.yaml sets 32-true)
CPU_PRESETS = ["cpu.yaml", "early_stopping.yaml"]

# A word per label decides it; the rest is shared noise, so a few steps already move the accuracy.
_WORDS = {
    "billing": ["invoice", "refund", "charge", "payment"],
    "tech": ["crash", "login", "error", "password"],
    "other": ["hello", "thanks", "question", "feedback"],
}


def ticket_rows(n: int, prefix: str = "", with_label: bool = True) -> list[dict[str, str]]:
    """`n` support tickets: ticket_id, subject_line and (unless `with_label` is false) category."""
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        word = _WORDS[label][(i // 3) % 4]
        row = {"ticket_id": f"{prefix}T{i:04d}", "subject_line": f"{prefix}my {word} issue number{i % 5} today"}
        if with_label:
            row["category"] = label
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def ticket_paths(root: Path) -> dict[str, Path]:
    names = ("train", "val", "test", "predict", "vectors")
    files = ("tickets_train.csv", "tickets_val.csv", "tickets_test.csv", "tickets_new.csv", "vectors.vec")
    return {name: root / file for name, file in zip(names, files, strict=True)}


def write_ticket_files(root: Path) -> dict[str, Path]:
    """Separate train / val / test / predict files; the predict file has no category column, as a user's would."""
    paths = ticket_paths(root)
    write_csv(paths["train"], ticket_rows(96))
    write_csv(paths["val"], ticket_rows(30, prefix="v"))
    write_csv(paths["test"], ticket_rows(27, prefix="t"))
    write_csv(paths["predict"], ticket_rows(20, prefix="p", with_label=False))
    write_vectors(paths["vectors"])
    return paths


def write_vectors(path: Path) -> Path:
    """A tiny word-vector file (.vec text) for the CNN-static recipe, covering some of the tickets' words."""
    words = ["my", "issue", "today", *(w for ws in _WORDS.values() for w in ws[:2])]
    lines = [f"{len(words)} {VECTOR_DIM}"]
    for i, word in enumerate(words):
        lines.append(word + " " + " ".join(f"{((i * 7 + j) % 11 - 5) / 10:.2f}" for j in range(VECTOR_DIM)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# name -> config files (the experiment first: it names the run group) and the arguments that make the model tiny
_TEXTCNN_TINY = ["--model.model.init_args.embedding_dim", str(VECTOR_DIM), "--model.model.init_args.num_filters", "4"]
_MLP_TINY = ["--model.model.init_args.embedding_dim", str(VECTOR_DIM)]
_BUCKETS = ["--model.model.init_args.ngram_buckets", "1000"]


def _benchmark(name: str) -> list[str]:
    return [f"configs/{'textcnn' if name.startswith('textcnn') else 'mlp'}.yaml", f"configs/benchmarks/{name}.yaml"]


MODELS: dict[str, tuple[list[str], list[str]]] = {
    "textcnn": (["configs/textcnn.yaml"], _TEXTCNN_TINY),
    "mlp": (["configs/mlp.yaml"], [*_MLP_TINY, "--model.model.init_args.hidden_dims", "[8]"]),
    **{
        name: (_benchmark(name), (_TEXTCNN_TINY if name.startswith("textcnn") else [*_MLP_TINY, *_BUCKETS]))
        for name in sorted(p.stem for p in (ROOT / "configs/benchmarks").glob("*.yaml"))
    },
}


def model_args(name: str, files: dict[str, Path]) -> list[str]:
    """`--config` files of the model `name`, then its size-shrinking arguments (and the vectors CNN-static needs)."""
    configs, tiny = MODELS[name]
    args = [arg for config in configs for arg in ("--config", str(ROOT / config))]
    if name == "textcnn_static":
        args += ["--model.pretrained_embeddings", str(files["vectors"])]
    return [*args, *tiny]


def preset(name: str) -> list[str]:
    return ["--config", str(ROOT / "configs/trainer" / name)]


# A few real optimizer steps and two validation batches; fast and quiet.
FEW_STEPS = [
    "--trainer.max_steps", "3",
    "--trainer.limit_train_batches", "3",
    "--trainer.limit_val_batches", "2",
    "--data.batch_size", "16",
    "--data.max_length", "16",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--test_after_fit", "false",
]  # fmt: skip


def fit_data(files: dict[str, Path]) -> list[str]:
    """The data flags a user gives once, at fit time."""
    return ["--data.train_file", str(files["train"]), "--data.val_file", str(files["val"]), *COLUMNS]


class KillOnce(Callback):
    """SIGKILL this process after optimizer step `step`, once per rank: a later run that carries this callback in its
    remembered config (a resume) finds the marker file and keeps going.

    Args:
        step: global step after which each rank kills itself.
        marker: path prefix of the per-rank marker files.
    """

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        marker = Path(f"{self.marker}.rank{trainer.global_rank}")
        if trainer.global_step == self.step and not marker.exists():
            marker.write_text("killed\n")
            os.kill(os.getpid(), signal.SIGKILL)


def run_textcls(args: list[str], cwd: Path, timeout: float, log: Path) -> tuple[int, str]:
    """`python -m textcls ARGS` in its own session (DDP's child rank included), killed with its group after
    `timeout` or once it ends; the exit status and the combined output (also kept in `log`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1"}
    return _run([sys.executable, "-m", "textcls", *args], cwd, env, timeout, log)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> tuple[int, str]:
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert status is not None, f"{' '.join(command[2:4])} did not finish in {timeout} s:\n{output[-4000:]}"
    return status, output


MARK = "=== journeys command "


def run_commands(spec: Path) -> None:
    """Run each `textcls` command listed in `spec` (JSON: a list of argument lists) in this process, in turn.

    After each, every rank appends its world size and global step to `<spec>.rank<r>.jsonl`. Under ddp_cpu, Lightning's
    launcher re-runs this same command line for rank 1 at the first Trainer, and the later Trainers of both processes
    reuse that process group: one launch runs every command on two processes.
    """
    from textcls.cli import TextclsCLI

    for i, args in enumerate(json.loads(spec.read_text())):
        if int(os.environ.get("LOCAL_RANK") or 0) == 0:
            print(f"{MARK}{i}: {' '.join(args[:1])}", flush=True)
        trainer = TextclsCLI(args=args).trainer
        record = {"command": i, "world_size": trainer.world_size, "global_step": trainer.global_step}
        with Path(f"{spec}.rank{trainer.global_rank}.jsonl").open("a") as out:
            out.write(json.dumps(record) + "\n")


def one_launch(commands: list[list[str]], workdir: Path, timeout: float) -> tuple[list[str], list[list[dict]]]:
    """`commands` run by one `python -m journeys` process (two under ddp_cpu); each command's output, and each
    command's records (one per rank)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "commands.json"
    spec.write_text(json.dumps(commands))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1"}
    status, output = _run([sys.executable, "-m", "journeys", str(spec)], workdir, env, timeout, workdir / "launch.log")
    assert status == 0, output[-6000:]
    sections = output.split(MARK)[1:]
    records: list[list[dict]] = [[] for _ in commands]
    for part in sorted(workdir.glob("commands.json.rank*.jsonl")):
        for line in part.read_text().splitlines():
            record = json.loads(line)
            records[record["command"]].append(record)
    return sections, records


if __name__ == "__main__":
    run_commands(Path(sys.argv[1]))
