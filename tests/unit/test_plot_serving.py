"""scripts/docs/plot_serving.py: the serving latency histogram is drawn from benchmarks/serve.py's latencies file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("plot_serving", ROOT / "scripts" / "docs" / "plot_serving.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _latencies(tmp_path: Path) -> Path:
    runs = [
        {"model": model, "backend": backend, "batching": batching, "concurrency": level,
         "latencies_ms": [float(1 + (i * 7) % 50) * (2 if batching == "off" else 1) for i in range(200)]}
        for model in ("mlp", "textcnn") for backend in ("torch", "onnx") for batching in ("on", "off")
        for level in (8, 32)
    ]  # fmt: skip
    meta = {"date": "2026-12-01", "machine": "test, 2 cores", "load_average": [0.5, 1.0], "command": "serve.py"}
    path = tmp_path / "latencies.json"
    path.write_text(json.dumps({"meta": meta, "runs": runs}), encoding="utf-8")
    return path


def test_percentile_is_the_nearest_rank() -> None:
    script = _script()
    values = [float(v) for v in range(1, 101)]
    assert script.percentile(values, 50) == 50.0
    assert script.percentile(values, 99) == 99.0
    assert script.percentile([3.0], 99) == 3.0


def test_histogram_is_drawn_for_the_chosen_concurrency(tmp_path: Path) -> None:
    script = _script()
    out = tmp_path / "img" / "latency.png"
    data = json.loads(_latencies(tmp_path).read_text())
    script.plot(data, [32], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(script.select(data["runs"], [32])) == 8


def test_a_concurrency_the_file_lacks_is_refused(tmp_path: Path) -> None:
    script = _script()
    data = json.loads(_latencies(tmp_path).read_text())
    with pytest.raises(SystemExit, match="no run at concurrency"):
        script.plot(data, [64], tmp_path / "x.png")
