"""Shared pytest configuration. Markers (`slow`) are registered in pyproject.toml."""

from __future__ import annotations

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
