import pytest
from jsonargparse import Namespace
from pytorch_lightning.utilities import rank_zero_only

from textcls import rundir
from textcls.rundir import discard_empty_run_dir, run_dir


def _config(tmp_path):
    return Namespace(runs_root=str(tmp_path / "runs"), config=None, ckpt_path=None)


@pytest.fixture
def launch(monkeypatch):
    """Set this process's launch rank as a launcher would: the rank Lightning read at import, and NODE_RANK."""

    def set_rank(rank: int = 0, node: int | None = None) -> None:
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        for name in ("NODE_RANK", "GROUP_RANK"):
            monkeypatch.delenv(name, raising=False)
        if node is not None:
            monkeypatch.setenv("NODE_RANK", str(node))

    return set_rank


def test_rank_zero_makes_a_new_directory_every_time(tmp_path, launch):
    launch(0)
    first, second = run_dir(_config(tmp_path), "fit"), run_dir(_config(tmp_path), "fit")
    assert first.is_dir() and second.is_dir() and first != second


def test_other_node_creates_nothing(tmp_path, launch):
    # Node 1's first process under Lightning's launcher: no rank variable, only NODE_RANK.
    launch(0, node=1)
    run_dir(_config(tmp_path), "fit")
    assert not any((tmp_path / "runs").rglob("*"))


def test_child_of_rank_zero_creates_nothing(tmp_path, launch):
    # Rank 1 on rank 0's node (LOCAL_RANK=1 from the DDP launcher): it writes nothing, so it gets no directory.
    launch(1)
    assert run_dir(_config(tmp_path), "fit") == tmp_path / "runs" / "default"
    assert not any((tmp_path / "runs").rglob("*"))


def test_launch_rank_reads_lightning_rank_and_node(launch):
    launch(0)
    assert rundir.launch_rank() == 0
    launch(0, node=2)
    assert rundir.launch_rank() == 2
    launch(3)
    assert rundir.launch_rank() == 3


def test_discard_removes_only_empty_directories_this_process_made(tmp_path, launch):
    launch(0)
    empty, used = run_dir(_config(tmp_path), "fit"), run_dir(_config(tmp_path), "fit")
    (used / "metrics.csv").write_text("step\n")
    other = tmp_path / "runs" / "default" / "someone-else"
    other.mkdir()
    discard_empty_run_dir()
    assert not empty.exists() and used.is_dir() and other.is_dir()
