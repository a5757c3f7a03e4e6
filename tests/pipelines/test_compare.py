"""`croc compare`: hand-made MLflow runs (the platform's tags, params and metrics) -> the paper's tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import typer
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipelines.cli.compare import TABLE_CHOICES, compare
from pipelines.compare.reading import load_runs
from pipelines.compare.tables import (
    MAIN_SPECS,
    TABLE_NAMES,
    Cell,
    Subject,
    ablation_rows,
    ablation_sort_key,
    average_cell,
    cell_for,
    compare_runs,
)

EXPERIMENT = "paper"
RECIPE = {"clustering.n_init": "12", "method.tokens": "values", "data.source": "synthetic", "optim.lr": "0.0005"}


class Store:
    """A sqlite MLflow store filled run by run, with explicit, increasing start times."""

    def __init__(self, folder: Path) -> None:
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=(folder / "art").as_uri())
        self.clock = 1_700_000_000_000

    def _run(self, name: str, tags: dict[str, str], status: str, params=None, metrics=None) -> str:
        self.clock += 1000
        run = self.client.create_run(self.experiment_id, start_time=self.clock, tags=tags, run_name=name)
        for key, value in (params or {}).items():
            self.client.log_param(run.info.run_id, key, value)
        for key, value in (metrics or {}).items():
            self.client.log_metric(run.info.run_id, key, value)
        self.client.set_terminated(run.info.run_id, status=status, end_time=self.clock + 500)
        return run.info.run_id

    def pretrain(self, name: str, method: str, lambda_pos: str = "4.0", status: str = "FINISHED") -> str:
        tags = {"croc.kind": "pretrain", "croc.method": method, "croc.dataset": "synthetic",
                "croc.config_hash": f"hash-{name}", "croc.git_sha": "abc"}
        params = {**RECIPE, "name": name, "method.method": method, "clustering.lambda_pos": lambda_pos}
        return self._run(name, tags, status, params)

    def evaluation(self, parent: str | None, task: str, dataset: str, metrics: dict[str, float], *,
                   label: str = "final", method: str = "croc", status: str = "FINISHED",
                   checkpoint: str = "backbone.safetensors") -> str:
        tags = {"croc.kind": "eval", "croc.task": task, "croc.eval_dataset": dataset, "croc.method": method,
                "croc.checkpoint": checkpoint, "croc.checkpoint_label": label}
        if parent:
            tags["mlflow.parentRunId"] = parent
        if status == "FAILED":
            tags["croc.error"] = "RuntimeError: out of memory"
        return self._run(f"{task}:{dataset} @ {label}", tags, status, metrics=metrics)


def linear(miou: float) -> dict[str, float]:
    return {"miou_best": miou, "miou_last": miou - 0.01}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """croc-a and dino-a with final evaluations (one failed, some missing), random init, a λ_pos ablation."""
    s = Store(tmp_path_factory.mktemp("compare"))
    croc = s.pretrain("croc-a", "croc")
    s.evaluation(croc, "linear", "voc", linear(0.10))  # older 'final' evaluation: superseded below
    s.evaluation(croc, "linear", "voc", linear(0.50))
    s.evaluation(croc, "linear", "voc", linear(0.99), label="step 120")  # intermediate checkpoint: not counted
    s.evaluation(croc, "linear", "coco_things", linear(0.60))  # coco_stuff: missing
    s.evaluation(croc, "linear", "ade20k", {}, status="FAILED")
    for dataset, mean, std in (("voc", 0.30, 0.01), ("coco_things", 0.20, 0.02), ("coco_stuff", 0.10, 0.03)):
        s.evaluation(croc, "unsup", dataset, {"miou_mean": mean, "miou_std": std})
    s.evaluation(croc, "davis", "davis", {"jf_mean": 0.40, "j_mean": 0.38, "f_mean": 0.42, "j_recall": 0.5,
                                          "f_recall": 0.5})
    dino = s.pretrain("dino-a", "dino")
    for dataset, miou in (("voc", 0.40), ("coco_things", 0.45), ("coco_stuff", 0.35)):
        s.evaluation(dino, "linear", dataset, linear(miou), method="dino")
    s.evaluation(dino, "unsup", "voc", {}, method="dino", status="FAILED")
    random = "random:vit_tiny:16:0"
    for dataset, miou in (("voc", 0.05), ("coco_things", 0.04), ("coco_stuff", 0.03)):
        s.evaluation(None, "linear", dataset, linear(miou), label="random init", method="external",
                     checkpoint=random)
    s.evaluation(None, "davis", "davis", {"jf_mean": 0.10, "j_mean": 0.09, "f_mean": 0.11}, label="random init",
                 method="external", checkpoint=random)
    sweep = s._run("sweep", {"croc.kind": "sweep", "croc.sweep": "sweep"}, "FINISHED")  # a sweep's baseline
    s.evaluation(sweep, "unsup", "voc", {"miou_mean": 0.02, "miou_std": 0.005}, label="random init",
                 method="external", checkpoint=random)
    for lambda_pos, miou in (("10.0", 0.41), ("0.0", 0.42), ("2.0", 0.43)):  # croc-a is the 4.0 row
        run = s.pretrain(f"croc-l{lambda_pos}", "croc", lambda_pos=lambda_pos)
        s.evaluation(run, "linear", "voc", linear(miou))
        s.evaluation(run, "unsup", "voc", {"miou_mean": miou / 2, "miou_std": 0.0})
    return s


@pytest.fixture(scope="module")
def runs(store: Store) -> pd.DataFrame:
    return load_runs(store.uri, EXPERIMENT)


def table(runs: pd.DataFrame, name: str, selection=None):
    (built,) = compare_runs(runs, EXPERIMENT, selection, [name]).tables
    return built


def row_of(frame: pd.DataFrame, run: str) -> dict:
    (row,) = frame[frame["Run"] == run].to_dict("records")
    return row


def test_runs_are_read_into_pandas(runs: pd.DataFrame) -> None:
    assert len(runs) == 30
    assert set(runs["tags.croc.kind"]) == {"pretrain", "eval", "sweep"}
    assert {"run_id", "run_name", "status", "start_time", "parent_run_id", "metrics.miou_best",
            "params.clustering.lambda_pos"} <= set(runs.columns)


def test_linear_table_averages_present_cells_and_marks_missing_ones(runs: pd.DataFrame) -> None:
    built = table(runs, "linear")
    frame = built.frame
    assert list(frame.columns) == ["Method", "Dataset", "Run", "PVOC12", "COCO-Things", "COCO-Stuff", "Average"]
    assert list(frame["Method"]) == ["croc"] * 4 + ["dino", "external (random init)"]  # croc, dino, externals
    assert row_of(frame, "croc-a") == {"Method": "croc", "Dataset": "synthetic", "Run": "croc-a", "PVOC12": "50.0",
                                       "COCO-Things": "60.0", "COCO-Stuff": "missing", "Average": "55.0 (2/3)"}
    assert row_of(frame, "dino-a")["Average"] == "40.0"
    external = row_of(frame, "random:vit_tiny:16:0")
    assert external["Method"] == "external (random init)"
    assert [external[c] for c in ("PVOC12", "COCO-Things", "COCO-Stuff", "Average")] == ["5.0", "4.0", "3.0", "4.0"]
    index = frame.index[frame["Run"] == "croc-a"][0]
    assert built.values.loc[index, "Average"] == pytest.approx(55.0)
    assert math.isnan(built.values.loc[index, "COCO-Stuff"])


def test_failed_and_missing_evaluations_are_named_in_their_cells(runs: pd.DataFrame) -> None:
    assert row_of(table(runs, "ade20k").frame, "croc-a")["ADE20K"] == "failed"
    assert row_of(table(runs, "ade20k").frame, "dino-a")["ADE20K"] == "missing"
    unsup = table(runs, "unsup").frame
    croc = row_of(unsup, "croc-a")
    assert [croc[c] for c in ("PVOC12", "COCO-Things", "COCO-Stuff", "Average")] == [
        "30.0 ± 1.0", "20.0 ± 2.0", "10.0 ± 3.0", "20.0"]
    dino = row_of(unsup, "dino-a")
    assert [dino[c] for c in ("PVOC12", "COCO-Things", "Average")] == ["failed", "missing", "n/a"]
    assert row_of(unsup, "random:vit_tiny:16:0")["PVOC12"] == "2.0 ± 0.5"  # evaluated under the sweep run


def test_davis_table_compares_croc_dino_and_random_init(runs: pd.DataFrame) -> None:
    frame = table(runs, "davis").frame
    assert [row_of(frame, "croc-a")[c] for c in ("J&F", "J-mean", "F-mean")] == ["40.0", "38.0", "42.0"]
    assert row_of(frame, "dino-a")["J&F"] == "missing"
    assert row_of(frame, "random:vit_tiny:16:0")["J&F"] == "10.0"


def test_lambda_ablation_rows_are_the_runs_differing_in_lambda_only_sorted_numerically(runs: pd.DataFrame) -> None:
    built = table(runs, "ablation_lambda_pos")
    assert built.axis == ["0.0", "2.0", "4.0", "10.0"]  # dino-a (another recipe) is not a row
    assert list(built.frame["Run"]) == ["croc-l0.0", "croc-l2.0", "croc-a", "croc-l10.0"]
    assert list(built.frame["PVOC12 linear"]) == ["42.0", "43.0", "50.0", "41.0"]
    assert list(built.frame["PVOC12 unsup"]) == ["21.0", "21.5", "30.0", "20.5"]
    assert list(built.frame["COCO-Stuff linear"]) == ["missing"] * 3 + ["missing"]
    assert built.note == ""


def test_an_ablation_nobody_ran_is_an_empty_table_with_a_note(runs: pd.DataFrame) -> None:
    built = table(runs, "ablation_k")
    assert built.frame.empty and "clustering.n_init" in built.note


def subject(key: str, params: dict[str, str]) -> Subject:
    return Subject(key, "croc", "synthetic", key, "FINISHED", params)


def test_ablation_falls_back_to_every_run_when_the_recipes_also_differ() -> None:
    runs = [subject("a", {"method.tokens": "keys", "seed": "0"}), subject("b", {"method.tokens": "last", "seed": "1"})]
    rows, note = ablation_rows(runs, "method.tokens")
    assert [s.key for s in rows] == ["a", "b"] and "differ in other parameters" in note
    same = [subject("c", {"method.tokens": "keys", "name": "c"}), subject("d", {"method.tokens": "keys", "name": "d"})]
    assert ablation_rows(same, "method.tokens") == ([], "no pre-training runs differ in method.tokens")


def test_tokens_sort_in_the_papers_order_and_numbers_numerically() -> None:
    tokens = sorted(["values", "keys", "last", "queries"], key=lambda v: ablation_sort_key("method.tokens", v))
    assert tokens == ["last", "queries", "keys", "values"]
    assert sorted(["12", "4", "100"], key=lambda v: ablation_sort_key("clustering.n_init", v)) == ["4", "12", "100"]


def test_average_is_over_present_cells_and_na_without_any() -> None:
    assert average_cell([Cell("ok", 10.0), Cell("failed"), Cell("ok", 20.0)]).text() == "15.0 (2/3)"
    assert average_cell([Cell("missing"), Cell("failed")]).text() == "n/a"


def test_runs_selection_keeps_the_named_rows_and_flags_unknown_names(runs: pd.DataFrame) -> None:
    comparison = compare_runs(runs, EXPERIMENT, ["dino-a", "random init", "nope"], ["linear"])
    frame = comparison.tables[0].frame
    assert list(frame["Run"]) == ["dino-a", "random:vit_tiny:16:0", "nope"]
    assert row_of(frame, "nope")["PVOC12"] == "missing"
    assert any("nope" in w for w in comparison.warnings)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("compare")(compare)
    app.command("noop")(lambda: None)  # two commands: `compare` stays a subcommand, as in the real CLI
    return app


def test_cli_prints_writes_markdown_csv_and_charts(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli(), ["compare", "--experiment", EXPERIMENT, "--tracking-uri", store.uri,
                                        "--out", str(out), "--tables", "linear,ablation_lambda_pos", "--plot"])
    assert result.exit_code == 0, result.output
    assert "Table 1" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "ablation_lambda_pos.csv", "ablation_lambda_pos.md", "ablation_lambda_pos.png",
        "linear.csv", "linear.md", "linear.png"]
    markdown = (out / "linear.md").read_text()
    assert "| croc | synthetic | croc-a | 50.0 | 60.0 | missing | 55.0 (2/3) |" in markdown
    assert pd.read_csv(out / "linear.csv")["Average"].tolist()[-1] == "4.0"
    (logged,) = store.client.search_runs([store.experiment_id], "tags.`croc.kind` = 'compare'")
    assert {a.path for a in store.client.list_artifacts(logged.info.run_id)} == {"charts", "tables"}
    again = CliRunner().invoke(cli(), ["compare", "--experiment", EXPERIMENT, "--tracking-uri", store.uri,
                                       "--out", str(out), "--tables", "linear", "--plot"])
    assert again.exit_code == 0, again.output
    (reused,) = store.client.search_runs([store.experiment_id], "tags.`croc.kind` = 'compare'")
    assert reused.info.run_id == logged.info.run_id and reused.info.status == "FINISHED"  # no new run per call
    assert logged.info.run_id in again.output


def test_cli_names_an_unknown_experiment_and_lists_the_existing_ones(store: Store) -> None:
    result = CliRunner().invoke(cli(), ["compare", "--experiment", "nope", "--tracking-uri", store.uri])
    assert result.exit_code == 2
    assert "nope" in result.output and EXPERIMENT in result.output


def test_cli_rejects_an_unknown_table(store: Store) -> None:
    result = CliRunner().invoke(cli(), ["compare", "--experiment", EXPERIMENT, "--tracking-uri", store.uri,
                                        "--tables", "linear,table9"])
    assert result.exit_code == 2 and "table9" in result.output


def test_an_unfinished_pretraining_run_without_evaluations_says_why() -> None:
    column = MAIN_SPECS["linear"].columns[0]
    states = {status: cell_for(Subject("r1", "croc", "synthetic", "r1", status), column).text()
              for status in ("FAILED", "KILLED", "RUNNING", "FINISHED")}
    assert states == {"FAILED": "failed", "KILLED": "stopped", "RUNNING": "running", "FINISHED": "missing"}


def test_cli_names_a_missing_sqlite_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["compare", "--experiment", EXPERIMENT, "--tracking-uri",
                                        f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and "none.db" in result.output
    assert not (tmp_path / "none.db").exists()


def test_the_cli_offers_every_table() -> None:
    assert TABLE_CHOICES == TABLE_NAMES


def test_a_table_without_any_value_is_one_line_and_marked_in_its_file(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli(), ["compare", "--experiment", EXPERIMENT, "--tracking-uri", store.uri,
                                        "--out", str(out), "--tables", "ade20k,ablation_tokens"])
    assert result.exit_code == 0, result.output
    assert "Table 2: linear segmentation on ADE20K, mIoU (%): no values" in " ".join(result.output.split())
    assert "failed" not in result.output  # the cells are not printed
    table_name = "ade20k"
    assert "no values" in (out / f"{table_name}.md").read_text()


def test_the_bar_chart_draws_the_std_as_error_bars(runs: pd.DataFrame) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.compare.render import _bar_figure

    built = table(runs, "unsup")
    croc = built.frame.index[built.frame["Run"] == "croc-a"][0]
    assert built.errors is not None and built.errors.loc[croc].notna().any()  # the stds behind "mean ± std"
    figure = _bar_figure(plt, built)
    bars_with_errors = [c for c in figure.axes[0].containers if getattr(c, "errorbar", None) is not None]
    plt.close(figure)
    assert bars_with_errors  # one error-bar set per run that has a std


def test_a_column_measured_on_the_synthetic_stand_in_says_so(tmp_path: Path) -> None:
    s = Store(tmp_path)
    run = s.pretrain("croc-s", "croc")
    voc = s.evaluation(run, "linear", "voc", linear(0.30))
    things = s.evaluation(run, "linear", "coco_things", linear(0.20))
    s.client.set_tag(voc, "croc.eval_synthetic", "true")  # as the evaluation task tags it
    s.client.set_tag(things, "croc.eval_synthetic", "false")
    (built,) = compare_runs(load_runs(s.uri, EXPERIMENT), EXPERIMENT, None, ["linear"]).tables
    columns = list(built.frame.columns)
    assert "PVOC12 (synthetic)" in columns and "COCO-Things" in columns  # the real dataset's column unmarked
    assert "Average (synthetic)" in columns  # an average over a synthetic cell
    assert "synthetic benchmark" in built.note
    assert row_of(built.frame, "croc-s")["PVOC12 (synthetic)"] == "30.0"


def test_evaluation_requests_tag_the_synthetic_stand_in(tmp_path: Path) -> None:
    from pipelines.config import load_config
    from pipelines.evaluate.requests import on_synthetic_stand_in

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "experiments/synthetic/smoke.yaml", [f"evaluation.datasets.coco={tmp_path}"])
    assert cfg.evaluation.datasets.synthetic
    assert on_synthetic_stand_in(cfg, "linear:voc") and on_synthetic_stand_in(cfg, "davis")
    assert not on_synthetic_stand_in(cfg, "unsup:coco_things")  # its root is given: the real dataset
    paper = load_config(root / "experiments/paper/coco.yaml")
    assert not on_synthetic_stand_in(paper, "linear:voc")
