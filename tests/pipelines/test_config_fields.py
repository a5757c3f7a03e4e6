"""Every setting of the typed config tree reaches the object that uses it: none is silently ignored.

The test walks every leaf of `PretrainConfig`, overrides it from its default to another valid value (chosen from its
type, its choices and its bounds) and checks that the change arrives:
- settings of the method, the augmentation, the data pipeline and the evaluation protocols: in the objects the
  platform builds from the config and hands to croc/ or Ray Data (TrainConfig, Photometric, DataSettings,
  EvalProtocol), compared field by field before and after;
- platform settings read straight from the tree (resources, checkpoint, tracking, ...): the override lands on the
  tree, and the code that runs a job reads that key (its attribute is accessed outside pipelines/config/).
It also checks that each generated section's defaults are the croc dataclass's own.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from pipelines.config import PretrainConfig, load_config
from pipelines.config.from_dataclass import DataclassSection
from pipelines.datasets import dataset_roots, synthetic_benchmark_dir
from pipelines.evaluate.protocol import protocol_of

ROOT = Path(__file__).resolve().parents[2]

# settings whose generic alternative breaks a rule across keys: a valid value chosen by hand
BY_HAND: dict[str, list[str]] = {
    "name": ["name=other"],
    "data.source": ["data.source=shards", "data.shard_dir=/elsewhere/shards"],
    "data.image_size": ["data.image_size=160"],
    "evaluation.linear.image_size": ["evaluation.linear.image_size=224"],
    "evaluation.linear.ade20k_crop_size": ["evaluation.linear.ade20k_crop_size=256"],
    "evaluation.unsup.image_size": ["evaluation.unsup.image_size=224"],
    "evaluation.tasks": ["evaluation.tasks=[davis]"],
    "evaluation.linear.epochs": ["evaluation.linear.epochs={voc: 3}"],
    "tracking.tracking_uri": ["tracking.tracking_uri=sqlite:////elsewhere/other.db"],
}

# the objects built from the config for croc/ and Ray Data, by the longest key prefix they consume
BUILT: dict[str, Any] = {
    "model": lambda cfg: cfg.to_train_config(),
    "method": lambda cfg: cfg.to_train_config(),
    "clustering": lambda cfg: cfg.to_train_config(),
    "optim": lambda cfg: cfg.to_train_config(),
    "data.image_size": lambda cfg: (cfg.to_train_config(), cfg.data_settings("/s"), cfg.photometric()),
    "data.photometric": lambda cfg: cfg.photometric(),
    "data.global_scale": lambda cfg: cfg.data_settings("/s"),
    "data.decode_rows": lambda cfg: cfg.data_settings("/s"),
    "data.shuffle_buffer": lambda cfg: cfg.data_settings("/s"),
    "data.prefetch_batches": lambda cfg: cfg.data_settings("/s"),
    "seed": lambda cfg: cfg.data_settings("/s"),
    "data.synthetic": lambda cfg: (cfg.data.synthetic.spec(), str(synthetic_benchmark_dir(cfg))),
    **{f"evaluation.datasets.{root}": dataset_roots for root in ("voc", "coco", "ade20k", "davis")},
    "evaluation.classes": lambda cfg: protocol_of(cfg.evaluation),
    "evaluation.linear": lambda cfg: protocol_of(cfg.evaluation),
    "evaluation.unsup": lambda cfg: protocol_of(cfg.evaluation),
    "evaluation.davis": lambda cfg: protocol_of(cfg.evaluation),
}


def _section_type(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def leaves(model: type[BaseModel] = PretrainConfig, prefix: str = "") -> list[tuple[str, Any]]:
    """Every settable key of the tree (dotted) with its annotation."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = _section_type(field.annotation)
        out += leaves(section, key + ".") if section else [(key, field.annotation)]
    return out


def _value_of(cfg: BaseModel, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_yaml(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def alternative(annotation: Any, value: Any) -> Any:
    """A valid value other than `value`, from the type (and the bounds every setting here respects: halving a
    positive number keeps it in its range, one more than a count stays a count)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    kind = next(a for a in typing.get_args(annotation) if a is not type(None)) if union else annotation
    if typing.get_origin(kind) is Literal:
        return next(choice for choice in typing.get_args(kind) if choice != value)
    if value is None:
        return {int: 2, float: 1.5, str: "/elsewhere/folder"}[kind]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        return "/elsewhere/" + Path(value).name if value.startswith("/") else value + "-other"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):  # e.g. seeds: one fewer
        return value[:-1] if len(value) > 1 else (*value, value[-1] + 1)
    if isinstance(value, tuple):
        return tuple(v / 2 for v in value)
    if isinstance(value, list):
        return value[:1] if len(value) > 1 else [*value, value[-1] * 2]
    raise AssertionError(f"no alternative for {value!r} ({annotation})")


def _consumer(key: str) -> Any:
    matches = [prefix for prefix in BUILT if key == prefix or key.startswith(prefix + ".")]
    return BUILT[max(matches, key=len)] if matches else None


def _fields(obj: Any) -> Any:
    """Built objects -> comparable plain values (dataclasses recursively)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _fields(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_fields(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _fields(v) for k, v in obj.items()}
    return obj


def _platform_code() -> str:
    files = [p for p in (ROOT / "pipelines").rglob("*.py") if "config" not in p.relative_to(ROOT / "pipelines").parts]
    return "\n".join(p.read_text() for p in files)


DEFAULT = load_config(None, ["name=t"])
LEAVES = leaves()


def test_the_walk_covers_the_whole_tree():
    keys = [key for key, _ in LEAVES]
    assert len(keys) == len(set(keys)) > 100
    for expected in ("clustering.n_centroids_max", "evaluation.unsup.batch_size", "evaluation.linear.epochs",
                     "data.photometric.blur_scales_with_view", "optim.compile", "resources.max_failures"):
        assert expected in keys


@pytest.mark.parametrize(("key", "annotation"), LEAVES, ids=[key for key, _ in LEAVES])
def test_an_override_reaches_the_object_that_uses_it(key: str, annotation: Any):
    overrides = BY_HAND.get(key) or [f"{key}={_yaml(alternative(annotation, _value_of(DEFAULT, key)))}"]
    cfg = load_config(None, ["name=t", *overrides])
    assert _value_of(cfg, key) != _value_of(DEFAULT, key), f"{overrides} did not change {key}"
    consumer = _consumer(key)
    if consumer is not None:
        assert _fields(consumer(cfg)) != _fields(consumer(DEFAULT)), f"{key}: the built objects ignore {overrides}"
        return
    # read straight from the tree: some code outside pipelines/config/ reads this key
    section, _, leaf = key.rpartition(".")
    owner = section.rpartition(".")[2] or "cfg"
    pattern = rf"\b{re.escape(owner)}\.{re.escape(leaf)}\b" if section else rf"\bcfg\.{re.escape(leaf)}\b"
    assert re.search(pattern, _platform_code()), f"{key}: no code outside pipelines/config/ reads it"


def _generated_sections(model: type[BaseModel] = PretrainConfig) -> list[type[DataclassSection]]:
    out = []
    for field in model.model_fields.values():
        section = _section_type(field.annotation)
        if section is None:
            continue
        if issubclass(section, DataclassSection):
            out.append(section)
        out += _generated_sections(section)
    return out


@pytest.mark.parametrize("section", _generated_sections(), ids=lambda s: s.__name__)
def test_generated_sections_take_their_defaults_from_the_dataclass(section: type[DataclassSection]):
    built = section.dataclass_type()  # the dataclass's own defaults
    defaults = {f.name: getattr(built, f.name) for f in dataclasses.fields(built)}
    for name, value in section().model_dump().items():
        if name in defaults and name not in section.platform_fields:
            assert _fields(defaults[name]) == _fields(value), f"{section.__name__}.{name}"
