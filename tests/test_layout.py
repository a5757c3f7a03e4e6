"""Standing rules of the layout: croc/ stays free of ray and mlflow; platform/ is no Python package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_croc_imports_neither_ray_nor_mlflow() -> None:
    modules = sorted(p.stem for p in (ROOT / "croc").glob("*.py") if p.stem != "__init__")
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module('croc.' + m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow', 'pipelines', 'typer', 'pydantic')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_platform_is_the_standard_library() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.__file__)"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in out


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert readme[1].startswith("make demo") and readme[2].startswith("make test")
    assert "make test" in (ROOT / ".ci" / "run").read_text()
