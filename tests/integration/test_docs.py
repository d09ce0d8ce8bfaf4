"""The documentation: the site builds strict and offline, every page is in the navigation, the README stays short,
its links resolve, and the configuration reference is the one the code generates."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "docs" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_readme_is_at_most_250_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_says_how_textcls_gets_on_path() -> None:
    text = README.read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in text and ".venv/bin/textcls" in text


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_every_page_is_in_the_navigation_and_every_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(set(listed)) == pages, f"not in nav: {set(pages) - set(listed)}; missing: {set(listed) - set(pages)}"
    assert config["theme"]["font"] is False, "Material's default font comes from Google Fonts (not offline)"


def test_configuration_reference_is_generated_from_the_code() -> None:
    reference = load_script("config_reference")
    text = reference.render()
    assert reference.PAGE.read_text(encoding="utf-8") == text, "stale: run python scripts/docs/config_reference.py"
    # what it must hold, from the code: every network, both classes' groups, the default callbacks
    import textcls.models

    for name in (*textcls.models.__all__, "TextClassifier", "TextDataModule", "ResumeCheckpoint", "PredictionWriter"):
        assert f"`{name}`" in text
    assert "| `--model.optimizer` |" in text and "| `--data.max_length` | `int` | `256` |" in text


@pytest.mark.slow
def test_site_builds_strict_and_loads_nothing_from_the_internet(tmp_path: Path) -> None:
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    pages = list(site.rglob("*.html"))
    assert len(pages) >= len(list(DOCS.rglob("*.md")))
    remote = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        found = [m.group(0) for m in remote.finditer(html)]
        assert not found, f"{page.relative_to(site)} loads from the internet: {found[:3]}"
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page
    css = "".join(p.read_text(encoding="utf-8", errors="replace") for p in site.rglob("*.css"))
    assert "@import url(http" not in css and "fonts.googleapis" not in css
