"""Load, override, dump and hash the platform's typed config (the tree itself is in pipelines/config/schema.py).

    cfg = load_config("experiments/paper/coco.yaml", ["optim.lr=1e-3", "data.global_scale=[0.3,1.0]"])
    trial = apply_overrides(cfg, {"clustering.lambda_pos": 3.0})   # a Tune trial

Every problem is a `ConfigError` (an `InputError`) whose message lists each bad key as
`<dotted.key>: <problem> (got <value>)`, with what is allowed: the keys of that section, the literal values, the
bound. Values are read as YAML 1.2 scalars (`1e-3` is a float, as in the YAML 1.2 spec; PyYAML alone reads a string).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from croc.errors import InputError
from pipelines.config.base import check_name
from pipelines.config.schema import PretrainConfig

_FLOAT_1_2 = re.compile(r"""^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+
                           |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$""", re.X)


class ConfigError(InputError):
    """The config (file, override or value) is not acceptable; the message names the key, value and what's allowed."""


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 exponent floats (1e-3) and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section(keys: Iterable[str | int]) -> type[BaseModel] | None:
    """The model class at a key path (list indices skipped), or None when the path leaves the tree."""
    model: type[BaseModel] = PretrainConfig
    for key in keys:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(key)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _allowed_keys(keys: Iterable[str | int]) -> str:
    keys = list(keys)
    model = _section(keys)
    where = _dotted(keys) or "the top level"
    return f"allowed in {where}: {', '.join(model.model_fields)}" if model else f"{where} takes no keys"


def _problem_lines(error: ValidationError, overridden: list[str]) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        loc, kind = item["loc"], item["type"]
        key = _dotted(loc)
        if kind == "config_rule":
            line = item["msg"]
        elif kind == "setting":  # a check of a croc settings dataclass, on the field it names
            key = _dotted((*loc, item["ctx"]["key"]))
            line = f"{key}: {item['ctx']['rule']} (got {_show(item['ctx']['value'])})"
        elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
            line = f"{key}: unknown key; {_allowed_keys(loc[:-1])} (got {_show(item['input'])})"
        elif kind == "missing":
            line = f"{key}: required" + (" (set it in the file or as an override name=...)" if key == "name" else "")
        else:
            line = f"{key}: {item['msg'].removeprefix('Value error, ')} (got {_show(item['input'])})"
        from_override = [k for k in overridden if k == key or key.startswith((k + ".", k + "["))
                         or (kind == "config_rule" and "." in k and k in line)]
        lines.append(line + (" [override]" if from_override else ""))
    return lines


def parse_override(text: str) -> tuple[str, Any]:
    """"optim.lr=1e-3" -> ("optim.lr", 0.001): the value is read as YAML (numbers, booleans, lists, null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected <dotted.key>=<value>, e.g. optim.lr=1e-3")
    try:
        return key, yaml.load(raw, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}={raw}: the value is not valid YAML ({exc})") from None


def _check_key_path(key: str, value: Any) -> list[str]:
    """Split a dotted key and check each part against the tree; an unknown part names the keys allowed there."""
    parts = key.split(".")
    for depth, part in enumerate(parts):
        parent = parts[:depth]
        model = _section(parent)
        if model is None:
            raise ConfigError(f"override {key}={_show(value)}: {_dotted(parent)} is a value, not a section; "
                              f"set {_dotted(parent)}=<value>")
        if part not in model.model_fields:
            raise ConfigError(f"override {key}={_show(value)}: unknown key {_dotted([*parent, part])!r}; "
                              f"{_allowed_keys(parent)}")
    return parts


def _set(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = tree.get(part)
        if child is None:
            child = tree[part] = {}
        elif isinstance(child, dict):
            child = tree[part] = dict(child)
        else:
            return  # a section given as a non-mapping: left for validation to report
        tree = child
    tree[parts[-1]] = value


def _drop_empty_sections(tree: dict[str, Any], parents: tuple[str, ...] = ()) -> dict[str, Any]:
    """`tracking:` with every key commented out reads as None: an empty section, i.e. all defaults."""
    out = {}
    for key, value in tree.items():
        is_section = isinstance(key, str) and _section((*parents, key)) is not None
        if is_section and value is None:
            continue
        out[key] = _drop_empty_sections(value, (*parents, key)) if is_section and isinstance(value, dict) else value
    return out


def _override_items(overrides: Mapping[str, Any] | Iterable[str]) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        overrides = [overrides]
    return [parse_override(text) for text in overrides]


def _build(raw: dict[str, Any], overrides: Mapping[str, Any] | Iterable[str], source: str | None) -> PretrainConfig:
    items = _override_items(overrides)
    tree = _drop_empty_sections(copy.deepcopy(raw))
    for key, value in items:
        _set(tree, _check_key_path(key, value), value)
    try:
        return PretrainConfig.model_validate(tree)
    except ValidationError as exc:
        where = f" in {source}" if source else ""
        given = f" with overrides {' '.join(f'{k}={_show(v, 40)}' for k, v in items)}" if items else ""
        lines = _problem_lines(exc, [k for k, _ in items])
        raise ConfigError(f"invalid config{where}{given}: {len(lines)} problem(s)\n"
                          + "\n".join(f"  - {line}" for line in lines)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" + (" (a directory)" if path.is_dir() else ""))
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot be read: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections at the top level, "
                          f"got {type(data).__name__}")
    return data


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | Iterable[str] = ()) -> PretrainConfig:
    """A YAML file (None = all defaults), then dotted `key=value` overrides -> the validated config."""
    raw = _read_yaml(Path(path)) if path is not None else {}
    return _build(raw, overrides, str(path) if path is not None else None)


def apply_overrides(cfg: PretrainConfig, overrides: Mapping[str, Any] | Iterable[str]) -> PretrainConfig:
    """A new config with dotted overrides: {"optim.lr": 1e-3} (typed values, e.g. from Tune) or ["optim.lr=1e-3"]."""
    return _build(cfg.model_dump(), overrides, f"config {cfg.name!r}")


def check_run_name(value: str, source: str = "run name") -> str:
    """A run name given apart from the config (`--run-name`, the API): the config's own `name` rule, checked before
    anything starts; the error names where it came from (`source`) and the rule."""
    try:
        return check_name(value)
    except ValueError as error:
        raise ConfigError(f"{source} {value!r}: {error}") from None


def dump_config(cfg: PretrainConfig) -> str:
    """YAML of the resolved config (every key, paths absolute); `load_config` of it gives an equal config."""
    body = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, default_flow_style=False, width=120)
    return f"# croc config {cfg.name}, hash {config_hash(cfg)}\n{body}"


WHERE_NOT_WHAT = ({"checkpoint": {"storage_path"}}, {"tracking": {"tracking_uri"}})


def config_hash(cfg: PretrainConfig) -> str:
    """First 12 hex digits of the sha256 of the resolved config's canonical JSON.

    Where a run writes (checkpoint storage, tracking store) is left out: the same experiment hashes the same on
    every machine and from every working directory.
    """
    resolved = cfg.model_dump(mode="json")
    for exclusion in WHERE_NOT_WHAT:
        for section, keys in exclusion.items():
            for key in keys:
                resolved[section].pop(key, None)
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 5e-4}} -> {"optim.lr": 5e-4}: nested mappings to dotted keys, leaves as they are."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def flat_params(cfg: PretrainConfig) -> dict[str, str]:
    """{"optim.lr": "0.0005", "data.global_scale": "[0.25, 1.0]", ...}: the whole config as MLflow params."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flatten(cfg.model_dump(mode="json")).items()}
