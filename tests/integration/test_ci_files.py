"""The CI definitions are valid and run the same command as the README: `make test`, failing when it fails."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CI_RUN = ROOT / ".ci" / "run"
# Declared for what they do outside `import` in src/: a Lightning strategy named in a config, the benchmarks' baselines
# and the tools of `dev`.
# schedulefree and lion-pytorch are imported by class path from configs/optimizers (jsonargparse), never by name.
NOT_IMPORTED_BY_SRC = {
    "deepspeed",
    "fasttext-numpy2",
    "mkdocs-material",
    "scikit-learn",
    "schedulefree",
    "lion-pytorch",
}


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate `path` against check-jsonschema's vendored (offline) GitHub workflow schema."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflow_matches_schema() -> None:
    result = check_workflow(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # Edit the text, not a YAML round-trip: PyYAML would turn the `on:` key into `True`, a second error.
    text = WORKFLOW.read_text()
    runs_on = "\n    runs-on: ubuntu-latest"
    assert runs_on in text
    broken = tmp_path / "ci.yml"
    broken.write_text(text.replace(runs_on, "", 1))
    result = check_workflow(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "$.jobs.test" in result.stdout, result.stdout


def test_workflow_runs_make_test_and_make_lint() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    test_runs = [step.get("run", "").strip() for step in workflow["jobs"]["test"]["steps"]]
    assert "make test" in test_runs
    lint_runs = [step.get("run", "").strip() for step in workflow["jobs"]["lint"]["steps"]]
    assert "make lint" in lint_runs


@pytest.mark.parametrize("status", [0, 3])
def test_ci_run_runs_make_test_from_the_checkout_root_and_fails_when_it_fails(tmp_path: Path, status: int) -> None:
    # A `make` first on PATH that records what it was asked and exits with `status` (the real one runs the suite).
    bin_dir, record = tmp_path / "bin", tmp_path / "make-calls"
    bin_dir.mkdir()
    fake = bin_dir / "make"
    fake.write_text(f'#!/bin/sh\necho "$PWD|$*" >> {record}\nexit {status}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(CI_RUN)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == status, result.stdout + result.stderr
    assert record.read_text().splitlines() == [f"{ROOT}|test"]  # once, from the root, whatever the caller's cwd


def test_ci_run_is_executable_in_a_fresh_clone() -> None:
    assert CI_RUN.read_text().startswith("#!")
    assert os.access(CI_RUN, os.X_OK)
    # a clone gets the mode git recorded, not this checkout's
    listed = subprocess.run(["git", "ls-files", "-s", ".ci/run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if listed.returncode != 0 or not listed.stdout:
        pytest.skip("not a git checkout")
    assert listed.stdout.split()[0] == "100755", listed.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_test_runs_pytest() -> None:
    result = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "-m pytest" in result.stdout


@pytest.fixture(scope="module")
def project() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """PEP 503-normalised distribution name of a requirement string."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def _imported_distributions() -> dict[str, set[str]]:
    """Distribution -> the src/ files that import one of its top-level modules (first-party and stdlib left out)."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"textcls", "__future__"}:
                for dist in owners.get(top, [top]):
                    found.setdefault(_name(dist), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_is_declared_and_every_runtime_dependency_imported(project: dict) -> None:
    core = {_name(r) for r in project["dependencies"]}
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    declared = core | set().union(*(reqs for extra, reqs in extras.items() if extra != "dev"))
    imported = _imported_distributions()
    assert not {d: files for d, files in imported.items() if d not in declared}, "imported but not declared"
    runtime = declared - extras["dev"] - NOT_IMPORTED_BY_SRC - {"textcls"}
    assert sorted(runtime - set(imported)) == [], "declared but imported nowhere in src/"


def test_dev_composes_the_extras_instead_of_copying_them(project: dict) -> None:
    dev = project["optional-dependencies"]["dev"]
    composed = [r for r in dev if _name(r) == "textcls"]
    assert len(composed) == 1, dev
    named = set(re.fullmatch(r"textcls\[(.+)\]", composed[0].replace(" ", "")).group(1).split(","))
    assert {"hub", "wandb", "onnx", "bench", "serve", "docs"} <= named, named
    copied = {_name(r) for r in dev} & {_name(r) for e in named for r in project["optional-dependencies"][e]}
    assert not copied, copied


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_the_makefile_installs_the_torch_that_pyproject_pins(project: dict) -> None:
    pins = [r.replace(" ", "") for r in project["dependencies"] if _name(r) == "torch"]
    result = subprocess.run(
        ["make", "-s", "--eval", "print-torch: ; @echo torch==$(TORCH_VERSION)", "print-torch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [result.stdout.strip()] == pins
    assert "TORCH_VERSION ?= 2" not in (ROOT / "Makefile").read_text()  # read from pyproject.toml, not written twice
