"""A sweep file (experiments/ablations/*.yaml): a base pre-training config, fixed overrides, a search space over
dotted config keys, and how Tune runs it. Every trial's config is validated before Ray starts.

    name: ablation-k
    base: ../paper/coco.yaml              # relative to this file
    overrides: {method.tokens: keys}      # applied to every trial
    search_space:
      clustering.n_init: {grid: [4, 8, 12, 16]}
    max_concurrent_trials: 1
    scheduler: {type: asha, metric: unsup:voc, grace_period: 1}   # optional early stopping
    baselines: [random:vit_small]         # evaluated once, on the base config's tasks
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from croc.errors import InputError
from croc.eval.registry import headline_metric
from pipelines.config import PretrainConfig, apply_overrides, load_config
from pipelines.config.base import Section, check_name, rule_error
from pipelines.config.evaluation import EVAL_TASKS


class SearchSpec(Section):
    """Exactly one of: grid (every value, one trial each), choice, uniform, loguniform, randint (sampled)."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchSpec:
        given = [k for k in ("grid", "choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise rule_error(f"a search space entry needs exactly one of grid, choice, uniform, loguniform, "
                             f"randint (got {given or 'none'})")
        values = self.grid if self.grid is not None else self.choice
        if values is not None and not values:
            raise rule_error("grid / choice needs at least one value")
        bounds = self.uniform or self.loguniform or self.randint
        if bounds is not None and not bounds[0] < bounds[1]:
            raise rule_error(f"{given[0]} needs [low, high] with low < high (got {list(bounds)})")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise rule_error(f"loguniform needs low > 0 (got {list(self.loguniform)})")
        return self

    def examples(self) -> list[Any]:
        """The values to validate the config with: every listed value, or both ends of a range."""
        listed = self.grid if self.grid is not None else self.choice
        if listed is not None:
            return list(listed)
        low, high = self.uniform or self.loguniform or self.randint
        return [low, high - 1] if self.randint else [low, high]

    def sample(self, rng: random.Random) -> Any:
        """One value of a sampled entry (choice, uniform, loguniform, randint: low <= v < high), drawn from `rng`."""
        if self.choice is not None:
            return rng.choice(list(self.choice))
        if self.uniform is not None:
            return rng.uniform(*self.uniform)
        if self.loguniform is not None:
            low, high = self.loguniform
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        if self.randint is not None:
            return rng.randrange(*self.randint)
        raise ValueError("a grid entry is expanded, not sampled")


class SchedulerSection(Section):
    type: Literal["asha"] = "asha"
    metric: str  # an evaluation task of the base config, e.g. unsup:voc; its headline metric drives the scheduler
    mode: Literal["max", "min"] = "max"
    grace_period: int = Field(1, ge=1)  # in intermediate evaluations (checkpoints)
    reduction_factor: int = Field(2, ge=2)
    max_t: int = Field(100, ge=1)

    @field_validator("metric")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in EVAL_TASKS:
            raise ValueError(f"unknown task {value!r}; allowed: {', '.join(EVAL_TASKS)}")
        return value

    @property
    def metric_name(self) -> str:
        return tune_metric(self.metric)


class SweepConfig(Section):
    name: str
    base: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    search_space: dict[str, SearchSpec]
    num_samples: int = Field(1, ge=1)  # repeats of the grid (and samples of the sampled entries)
    max_concurrent_trials: int = Field(1, ge=1)
    scheduler: SchedulerSection | None = None
    baselines: list[str] = Field(default_factory=list)
    storage_path: str | None = None  # Tune's experiment folder's parent; None = the base's checkpoint.storage_path

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        return check_name(value)

    @field_validator("search_space")
    @classmethod
    def _not_empty(cls, value: dict[str, SearchSpec]) -> dict[str, SearchSpec]:
        if not value:
            raise ValueError("needs at least one dotted config key to vary")
        return value


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of the sweep: `key` ('t000', 't001', ...) names its pre-training run `<sweep>-<key>` (MLflow run
    and checkpoint folder), so a resumed sweep finds each trial's records and checkpoints again."""

    key: str
    overrides: dict[str, Any]  # dotted config key -> value, one per search-space entry


def plan_trials(sweep: SweepConfig) -> list[PlannedTrial]:
    """Every trial of the sweep, in order, the same on every call: the grid entries' product, `num_samples` times;
    a sampled entry (choice, uniform, ...) is drawn from a generator seeded by the sweep's name and the trial's index.
    The plan is what a resumed sweep is rebuilt from: nothing is read back from Tune's folder."""
    keys = list(sweep.search_space)
    grid_keys = [k for k in keys if sweep.search_space[k].grid is not None]
    combos = list(itertools.product(*(sweep.search_space[k].grid for k in grid_keys)))
    trials: list[PlannedTrial] = []
    for _ in range(sweep.num_samples):
        for combo in combos:
            index = len(trials)
            rng = random.Random(f"{sweep.name}/{index}")  # str seeds are hashed with sha512: stable across runs
            fixed = dict(zip(grid_keys, combo, strict=True))
            values = {k: fixed[k] if k in fixed else sweep.search_space[k].sample(rng) for k in keys}
            trials.append(PlannedTrial(f"t{index:03d}", values))
    return trials


def tune_metric(task: str) -> str:
    """'unsup:voc' -> 'unsup_voc/miou_mean': the name a task's headline number is reported under to Tune."""
    return f"{task.replace(':', '_')}/{headline_metric(task)}"


def _errors(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def load_sweep(path: str | Path,
               base_overrides: list[str] | tuple[str, ...] = ()) -> tuple[SweepConfig, PretrainConfig]:
    """Read and check a sweep file -> (sweep, base config with the sweep's overrides and the CLI's on top).

    Every trial config the grid (or the ends of each range) can produce is validated now, so a bad value is an
    error before any Ray resource is taken. Trials are tracked in the MLflow experiment named after the sweep.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sweep file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        sweep = SweepConfig.model_validate(raw)
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error})") from error
    except ValidationError as error:
        raise InputError(f"{path}: {_errors(error)}") from error
    base_path = (path.parent / sweep.base).resolve()
    if not base_path.is_file():
        raise InputError(f"{path}: base config {base_path} not found")
    fixed = {**sweep.overrides, "tracking.experiment": sweep.name}
    base = apply_overrides(load_config(base_path, list(base_overrides)), fixed)
    if sweep.scheduler is not None:
        if sweep.scheduler.metric not in base.evaluation.tasks:
            raise InputError(f"{path}: scheduler.metric={sweep.scheduler.metric} is not one of the base config's "
                             f"evaluation.tasks {base.evaluation.tasks}")
        if base.evaluation.after != "all_checkpoints":
            raise InputError(f"{path}: the scheduler acts on intermediate evaluations: set "
                             "evaluation.after: all_checkpoints in overrides")
    keys = list(sweep.search_space)
    for values in itertools.product(*(sweep.search_space[k].examples() for k in keys)):
        try:
            apply_overrides(base, dict(zip(keys, values, strict=True)))
        except InputError as error:
            raise InputError(f"{path}: the trial {dict(zip(keys, values, strict=True))} is not a valid config: "
                             f"{error}") from error
    return sweep, base
