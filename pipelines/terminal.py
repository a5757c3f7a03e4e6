"""What the user's terminal gets: our progress and summaries, never paths broken across lines; Ray's internals
only with `croc --verbose` (they are always in Ray's log files, /tmp/ray/session_latest/logs)."""

from __future__ import annotations

import logging
import os

from rich.console import Console

VERBOSE_ENV = "CROC_VERBOSE"


def make_console(stderr: bool = False) -> Console:
    """A rich console that never wraps printed text: a path or a URI stays whole when output is not a terminal
    (rich would break it at 80 columns), so it can be copied from a log."""
    return Console(stderr=stderr, soft_wrap=True)


QUIET_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "mlflow")  # their INFO lines: with --verbose only


def set_verbose(verbose: bool) -> None:
    """`croc --verbose`: Ray's internal lines reach the terminal; otherwise the libraries' INFO lines are muted
    (their warnings and errors still show)."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its level from this when imported
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per downloaded backbone
    mute_library_info()


def mute_library_info() -> None:
    """Raise QUIET_LOGGERS to WARNING unless verbose (again after Ray starts: its import configures them)."""
    if verbose():
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")
