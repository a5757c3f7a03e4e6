"""The `croc` command line: the demo's smoke mode and the benchmark run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_in_process_demo_smoke_runs_and_reports() -> None:
    result = CliRunner().invoke(app, ["demo", "--smoke", "--in-process"])
    assert result.exit_code == 0, result.output
    assert "done: 4 steps" in result.output and "images/s" in result.output


def test_demo_rejects_unknown_method() -> None:
    result = CliRunner().invoke(app, ["demo", "--smoke", "--method", "byol"])
    assert result.exit_code != 0 and "byol" in result.output


def test_bench_step_prints_json_with_phases() -> None:
    args = ["-m", "croc.bench", "step", "--methods", "croc", "dino", "--arch", "vit_tiny", "--batch", "2",
            "--image-size", "48", "--out-dim", "256", "--out-dim-c", "64", "--k", "4", "--steps", "1", "--warmup", "1"]
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True).stdout
    croc, dino = (json.loads(line) for line in out.strip().splitlines())
    assert croc["method"] == "croc" and dino["method"] == "dino"
    assert set(croc["phases_ms"]) == {"teacher_forward", "clustering", "student_forward", "heads_loss",
                                      "backward_update"}
    assert "clustering" not in dino["phases_ms"]
    assert croc["images_per_s"] > 0 and 0 < croc["clustering_share"] < 1


def test_bench_through_the_cli() -> None:
    result = CliRunner().invoke(app, ["bench", "step", "--arch", "vit_tiny", "--batch", "2", "--image-size", "32",
                                      "--out-dim", "128", "--out-dim-c", "64", "--k", "3", "--n-centroids-max", "3",
                                      "--steps", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    assert '"bench": "step"' in result.output


def test_printed_paths_are_never_wrapped_when_output_is_not_a_terminal() -> None:
    import io

    from pipelines.terminal import make_console

    console = make_console()
    console.file = io.StringIO()
    path = "/a/very/long/checkpoint/storage/path/" + "x" * 150 + "/backbone.safetensors"
    console.print(f"done: 6 steps; backbone {path}")
    assert console.file.getvalue().splitlines() == [f"done: 6 steps; backbone {path}"]


def test_verbose_is_a_global_option(monkeypatch) -> None:
    from pipelines.terminal import VERBOSE_ENV, verbose

    monkeypatch.setenv(VERBOSE_ENV, "0")  # recorded: whatever the CLI sets is undone afterwards
    assert CliRunner().invoke(app, ["data", "--help"]).exit_code == 0 and not verbose()
    assert CliRunner().invoke(app, ["--verbose", "data", "--help"]).exit_code == 0 and verbose()


def test_loading_the_command_line_imports_neither_torch_nor_ray() -> None:
    """`croc --help` answers in under a second: the heavy libraries load when a command runs, not before."""
    code = ("import sys, pipelines.cli; "
            "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_without_verbose_the_libraries_info_lines_are_muted(monkeypatch) -> None:
    import logging

    from pipelines.terminal import QUIET_LOGGERS, VERBOSE_ENV, set_verbose

    monkeypatch.setenv(VERBOSE_ENV, "0")
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    for name in QUIET_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
    set_verbose(False)
    assert all(logging.getLogger(name).getEffectiveLevel() == logging.WARNING for name in QUIET_LOGGERS)
    assert logging.getLogger("ray.data").isEnabledFor(logging.WARNING)  # real warnings still show
    import os

    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"  # no progress bar per download


def test_version_and_dry_run_start_nothing(tmp_path: Path, monkeypatch) -> None:
    import ray

    from croc import __version__

    monkeypatch.setattr(ray, "init", lambda *a, **k: (_ for _ in ()).throw(AssertionError("Ray started")))
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"croc {__version__}"
    config = ROOT / "experiments" / "synthetic" / "pretrain.yaml"
    db = tmp_path / "mlflow.db"
    result = CliRunner().invoke(app, ["pretrain", "--config", str(config), "--dry-run", "optim.epochs=3",
                                      f"tracking.tracking_uri=sqlite:///{db}",
                                      f"checkpoint.storage_path={tmp_path / 'runs'}"])
    assert result.exit_code == 0, result.output
    assert "  epochs: 3" in result.output  # the resolved config, overrides applied
    assert "steps: 8 per epoch x 3 epochs = 24" in result.output  # 256 images / batch 32
    assert "batch: 32 in all, 32 per worker" in result.output and "dry run: nothing was started" in result.output
    assert not db.exists() and not (tmp_path / "runs").exists()
    bad = CliRunner().invoke(app, ["pretrain", "--config", str(config), "--dry-run", "optim.lr=fast"])
    assert bad.exit_code == 2 and "optim.lr" in bad.output


def _commands(command, prefix=()):
    """Every (sub)command path of a click group."""
    for name, sub in getattr(command, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(sub, (*prefix, name))


def test_every_help_shows_click_style_types_and_no_placeholders() -> None:
    import re

    import typer.main

    commands = [(), *_commands(typer.main.get_command(app))]
    assert ("pretrain",) in commands and ("bench", "step") in commands and ("data", "prepare") in commands
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], terminal_width=120)
        assert result.exit_code == 0, (command, result.output)
        assert not re.search(r"<(bool|str|int|float|path|Path)>", result.output), (command, result.output)
    pretrain = CliRunner().invoke(app, ["pretrain", "--help"], terminal_width=120).output
    assert re.search(r"--config\s+-c\s+TEXT", pretrain) and re.search(r"--dry-run\s+print", pretrain)
    text = CliRunner().invoke(app, ["evaluate", "--help"], terminal_width=200).output
    evaluate = " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())
    assert "(runs:/ID or ID), random:ARCH, or stats:colour" in evaluate  # nothing eaten by the markdown rendering
    listed = re.findall(r"^│ (\S+) ", CliRunner().invoke(app, ["--help"], terminal_width=120).output, re.M)
    commands = [name for name in listed if not name.startswith("-")]
    assert commands == ["data", "demo", "pretrain", "evaluate", "sweep", "submit", "compare", "davis-score", "bench"]


def test_bench_helps_list_the_benchmarks_own_options() -> None:
    for command, options in ((["bench", "step"], ("--methods", "--check-sync", "--batch")),
                             (["bench", "gpu"], ("--out", "--window-steps", "--data-cores")),
                             (["bench", "eval"], ("--parts", "--images"))):
        result = CliRunner().invoke(app, [*command, "--help"], terminal_width=120)
        assert result.exit_code == 0, result.output
        assert all(option in result.output for option in options), (command, result.output)
