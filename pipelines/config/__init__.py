"""The platform's typed config: one YAML file -> a checked, frozen tree, before any Ray resource is requested.

    schema.py          the tree (`PretrainConfig`), one pydantic model per section
    evaluation.py      its `evaluation` section (tasks, datasets, protocol constants, resources)
    base.py            what every section shares: the strict base model, names, absolute paths, tracking URIs
    loading.py         YAML + key=value overrides -> the tree; its dump, hash and flat params
    data_settings.py   the Ray Data pipeline's plain settings, built from the tree

Callers load and read configs through this package: `from pipelines.config import PretrainConfig, load_config`.
"""

from pipelines.config.loading import (
    ConfigError,
    apply_overrides,
    check_run_name,
    config_hash,
    dump_config,
    flat_params,
    flatten,
    load_config,
    parse_override,
)
from pipelines.config.schema import EVAL_TASKS, PretrainConfig

__all__ = ["EVAL_TASKS", "ConfigError", "PretrainConfig", "apply_overrides", "check_run_name", "config_hash",
           "dump_config", "flat_params", "flatten", "load_config", "parse_override"]
