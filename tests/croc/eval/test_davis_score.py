"""Scoring a folder of DAVIS predictions, and the `davis-score` command."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from croc.data.davis import Davis2017
from croc.errors import InputError
from croc.eval.davis_score import score_predictions
from pipelines.cli.davis_score import davis_score


@pytest.fixture
def davis(synthetic_davis) -> Davis2017:
    return synthetic_davis


@pytest.fixture
def ground_truth_copy(davis, tmp_path):
    """The val annotations copied as predictions: <tmp>/pred/<video>/<stem>.png."""
    predictions = tmp_path / "pred"
    shutil.copytree(davis.root / "Annotations" / "480p", predictions)
    return predictions


def test_the_ground_truth_scores_one(davis, ground_truth_copy):
    result = score_predictions(ground_truth_copy, davis.root)
    for key in ("J-mean", "F-mean", "J&F", "J-recall", "F-recall"):
        assert result[key] == pytest.approx(1.0), key
    assert sorted(result["per_video"]) == sorted(davis.videos)
    assert {row["video"] for row in result["per_object"]} == set(davis.videos)
    json.dumps(result)  # plain values only


def test_a_wrong_prediction_scores_lower(davis, ground_truth_copy):
    video = davis.videos[0]
    middle = davis.annotation_paths(video)[2]
    with Image.open(middle) as image:
        blank = Image.new("P", image.size, 0)
        blank.putpalette(image.getpalette())
    blank.save(ground_truth_copy / video / middle.name)
    result = score_predictions(ground_truth_copy, davis.root, videos=[video])
    assert list(result["per_video"]) == [video]
    assert result["J-mean"] < 1.0


def test_missing_file_wrong_size_and_rgb_name_the_file(davis, ground_truth_copy):
    video = davis.videos[1]
    target = ground_truth_copy / video / davis.annotation_paths(video)[3].name
    target.unlink()
    with pytest.raises(InputError, match=re.escape(f"missing: expected {target}")):
        score_predictions(ground_truth_copy, davis.root)
    Image.fromarray(np.zeros((32, 48), dtype=np.uint8)).save(target)
    with pytest.raises(InputError, match=re.escape(f"{target} is 32x48")):
        score_predictions(ground_truth_copy, davis.root)
    Image.fromarray(np.zeros((64, 96, 3), dtype=np.uint8)).save(target)
    with pytest.raises(InputError, match=re.escape(f"{target} has mode 'RGB'")):
        score_predictions(ground_truth_copy, davis.root)
    Image.fromarray(np.zeros((64, 96), dtype=np.uint8)).save(target)  # grey 'L' is accepted
    assert score_predictions(ground_truth_copy, davis.root)["J-mean"] <= 1.0
    shutil.rmtree(ground_truth_copy / video)
    with pytest.raises(InputError, match=re.escape(f"expected {ground_truth_copy / video}")):
        score_predictions(ground_truth_copy, davis.root)
    with pytest.raises(InputError, match="not in the DAVIS-2017 val split"):
        score_predictions(ground_truth_copy, davis.root, videos=["no-such-video"])


def command_app() -> typer.Typer:
    app = typer.Typer()
    app.command("davis-score")(davis_score)
    app.command("other")(lambda: None)  # two commands: the sub-command name is then required, as in the real CLI
    return app


def test_command_prints_json_and_tables(davis, ground_truth_copy):
    runner = CliRunner()
    result = runner.invoke(command_app(), ["davis-score", "--predictions", str(ground_truth_copy),
                                           "--davis-root", str(davis.root), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert {"J&F", "J-mean", "J-recall", "F-mean", "F-recall", "per_object", "per_video"} <= set(scores)
    assert scores["J&F"] == pytest.approx(1.0)
    table = runner.invoke(command_app(), ["davis-score", "--predictions", str(ground_truth_copy),
                                          "--davis-root", str(davis.root), "--set", "val"])
    assert table.exit_code == 0, table.output
    assert "J&F" in table.stdout
    assert f"{davis.videos[0]}_1" in table.stdout


def test_command_exits_2_on_a_missing_folder(davis, tmp_path):
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(command_app(), ["davis-score", "--predictions", str(missing),
                                                "--davis-root", str(davis.root)])
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert result.stdout == ""
    bad_root = CliRunner().invoke(command_app(), ["davis-score", "--predictions", str(missing),
                                                  "--davis-root", str(tmp_path / "no-davis")])
    assert bad_root.exit_code == 2
    assert "DAVIS root not found" in bad_root.stderr


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n truncated", b"GIF89a not a png at all"])
def test_a_corrupt_prediction_png_exits_2_naming_the_file(davis, ground_truth_copy, content):
    video = davis.videos[0]
    target = sorted((ground_truth_copy / video).glob("*.png"))[1]
    target.write_bytes(content)
    result = CliRunner().invoke(command_app(), ["davis-score", "--predictions", str(ground_truth_copy),
                                                "--davis-root", str(davis.root)])
    assert result.exit_code == 2, result.output
    assert f"prediction {target} is not a readable PNG" in result.stderr and "Traceback" not in result.output
