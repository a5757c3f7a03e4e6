"""What the user's terminal gets: our progress and summaries, never paths broken across lines; Ray's internals
only with `croc --verbose` (they are always in Ray's log files, /tmp/ray/session_latest/logs)."""

from __future__ import annotations

import os

from rich.console import Console

VERBOSE_ENV = "CROC_VERBOSE"


def make_console(stderr: bool = False) -> Console:
    """A rich console that never wraps printed text: a path or a URI stays whole when output is not a terminal
    (rich would break it at 80 columns), so it can be copied from a log."""
    return Console(stderr=stderr, soft_wrap=True)


def set_verbose(verbose: bool) -> None:
    if verbose:
        os.environ[VERBOSE_ENV] = "1"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")
