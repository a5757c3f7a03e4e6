"""Where the commands' default configs are: the repository's experiments/ folder."""

from __future__ import annotations

from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
