"""The evaluation registry: one home for task names, datasets, roots and headlines; torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from croc.errors import InputError
from croc.eval import registry
from croc.eval.settings import EvalProtocol, LinearProbeConfig, LinearProtocol


def test_task_grammar():
    assert registry.parse_task("linear:voc") == ("linear", "voc")
    assert registry.parse_task("davis") == ("davis", "davis")
    assert registry.EVAL_TASKS[-1] == "davis" and "unsup:ade20k" not in registry.EVAL_TASKS
    with pytest.raises(InputError, match=r"linear:kitti.*allowed: linear:voc"):
        registry.parse_task("linear:kitti")
    assert [registry.root_key(t) for t in ("linear:voc", "unsup:coco_stuff", "linear:ade20k", "davis")] == [
        "voc", "coco", "ade20k", "davis"]
    assert registry.headline_metric("unsup:voc") == "miou_mean" and registry.task_dataset("davis") == "davis"
    assert set(registry.HEADLINE) == set(registry.HEADLINE_NAMES) == set(registry.KINDS)
    assert set(registry.SYNTHETIC_ROOTS) < set(registry.ROOT_KEYS)


def test_the_copies_are_the_registry():
    from croc.eval import miou, tasks
    from pipelines.config import evaluation
    from pipelines.evaluate.results import HEADLINE_METRIC
    from pipelines.train.headlines import HEADLINE_NAMES

    assert miou.CLASS_RULES is registry.CLASS_RULES and tasks.HEADLINE is registry.HEADLINE
    assert HEADLINE_METRIC is registry.HEADLINE and HEADLINE_NAMES is registry.HEADLINE_NAMES
    assert evaluation.EVAL_TASKS is registry.EVAL_TASKS
    assert {name: entry[1:] for name, entry in tasks.SEGMENTATION_SETS.items()} == registry.SEGMENTATION_SETS
    assert tuple(evaluation.EvalDatasets.model_fields) == (*registry.ROOT_KEYS, "synthetic")


def test_linear_protocol_is_the_probe_defaults():
    protocol = LinearProtocol()
    assert protocol.probe("voc") == LinearProbeConfig()
    assert protocol.probe("coco_stuff").epochs == 10
    ade = protocol.probe("ade20k", classes="present")
    assert (ade.iterations, ade.crop_size, ade.lrs, ade.eval_every, ade.classes) == (
        40_000, 512, (3e-4, 1e-3, 3e-3), 4000, "present")
    assert LinearProtocol(epochs={"voc": 3}).epochs == {"voc": 3, "coco_things": 10, "coco_stuff": 10}
    default = EvalProtocol()
    assert default.linear_probe("coco_things").epochs == 10 and default.linear_probe("ade20k").iteration_mode


def test_settings_and_registry_import_without_torch():
    code = ("import sys, croc.eval.registry, croc.eval.settings; "
            "assert 'torch' not in sys.modules and 'pydantic' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
