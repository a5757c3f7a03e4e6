"""Standing rules of the layout: croc/ (sub-packages included) never imports ray or mlflow; platform/ is no package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def croc_modules() -> list[str]:
    """Every module of croc/, its sub-packages (croc.data, croc.eval, ...) included, as dotted names."""
    names = []
    for path in sorted((ROOT / "croc").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_layering_check_sees_the_sub_packages() -> None:
    modules = croc_modules()
    assert {"croc", "croc.data", "croc.eval", "croc.data.shards", "croc.eval.tasks", "croc.model"} <= set(modules)


def test_croc_imports_neither_ray_nor_mlflow() -> None:
    modules = croc_modules()
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
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
