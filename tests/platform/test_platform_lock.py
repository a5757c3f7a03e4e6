"""The image installs exactly the project's pins: docker/requirements.lock == pyproject.toml's dependencies, and
the Dockerfile installs from the lock (and nothing else but the project itself, without dependencies)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads pyproject.toml")
ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "docker" / "requirements.lock"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def pyproject_pins() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def lock_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def drift(lock_text: str, pins: list[str]) -> list[str]:
    """What differs between the lock and the pins (empty = none): missing, extra or different requirements."""
    def key(text: str) -> tuple[str, tuple[str, ...], str]:
        req = Requirement(text)
        return canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier)

    locked = {key(line)[0]: key(line) for line in lock_lines(lock_text)}
    pinned = {key(pin)[0]: key(pin) for pin in pins}
    problems = [f"missing in the lock: {name}" for name in pinned.keys() - locked.keys()]
    problems += [f"not in pyproject: {name}" for name in locked.keys() - pinned.keys()]
    problems += [f"{name}: lock {locked[name]} != pyproject {pinned[name]}"
                 for name in pinned.keys() & locked.keys() if locked[name] != pinned[name]]
    return sorted(problems)


def test_every_dependency_is_pinned_exactly() -> None:
    for pin in pyproject_pins():
        specs = list(Requirement(pin).specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{pin}: not an exact pin"


def test_lock_equals_pyproject_pins() -> None:
    assert drift(LOCK.read_text(), pyproject_pins()) == []
    assert len(lock_lines(LOCK.read_text())) == len(pyproject_pins()), "a requirement is listed twice"


def test_drift_is_caught() -> None:
    text = LOCK.read_text()
    assert drift(text.replace("torch==2.14.1", "torch==2.14.0"), pyproject_pins()) != []
    assert drift(text.replace("ray[default,train,tune,data]", "ray[default]"), pyproject_pins()) != []
    assert drift(text + "\nrequests==2.0.0\n", pyproject_pins()) == ["not in pyproject: requests"]
    assert drift(re.sub(r"(?m)^rich==.*$", "", text), pyproject_pins()) == ["missing in the lock: rich"]


def test_dockerfile_installs_from_the_lock() -> None:
    text = DOCKERFILE.read_text()
    assert "COPY docker/requirements.lock" in text
    installs = re.findall(r"pip install [^\n&]*", re.sub(r"\\\n", " ", text))
    assert installs, "the Dockerfile installs nothing with pip"
    from_lock = [cmd for cmd in installs if "-r docker/requirements.lock" in cmd]
    assert from_lock, "no `pip install -r docker/requirements.lock`"
    for cmd in installs:  # anything else is the project itself, without dependencies
        assert cmd in from_lock or ("--no-deps" in cmd and cmd.rstrip().endswith(" .")), cmd


def test_dockerfile_records_image_and_revision() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^ARG BASE_IMAGE=\S+", text) and re.search(r"(?m)^FROM \$\{BASE_IMAGE\}", text)
    for arg in ("IMAGE", "GIT_SHA", "TORCH_INDEX_URL"):
        assert re.search(rf"(?m)^ARG {arg}=", text), arg
    assert "CROC_IMAGE=${IMAGE}" in text and "CROC_GIT_SHA=${GIT_SHA}" in text
    # pipelines/tracking.py reads exactly these two variables
    tracking = (ROOT / "pipelines" / "tracking.py").read_text()
    assert 'os.environ.get("CROC_IMAGE")' in tracking and 'os.environ.get("CROC_GIT_SHA")' in tracking
    assert re.search(r'(?m)^ENTRYPOINT \["croc"\]', text)
    user = re.findall(r"(?m)^USER (\S+)", text)
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert re.search(r"(?m)^LABEL org\.opencontainers\.image\.", text)
