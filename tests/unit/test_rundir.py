from jsonargparse import Namespace

from textcls.cli import _run_dir
from textcls.rundir import RUN_DIR_ENV


def _config(tmp_path):
    return Namespace(runs_root=str(tmp_path / "runs"), config=None, ckpt_path=None)


def test_rank_zero_makes_a_new_directory_even_with_a_stale_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "stale"))
    for name in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    first, second = _run_dir(_config(tmp_path), "fit"), _run_dir(_config(tmp_path), "fit")
    assert first.is_dir() and second.is_dir() and first != second


def test_other_node_creates_nothing_even_with_a_stale_variable(tmp_path, monkeypatch):
    # Left behind by an earlier run in the same process: a process on node 1 must not trust it and make a directory.
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "stale"))
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    _run_dir(_config(tmp_path), "fit")
    assert not any((tmp_path / "runs").rglob("*"))


def test_child_of_rank_zero_reuses_its_directory(tmp_path, monkeypatch):
    parent = tmp_path / "runs" / "default" / "parent"
    monkeypatch.setenv(RUN_DIR_ENV, str(parent))
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.delenv("NODE_RANK", raising=False)
    assert _run_dir(_config(tmp_path), "fit") == parent
