"""Self-checking settings: a dataclass field that carries its own bounds and allowed values.

Every setting of the method and of the evaluations is declared once, in a frozen dataclass of `croc/`, with
`setting(...)`: its default, its bounds (ge / gt / le / lt, applied to each item of a tuple, list or mapping) and,
for a choice, the registry it is drawn from. The dataclass checks itself in `__post_init__` with
`check_settings(self, "<section>")`; the platform's YAML schema (pipelines/config/) is generated from the same
fields, so a default, a bound or a choice is never written twice. No torch here: the CLI imports this to answer
`--help` and to check a config quickly.

    @dataclass(frozen=True)
    class ClusteringConfig:
        n_init: int = setting(12, ge=2)
        cost_normalization: str = setting("problem", choices=COST_NORMALIZATIONS)

        def __post_init__(self) -> None:
            check_settings(self, "clustering")
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from croc.errors import InputError

BOUNDS = {"ge": (operator.ge, "greater than or equal to"), "gt": (operator.gt, "greater than"),
          "le": (operator.le, "less than or equal to"), "lt": (operator.lt, "less than")}


class SettingError(InputError):
    """One setting out of its bounds or its choices; `key` is the field's name, `rule` what it must satisfy."""

    def __init__(self, section: str, key: str, value: Any, rule: str, what: str = ""):
        super().__init__(f"{what + ': ' if what else ''}{section}.{key}={value!r}: {rule}")
        self.key, self.value, self.rule = key, value, rule


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            choices: tuple[Any, ...] | None = None, **bounds: float) -> Any:
    """A dataclass field with its default (or `factory`), its bounds and its allowed values."""
    unknown = set(bounds) - set(BOUNDS)
    if unknown:
        raise TypeError(f"setting(): unknown bound(s) {sorted(unknown)}; allowed {list(BOUNDS)}")
    metadata = {"bounds": bounds, "choices": tuple(choices) if choices is not None else None}
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def same_setting(owner: type, name: str, default: Any = dataclasses.MISSING) -> Any:
    """A field declared like `owner`'s field `name`: its default (unless one is given), bounds and choices, so a
    dataclass that carries the same setting (a run's copy of a protocol constant) does not restate them."""
    field = owner.__dataclass_fields__[name]
    if default is dataclasses.MISSING:
        default = field.default
        if field.default_factory is not dataclasses.MISSING:
            return setting(factory=field.default_factory, choices=choices_of(field), **bounds_of(field))
    return setting(default, choices=choices_of(field), **bounds_of(field))


def bounds_of(field: dataclasses.Field) -> dict[str, float]:
    return dict(field.metadata.get("bounds") or {})


def choices_of(field: dataclasses.Field) -> tuple[Any, ...] | None:
    return field.metadata.get("choices")


def _items(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, (tuple, list)):
        return list(value)
    return [value]


def _rule(bounds: Mapping[str, float]) -> str:
    return " and ".join(f"{BOUNDS[name][1]} {limit:g}" for name, limit in bounds.items())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_settings(obj: Any, section: str, what: str = "") -> None:
    """Raise `SettingError` naming `<section>.<field>` for the first value outside its bounds or choices.

    None is accepted where the field allows it (its type says so); a number must be finite; bounds apply to each
    item of a tuple, a list or a mapping's values. `what` (e.g. "photometric augmentation") opens the message.
    """
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if value is None:
            continue
        choices, bounds = choices_of(field), bounds_of(field)
        if choices is not None and value not in choices:
            raise SettingError(section, field.name, value, "must be one of " + ", ".join(map(repr, choices)), what)
        if not bounds:
            continue
        for item in _items(value):
            if not _is_number(item) or not math.isfinite(item):
                raise SettingError(section, field.name, value, "must be a finite number", what)
            broken = {name: limit for name, limit in bounds.items() if not BOUNDS[name][0](item, limit)}
            if broken:
                raise SettingError(section, field.name, value, f"must be {_rule(bounds)}", what)


def check_pair(section: str, key: str, value: tuple[float, ...], rule: str,
               holds: Callable[[float, float], bool], what: str = "") -> None:
    """A (low, high) pair: two values and a rule across them, e.g. rule "0 < low <= high <= 1"."""
    if len(value) != 2 or not holds(*value):
        raise SettingError(section, key, value, f"must satisfy {rule}", what)
