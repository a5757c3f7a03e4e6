"""What every config section shares: the frozen, strict base model, path normalisation and rule errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
NAME = re.compile(r"[A-Za-z0-9_.-]+")  # whole string (fullmatch: a trailing newline is refused too)
NAME_RULE = "must be letters, digits, '-', '_' or '.' (at least one), and not only dots"
SQLITE = "sqlite:///"


def check_name(value: str) -> str:
    """A run / sweep name (the config's `name`, a sweep's `name`, `--run-name`): it becomes a folder under the
    storage path and an MLflow name, so no separator, quote, space or shell character, and not '.' or '..'."""
    if not NAME.fullmatch(value) or not value.strip("."):
        raise ValueError(NAME_RULE)
    return value


def rule_error(message: str) -> PydanticCustomError:
    """A cross-field rule broken; the message names every key involved (it is shown as is)."""
    return PydanticCustomError("config_rule", message)


def absolute_path(value: str) -> str:
    """A local path -> absolute (against the working directory); a URI (s3://, gs://, file://, ...) is kept."""
    if URI.match(value):
        return value
    return str(Path(os.path.expanduser(value)).absolute())


# Tracking stores MLflow can use: database URIs (dialect[+driver]://), a server, Databricks, a local folder (file:)
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc",
                    "uc")


def check_tracking_scheme(uri: str) -> str:
    """A tracking URI whose scheme MLflow cannot store runs in (ftp://, s3://, a typo) is refused at config time."""
    match = URI.match(uri)  # no scheme: a local path, or a bare name such as 'databricks'
    if match is None or match.group().removesuffix("://").split("+", 1)[0].lower() in TRACKING_SCHEMES:
        return uri
    scheme = match.group().removesuffix("://")
    raise ValueError(f"scheme {scheme!r} is not a tracking store MLflow can use; use one of "
                     f"{', '.join(TRACKING_SCHEMES)} (e.g. sqlite:///mlflow.db or http://host:5000), or a local path")


def absolute_tracking_uri(value: str) -> str:
    """sqlite:///relative.db -> sqlite:////abs/relative.db; a plain path -> absolute; other URIs kept."""
    if value.startswith(SQLITE):
        path = value[len(SQLITE):]
        return value if path.startswith("/") or path == ":memory:" else SQLITE + absolute_path(path)
    if ":" in value.split("/", 1)[0] or value in ("databricks", "databricks-uc", "uc"):  # other schemes, Databricks
        return value
    return absolute_path(value)


class Section(BaseModel):
    # allow_inf_nan=False: `.inf` / `.nan` (YAML) or "inf" (an override) are refused for every float setting
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, allow_inf_nan=False)
