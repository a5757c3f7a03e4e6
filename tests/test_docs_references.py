"""Every reference to a document in the code, the configs and the docs names a file of this repository.

Scanned: the Markdown files (README.md files, docs/, experiments/), the YAML files (experiments/, platform/,
docker/) and the Python files of croc/, pipelines/ and tests/. Checked in each:
- `docs/<name>.md` and any other `folder/<name>.md` path: the file exists (from the repository root, or from the
  referring file's folder);
- Markdown links `[text](target)` to anything but a URL: the target exists, relative to the referring file;
- bare `<name>.md` names: the file exists beside the referring file or at the repository root;
- nothing points outside the repository: no sibling `shared` folder, and no relative path that leaves the root.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE_FOLDER = "../" + "shared"  # the sibling folder of background material (spelt in parts: the file scans itself)
SCANNED = {".md": ("docs", "experiments", "platform", "docker"), ".yaml": ("experiments", "platform", "docker"),
           ".yml": ("experiments", "platform", "docker"), ".py": ("croc", "pipelines", "tests")}
# Names that are not references: files a test writes, or outputs a command produces.
NOT_REFERENCES = {
    ("tests/pipelines/test_compare.py", "linear.md"),  # `croc compare` writes <table>.md
    ("tests/pipelines/test_compare.py", "ablation_lambda_pos.md"),
    ("tests/croc/data/conftest.py", "readme.md"),  # a non-image file the reader must skip
}

MD_PATH = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*(?:[\w-][\w.-]*/)+[\w.-]+\.md)\b")
BARE_MD = re.compile(r"(?<![\w/.<>{}-])([\w][\w.-]*\.md)\b")
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
PARENT_PATH = re.compile(r"(?<![\w/.-])((?:\.\./)+[\w.-][\w./-]*)")
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, runs:, ...


def scanned_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for suffix, folders in SCANNED.items():
        for folder in folders:
            files += sorted((ROOT / folder).rglob(f"*{suffix}"))
    return [f for f in dict.fromkeys(files) if f.resolve() != Path(__file__).resolve()]


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def reference_problems(text: str, source: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the document references of `text`, read as the file `source` of the repository `root`."""
    relative = source.relative_to(root).as_posix()
    here = source.parent
    problems = []

    def missing(reference: str, *candidates: Path) -> None:
        if not any(c.exists() for c in candidates):
            problems.append(f"{relative}: {reference!r} names no file of the repository")

    if OUTSIDE_FOLDER in text:
        problems.append(f"{relative}: refers to {OUTSIDE_FOLDER}, outside the repository")
    for match in PARENT_PATH.finditer(text):
        if not (here / match.group(1)).resolve().is_relative_to(root.resolve()):
            problems.append(f"{relative}: {match.group(1)!r} points outside the repository")
    for match in MD_PATH.finditer(text):
        path = match.group(1)
        missing(path, root / path, here / path)
    for match in BARE_MD.finditer(text):
        name = match.group(1)
        if (relative, name) not in NOT_REFERENCES:
            missing(name, here / name, root / name)
    if source.suffix == ".md":
        for match in MD_LINK.finditer(text):
            target = match.group(1).split("#", 1)[0]
            if not target or URL.match(target):
                continue
            if target.startswith("/") or not (here / target).resolve().is_relative_to(root.resolve()):
                problems.append(f"{relative}: link {target!r} points outside the repository")
            else:
                missing(target, here / target)
    return problems


def test_every_document_reference_names_a_file_of_the_repository() -> None:
    problems = [p for f in scanned_files() for p in reference_problems(f.read_text(encoding="utf-8"), f)]
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_the_scan_covers_the_docs_the_code_and_the_configs() -> None:
    names = {f.relative_to(ROOT).as_posix() for f in scanned_files()}
    for expected in ("README.md", "docs/architecture.md", "docs/datasets.md", "docs/evaluation.md",
                     "docs/benchmarks.md", "experiments/eval/paper.yaml", "pipelines/tracking.py",
                     "croc/eval/linear_probe.py", "tests/test_layout.py"):
        assert expected in names


@pytest.mark.parametrize(("text", "name"), [
    ("See docs/" + "missing.md for the layouts.", "docs/" + "missing.md"),
    ("the run hierarchy of design.md", "design.md"),
    ("[the protocols](nowhere.md#metrics)", "nowhere.md"),
    ("as " + OUTSIDE_FOLDER + "/docs/" + "eval-protocols.md specifies", OUTSIDE_FOLDER),
    ("[up](../../outside.md)", "outside"),
])
def test_a_bad_reference_is_reported(text: str, name: str) -> None:
    problems = reference_problems(text, ROOT / "docs" / "example.md")
    assert problems and any(name in p for p in problems), problems


def test_existing_references_pass() -> None:
    text = ("docs/datasets.md, [evaluation](evaluation.md#metrics), architecture.md, README.md, "
            "[site](https://example.org/x.md), experiments/README.md")
    assert reference_problems(text, ROOT / "docs" / "example.md") == []
