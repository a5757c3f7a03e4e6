"""`croc bench gpu` (python -m croc.bench gpu): every part runs on a CPU with tiny settings; the targets are judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from croc.bench.gpu import TARGETS, GpuBenchSettings, Report

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--arch", "vit_tiny", "--batch", "2", "--image-size", "64", "--out-dim", "64", "--out-dim-c", "32",
        "--warmup", "1", "--windows", "2", "--window-steps", "1", "--modes", "eager", "--data-cores", "2",
        "--data-images", "2", "--data-passes", "1", "--data-size", "32", "--eval-images", "4", "--eval-size", "32",
        "--eval-batch", "2", "--eval-seeds", "1"]


def test_the_command_measures_every_part_and_writes_one_json_object(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, "-m", "croc.bench", "gpu", *TINY, "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert json.loads(result.stdout.strip().splitlines()[-1]) == report  # the last line printed is the object
    steps = {(r["method"], r["mode"]): r for r in report["results"] if r["part"] == "step"}
    assert set(steps) == {("croc", "eager"), ("dino", "eager")}
    croc, dino = steps["croc", "eager"], steps["dino", "eager"]
    assert len(croc["window_images_per_s"]) == 2 and croc["images_per_s"] > 0
    assert croc["ms_per_step"] == pytest.approx(1000 * 2 / croc["images_per_s"], rel=1e-3)  # 4 significant digits
    assert croc["phases_ms"]["clustering"] > 0 and 0 < croc["clustering_share"] < 1
    assert "clustering" not in dino["phases_ms"] and dino["clustering_share"] == 0
    rows = croc["dense_row_compaction"]  # 2 views x 2 images x 3 heads (ViT-Tiny) x n_centroids_max 4
    assert rows["rows"] == 2 * 2 * 3 * 4 and 0 < rows["valid_rows"] <= rows["rows"] and rows["valid_rows"] % 2 == 0
    assert rows["valid_fraction"] == round(rows["valid_rows"] / rows["rows"], 3)
    assert rows["head_ms_padded"] > 0 and rows["head_ms_valid_rows"] > 0 and dino["dense_row_compaction"] is None
    data = next(r for r in report["results"] if r["part"] == "data")
    assert data["cores"] == 2 and data["image"] == "640x480"
    assert data["images_per_s_per_core"] == pytest.approx(data["images_per_s"] / 2, abs=0.1)
    evaluation = next(r for r in report["results"] if r["part"] == "eval")
    assert evaluation["images"] == 4 and evaluation["extract_images_per_s"] > 0
    assert set(evaluation["unsup_stages_s"]) >= {"pca", "kmeans", "assignment"}
    assert evaluation["unsup_tokens"] == "2x2"  # 32 px / patch 16
    # no compiled step was timed: the step targets are not judged, the data target is
    assert report["targets"]["croc_compiled_images_per_s"]["met"] is None
    assert report["targets"]["data_images_per_s_per_core"]["measured"] == data["images_per_s_per_core"]
    table = result.stdout
    assert "dense head rows (croc eager)" in table
    assert "croc eager" in table and "dino eager" in table and "data kernel:" in table and "target" in table


def _step(method: str, rate: float, share: float, peak: float) -> dict:
    return {"part": "step", "method": method, "mode": "compiled", "images_per_s": rate, "ms_per_step": 1.0,
            "clustering_share": share, "peak_memory_gib": peak, "sync_free_step": True}


def test_targets_are_judged_from_the_compiled_steps_and_the_data_kernel() -> None:
    report = Report(GpuBenchSettings(), "test")
    report.results = [_step("croc", 2700.0, 0.06, 12.0), _step("dino", 3000.0, 0.0, 11.0),
                      {"part": "data", "cores": 16, "images_per_s": 3520.0, "images_per_s_per_core": 220.0,
                       "decoder": "simplejpeg"}]
    targets = report.targets()
    assert set(targets) == set(TARGETS)
    assert targets["croc_compiled_images_per_s"] == {"target": ">= 2600", "measured": 2700.0, "met": True}
    assert targets["croc_vs_dino_compiled"]["measured"] == 0.9 and targets["croc_vs_dino_compiled"]["met"]
    assert targets["clustering_share"]["met"] is False  # 6 % > 5 %
    assert targets["peak_memory_gib"]["met"] is True
    assert targets["data_images_per_s_per_core"]["met"] is True
    report.results[1] = _step("dino", 3300.0, 0.0, 11.0)  # 2700 / 3300 = 0.818: more than 15 % slower
    assert report.targets()["croc_vs_dino_compiled"]["met"] is False


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="batch must be >= 1"):
        GpuBenchSettings(batch=0)
    with pytest.raises(ValueError, match="unknown parts"):
        GpuBenchSettings(parts=("step", "gpu"))
    result = subprocess.run([sys.executable, "-m", "croc.bench", "gpu", "--windows", "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "windows must be >= 1" in result.stderr
