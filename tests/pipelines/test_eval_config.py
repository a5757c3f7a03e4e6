"""The evaluation section: protocol defaults, errors that name the key, dataset roots checked before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from croc.errors import InputError
from pipelines.config import load_config
from pipelines.datasets import dataset_roots
from pipelines.evaluate.checks import check_roots
from pipelines.evaluate.protocol import protocol_of
from pipelines.evaluate.requests import EvalSummary, baseline_label
from pipelines.evaluate.results import headline, results_table

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "experiments" / "eval" / "paper.yaml"


def test_paper_defaults_are_the_published_protocols():
    ev = load_config(PAPER).evaluation
    protocol = protocol_of(ev)
    assert (protocol.linear.image_size, protocol.linear.last_n, protocol.linear.lr, protocol.linear.batch_size) == (
        448, 2, 1e-3, 16)
    assert protocol.linear_epochs == {"voc": 45, "coco_things": 10, "coco_stuff": 10}
    assert (protocol.unsup.image_size, protocol.unsup.mask_size, protocol.unsup.pca_dim) == (448, 100, 50)
    assert (protocol.unsup.seeds, protocol.unsup.iterations, protocol.unsup.restarts) == ((0, 1, 2, 3, 4), 100, 5)
    d = protocol.davis
    assert (d.short_side, d.size_multiple, d.temperature, d.n_last_frames, d.neighborhood, d.topk) == (
        480, 64, 0.1, 7, 12, 5)
    assert (protocol.ade20k.iterations, protocol.ade20k.crop_size) == (40_000, 512)


def test_class_rule_reaches_both_segmentation_protocols():
    assert protocol_of(load_config(PAPER).evaluation).unsup.classes == "all"  # the published rule
    protocol = protocol_of(load_config(PAPER, ["evaluation.classes=present"]).evaluation)
    assert protocol.linear.classes == protocol.ade20k.classes == protocol.unsup.classes == "present"
    with pytest.raises(InputError, match=r"evaluation\.classes"):
        load_config(PAPER, ["evaluation.classes=some"])


def test_naming_one_dataset_keeps_the_protocol_epochs_of_the_others():
    ev = load_config(PAPER, ["evaluation.linear.epochs={voc: 3}"]).evaluation
    assert ev.linear.epochs == {"voc": 3, "coco_things": 10, "coco_stuff": 10}


@pytest.mark.parametrize(("override", "named"), [
    ("evaluation.tasks=[linear:kitti]", "linear:kitti"),
    ("evaluation.tasks=[davis, davis]", "listed twice"),
    ("evaluation.linear.image_size=450", "evaluation.linear.image_size=450"),
    ("evaluation.unsup.seeds=[]", "evaluation.unsup.seeds"),
    ("evaluation.davis.topk=0", "evaluation.davis.topk"),
    ("evaluation.network=ema", "evaluation.network"),
])
def test_bad_values_name_the_key(override, named):
    with pytest.raises(InputError, match=named.replace("[", r"\[")):
        load_config(PAPER, [override])


def test_roots_are_checked_before_any_work(tmp_path):
    cfg = load_config(PAPER, [f"evaluation.datasets.davis={tmp_path / 'nowhere'}"])
    with pytest.raises(InputError, match=r"evaluation\.datasets\.voc"):
        check_roots(cfg, ["linear:voc"])
    with pytest.raises(InputError, match="nowhere is not a folder"):
        check_roots(cfg, ["davis"])
    with pytest.raises(InputError, match=r"evaluation\.datasets\.ade20k"):
        check_roots(cfg, ["linear:ade20k"])


def test_synthetic_roots_point_into_the_generated_benchmark(tmp_path):
    out = tmp_path / "bench"
    cfg = load_config(ROOT / "experiments" / "synthetic" / "smoke.yaml",
                      [f"data.synthetic.out_dir={out}", "evaluation.datasets.davis=" + str(tmp_path)])
    roots = dataset_roots(cfg)
    assert roots["voc"] == str(out / "voc") and roots["coco"] == str(out / "coco")
    assert roots["davis"] == str(tmp_path)  # an explicit root wins
    assert (out / "manifest.json").exists()
    check_roots(cfg, ["linear:voc", "unsup:coco_stuff", "davis"])


def test_results_table_shows_headlines_and_failures():
    rows = [EvalSummary("linear:voc", "final", "a", {"miou_best": 0.5, "miou_last": 0.25}),
            EvalSummary("unsup:voc", "final", "b", {"miou_mean": 0.125, "miou_std": 0.01}),
            EvalSummary("davis", "random init", "c", error="LayoutError: no frames")]
    assert headline(rows[0]) == "50.0 (last 25.0)" and headline(rows[1]) == "12.5 ± 1.0"
    table = results_table(rows)
    assert [c.header for c in table.columns] == ["checkpoint", "linear:voc", "unsup:voc", "davis"]
    assert table.row_count == 2
    assert baseline_label("random:vit_tiny:16:0") == "random init" and baseline_label("/x/croc.pth") == "croc.pth"
    assert baseline_label("random:vit_tiny") == "random init"
    assert baseline_label("random:vit_tiny:16:1") == "random init (seed 1)"  # two seeds, two rows
