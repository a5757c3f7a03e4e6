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


# pipelines/ imports point downwards: cli -> sweep, bench -> train -> evaluate -> the shared modules -> croc.
# compare/ sits beside evaluate (it reads MLflow only). A module may import its own sub-package's modules.
PIPELINES_LAYERS = {"cli": 5, "sweep": 4, "bench": 4, "train": 3, "evaluate": 2, "compare": 2, "tracking": 1,
                    "cluster": 1, "datasets": 1, "terminal": 1, "backbone_model": 1, "config": 0}


def project_imports() -> dict[str, set[str]]:
    """Every module of croc/ and pipelines/ -> the project modules it imports, at any depth (function-level imports
    included: a lazy import still points one way)."""
    import ast

    modules = {}
    for folder in ("croc", "pipelines"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
                    break  # `from a.b import c`: the module c if it is one, else a.b
        graph[name] = found
    return graph


def test_no_two_modules_import_each_other() -> None:
    graph = project_imports()
    cycles = []

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    for module, targets in graph.items():
        for target in targets:
            if reaches(target, module) and not module.startswith(f"{target}."):  # a package exports its modules
                cycles.append(f"{module} -> {target}")
    assert not cycles, cycles


def test_pipelines_imports_point_downwards() -> None:
    upward = []
    for module, targets in project_imports().items():
        if not module.startswith("pipelines."):
            continue
        part = module.split(".")[1]
        for target in targets:
            if target.startswith("pipelines.") and target.split(".")[1] != part:
                mine, theirs = PIPELINES_LAYERS[part], PIPELINES_LAYERS[target.split(".")[1]]
                if theirs > mine or (theirs == mine and mine > 1):  # the shared modules may use each other
                    upward.append(f"{module} -> {target}")
    assert not upward, upward
