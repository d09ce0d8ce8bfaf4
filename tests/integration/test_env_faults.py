"""Environment faults outside the cache (a file in the way, read-only, a full disk) and inconsistent checkpoints:
each is one `error:` line naming the path, exit 2, and nothing half-written (no temporary file, no partial output).

Full and read-only disks are small tmpfs mounts the test makes itself, so those tests need root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import labelled_rows, write_rows

from textcls.cli import main
from textcls.errors import UserError
from textcls.inference import load_classifier

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    """A small tmpfs at `path`, always unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def fill(disk: Path, leave: int) -> None:
    """Take all but `leave` bytes of the disk."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(free - leave, 0))


def one_error_line(capsys, run) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def checkpoint(trained):
    return trained("mlp", "--model.model.init_args.embedding_dim", "8")


@pytest.fixture(scope="module")
def exploding(checkpoint, tmp_path_factory):
    """Finite weights so large that the logits overflow: the consistency checks pass, the outputs are NaN."""
    state = torch.load(checkpoint, weights_only=True)
    for tensor in state["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(1e38)
    path = tmp_path_factory.mktemp("exploding") / "exploding.ckpt"
    torch.save(state, path)
    return path


def fit_args(tmp_path: Path, runs_root: Path, *extra: str) -> list[str]:
    train = write_rows(tmp_path / "train.csv", labelled_rows(60))
    return ["fit", "--config", str(Path(__file__).parents[2] / "configs/mlp.yaml"), "--data.train_file", str(train),
            "--data.cache_dir", str(tmp_path / "cache"), "--runs_root", str(runs_root), "--test_after_fit", "false",
            "--trainer.max_steps", "1", *QUIET, *extra]  # fmt: skip


def test_runs_root_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory\n")
    line = one_error_line(capsys, lambda: main(fit_args(tmp_path, blocker)))
    assert f"cannot create a run directory ({blocker}): a file, not a directory; pass --runs_root" in line
    assert not (tmp_path / "cache").exists()  # before any data was read


@needs_root
def test_read_only_runs_root(tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "64k", readonly=True) as disk:
        line = one_error_line(capsys, lambda: main(fit_args(tmp_path, disk / "runs")))
    assert f"({disk / 'runs'}): read-only file system" in line


@needs_root
@pytest.mark.slow
def test_full_disk_while_checkpointing(tmp_path, capsys):
    # The bigram table makes each checkpoint about 1 MB; the run directory's small files fit, the checkpoint does not.
    args = fit_args(tmp_path, tmp_path / "disk" / "runs", "--model.model.init_args.embedding_dim", "16",
                    "--model.model.init_args.ngram_buckets", "16000")  # fmt: skip
    with tmpfs(tmp_path / "disk", "256k") as disk:
        line = one_error_line(capsys, lambda: main(args))
        assert "cannot write the checkpoint (" in line and "best.ckpt): no space left on the device" in line
        assert temporary_files(disk) == [] and not list(disk.rglob("*.ckpt"))


@needs_root
def test_full_disk_while_writing_predictions(checkpoint, tmp_path, capsys):
    texts = write_rows(tmp_path / "predict.csv", [{"text": r["text"]} for r in labelled_rows(3000)])
    with tmpfs(tmp_path / "disk", "64k") as disk:
        args = ["predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(texts), *QUIET,
                "--data.cache_dir", str(tmp_path / "cache"), "--runs_root", str(disk / "runs")]  # fmt: skip
        line = one_error_line(capsys, lambda: main(args))
        assert "cannot write the predictions (" in line and "no space left on the device" in line
        assert temporary_files(disk) == [] and not list(disk.rglob("predictions.csv"))


@needs_root
@pytest.mark.slow
def test_full_disk_while_exporting(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    with tmpfs(tmp_path / "disk", "64k") as disk:
        fill(disk, 8 << 10)
        args = ["export", "--ckpt_path", str(checkpoint), "--output", str(disk / "export")]
        line = one_error_line(capsys, lambda: main(args))
        assert "cannot write the export (" in line and "no space left on the device" in line
        assert not (disk / "export").exists()


def test_export_directory_holding_a_directory_named_model_onnx(checkpoint, tmp_path, capsys):
    (tmp_path / "export" / "model.onnx").mkdir(parents=True)
    line = one_error_line(
        capsys, lambda: main(["export", "--ckpt_path", str(checkpoint), "--output", str(tmp_path / "export")])
    )
    assert f"a directory named model.onnx is in the way ({tmp_path / 'export' / 'model.onnx'})" in line
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["model.onnx"]


@pytest.mark.slow
def test_export_refuses_more_labels_than_logits(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    state = torch.load(checkpoint, weights_only=True)
    state["TextDataModule"]["label_names"] = ["neg", "pos", "other"]
    state["hyper_parameters"]["label_names"] = ["neg", "pos", "other"]
    del state["hyper_parameters"]["model"]["init_args"]["num_classes"]  # the network's default: 2 outputs
    torch.save(state, tmp_path / "three.ckpt")
    args = ["export", "--ckpt_path", str(tmp_path / "three.ckpt"), "--output", str(tmp_path / "export")]
    line = one_error_line(capsys, lambda: main(args))
    assert "the exported network gives 2 logits but the checkpoint names 3 labels (neg, pos, other)" in line
    assert not (tmp_path / "export").exists()


def test_predict_refuses_non_finite_outputs(exploding, tmp_path, capsys):
    texts = write_rows(tmp_path / "predict.csv", [{"text": r["text"]} for r in labelled_rows(10)])
    args = ["predict", "--ckpt_path", str(exploding), "--data.predict_file", str(texts), *QUIET,
            "--data.cache_dir", str(tmp_path / "cache"), "--runs_root", str(tmp_path / "runs")]  # fmt: skip
    line = one_error_line(capsys, lambda: main(args))
    assert f"probabilities are not finite (NaN or inf) for rows [0, 1, 2, 3, 4] ({exploding})" in line
    assert not list((tmp_path / "runs").rglob("predictions.csv")) and temporary_files(tmp_path / "runs") == []

    with pytest.raises(UserError, match=r"outputs are not finite \(NaN or inf\) for texts \[0, 1\] \(checkpoint"):
        load_classifier(exploding).predict(["great film", "dull"])
