"""bench/gpu_check.py, the GPU path's one-command check (docs/measurements.md), keeps working: its
CPU mode (--tiny, generated photos) runs every row of the table with finite figures."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "bench" /
                                                  "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.timeout(180)
def test_tiny_cpu_run_fills_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    gpu_check = _load_gpu_check()
    threads = torch.get_num_threads()
    report = gpu_check.main(["--device", "cpu", "--tiny", "--synthetic",
                             "--out", str(tmp_path / "check")])
    assert torch.get_num_threads() == threads  # the tiny run's single thread is undone

    printed = capsys.readouterr().out
    assert printed.startswith("# PhotoAtlas GPU check: CPU | torch ")
    assert f"{report['machine']['cpu_count']} CPUs" in printed
    saved = json.loads((tmp_path / "check.json").read_text())
    assert saved["mode"] == "tiny" and saved["machine"]["device"] == "CPU"
    table = (tmp_path / "check.md").read_text()
    assert table in printed

    measures = [row["measure"] for row in saved["throughput"]]
    assert [m.split(",")[:2] for m in measures] == [
        ["train", " ResNet-18 from scratch"],
        ["train", " EfficientNet-Lite0 pixel fine-tuning (last stages)"],
        ["embed", " EfficientNet-Lite0"]]
    for row in saved["throughput"]:
        assert _positive(row["value"]), row
        assert row["measure"] in table
    assert [r["unit"] for r in saved["throughput"]] == ["pairs/s", "pairs/s", "photos/s"]

    recipes = {(row["set"], row["recipe"]) for row in saved["recipes"]}
    sets = {s for s, _ in recipes}
    assert len(sets) == 2 and any(s.endswith("at 32 px") for s in sets)
    assert recipes == {(s, name) for s in sets for name, _ in gpu_check.RECIPES}
    for row in saved["recipes"]:
        assert _positive(row["before"]) and _positive(row["after"]), row
        assert row["before"] <= 1 and row["after"] <= 1
        assert row["kept"] in ("adapted", "start") and row["steps"] >= 1
        assert _positive(row["seconds"]) and row["recipe"] in table
    adapter_rows = [r for r in saved["recipes"] if r["recipe"] == "adapter (default)"]
    assert all(r["bank_photos"] and r["views"] == 2 for r in adapter_rows)
