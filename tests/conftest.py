"""Shared pytest configuration. Markers (`slow`) are registered in pyproject.toml."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Name each slow test on a line of its own as it starts: a dot line that stops for a minute then says what runs.
    (With -v pytest names every test anyway.)"""
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or item.config.get_verbosity() > 0 or item.get_closest_marker("slow") is None:
        return
    reporter.ensure_newline()
    reporter.write(f"slow: {item.nodeid} ...", cyan=True)  # the reporter ends the line before its next result


@pytest.fixture(autouse=True, scope="session")
def private_cache_home(tmp_path_factory):
    """The default data cache ($XDG_CACHE_HOME/textcls) of every test and of the processes it starts is the
    session's own, never the user's ~/.cache; a test that needs another sets its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(autouse=True)
def fresh_wandb_settings():
    """W&B keeps the settings of a process's first run (its WANDB_DIR among them) until teardown: drop them after
    each test, so every W&B test reads its own environment whichever tests ran before it in the worker."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """`trained(name, *more)`: the best.ckpt of trained_checkpoints.train_checkpoint(name, *more), trained once per
    session and shared by every module that asks for the same arguments. Tests must not change it (copy first); the
    session ends with an error if one did."""
    from trained_checkpoints import train_checkpoint

    made: dict[tuple[str, ...], tuple[Path, str]] = {}

    def get(name: str, *more: str) -> Path:
        key = (name, *more)
        if key not in made:
            path = train_checkpoint(tmp_path_factory.mktemp(f"trained-{name}"), name, *more)
            made[key] = (path, _digest(path))
        return made[key][0]

    yield get
    changed = [str(path) for path, digest in made.values() if _digest(path) != digest]
    assert not changed, f"a test changed a shared checkpoint (copy it before tampering): {changed}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
