"""`croc data prepare`: shards from a folder in its official layout, errors that name the layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from pipelines.cli import app


def test_prepare_writes_shards_and_lists_unreadable(tmp_path: Path) -> None:
    train = tmp_path / "coco" / "train2017"
    train.mkdir(parents=True)
    for i in range(5):
        Image.fromarray(np.full((12, 16, 3), i * 40, np.uint8)).save(train / f"{i:012d}.jpg")
    (train / "000000000042.jpg").write_bytes(b"not an image")
    out = tmp_path / "shards"
    args = ["data", "prepare", "coco", "--root", str(tmp_path / "coco"), "--out", str(out), "--images-per-shard", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_images"] == 5 and manifest["num_skipped"] == 1
    assert [s["rows"] for s in manifest["shards"]] == [2, 2, 1]  # sorted ids: 0, 1 | 2, 3 | 4, 42 (skipped)
    again = CliRunner().invoke(app, args)  # resumes: every shard is already finished
    assert again.exit_code == 0 and json.loads((out / "manifest.json").read_text())["num_images"] == 5


def test_prepare_names_the_missing_layout(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "prepare", "imagenet", "--root", str(tmp_path / "nope"), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "nope" in result.output and "expected layout" in result.output
    bad_kind = CliRunner().invoke(app, ["data", "prepare", "cifar", "--root", str(tmp_path), "--out", str(tmp_path)])
    assert bad_kind.exit_code != 0 and "cifar" in bad_kind.output


def test_synth_tiny_writes_the_official_layouts(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "bench"), "--tiny", "--seed", "1"])
    assert result.exit_code == 0, result.output
    for folder in ("coco/train2017", "coco/annotations/stuff_val2017_pixelmaps", "voc/JPEGImages",
                   "davis/JPEGImages/480p"):
        assert (tmp_path / "bench" / folder).is_dir(), folder
    assert (tmp_path / "bench" / "manifest.json").exists()


def test_the_default_benchmark_folder_names_the_generator_version(tmp_path: Path, monkeypatch) -> None:
    """A new generator version writes a new default folder: an old benchmark is never met (and refused) there."""
    from croc.synthetic.benchmark import VERSION
    from pipelines.config import load_config
    from pipelines.datasets import synthetic_benchmark_dir

    monkeypatch.chdir(tmp_path)
    cfg = load_config(str(Path(__file__).parents[2] / "experiments/synthetic/pretrain.yaml"), [])
    assert synthetic_benchmark_dir(cfg) == tmp_path / "data" / f"{VERSION}-s0-n256-192x256"
    custom = load_config(str(Path(__file__).parents[2] / "experiments/synthetic/pretrain.yaml"),
                         [f"data.synthetic.out_dir={tmp_path / 'mine'}"])
    assert synthetic_benchmark_dir(custom) == tmp_path / "mine"
