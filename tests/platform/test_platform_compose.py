"""docker/compose*.yaml: valid against the Compose specification's JSON schema (vendored), and the stack's rules:
only the MLflow UI and the Ray dashboard published, on 127.0.0.1; a healthcheck everywhere; shared checkpoint
storage at the same path on every Ray node; Ray token authentication on; MLflow settings from platform/mlflow/."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILES = [DOCKER / "compose.yaml", DOCKER / "compose.gpu.yaml"]
RAY_NODES = ("ray-head", "ray-worker")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "platform" / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def merged(base: dict, override: dict) -> dict:
    """`docker compose -f a -f b`'s merge, for mappings (enough for our override)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def errors(validator: jsonschema.Draft202012Validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_is_valid(validator, path: Path) -> None:
    assert errors(validator, yaml.safe_load(path.read_text())) == []


def test_gpu_stack_is_valid(validator, compose) -> None:
    gpu = merged(compose, yaml.safe_load((DOCKER / "compose.gpu.yaml").read_text()))
    assert errors(validator, gpu) == []
    devices = gpu["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


@pytest.mark.parametrize("breakage", ["interval as a number", "unknown service key", "ports as a mapping",
                                      "replicas as a list"])
def test_a_broken_compose_file_fails(validator, compose, breakage: str) -> None:
    broken = copy.deepcopy(compose)
    service = broken["services"]["mlflow"]
    if breakage == "interval as a number":
        service["healthcheck"]["interval"] = 15
    elif breakage == "unknown service key":
        service["imagee"] = service.pop("image")
    elif breakage == "ports as a mapping":
        service["ports"] = {"5000": 5000}
    else:
        broken["services"]["ray-worker"]["deploy"]["replicas"] = [2]
    assert errors(validator, broken) != []


def test_only_mlflow_and_the_dashboard_are_published_on_localhost(compose) -> None:
    published = {name: service.get("ports", []) for name, service in compose["services"].items()
                 if service.get("ports")}
    assert set(published) == {"mlflow", "ray-head"}
    for name, container_port in (("mlflow", 5000), ("ray-head", 8265)):
        (port,) = published[name]
        match = re.fullmatch(r"\$\{CROC_BIND_ADDRESS:-([0-9.]+)\}:(\d+):(\d+)", port)
        assert match, f"{name}: {port} is not bound to ${{CROC_BIND_ADDRESS:-...}}"
        assert match.group(1) == "127.0.0.1" and int(match.group(3)) == container_port


def test_every_service_has_a_healthcheck(compose) -> None:
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        if "/app/docker/healthcheck.py" in test:  # the image's copy of docker/healthcheck.py
            assert (DOCKER / "healthcheck.py").exists()


def test_healthcheck_script_refuses_unknown_checks() -> None:
    result = subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), "nonsense"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and "usage" in result.stderr


def test_services_share_a_private_network(compose) -> None:
    assert set(compose["networks"]) == {"croc"}
    for name, service in compose["services"].items():
        assert service.get("networks") == ["croc"], name


def test_checkpoint_storage_is_shared_at_the_same_path(compose) -> None:
    assert "shared" in compose["volumes"]
    for name in (*RAY_NODES, "croc"):
        assert "shared:/shared" in compose["services"][name]["volumes"], name
    assert compose["services"]["ray-worker"]["deploy"]["replicas"]


def test_ray_token_authentication_is_on(compose) -> None:
    secret_file = DOCKER / compose["secrets"]["ray_auth_token"]["file"]
    assert secret_file.parent == DOCKER / "secrets"
    assert "*" in (secret_file.parent / ".gitignore").read_text().split(), "the token folder must be git-ignored"
    for name in RAY_NODES:
        service = compose["services"][name]
        assert service["environment"]["RAY_AUTH_MODE"] == "token", name
        assert service["environment"]["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name
        assert "ray_auth_token" in service["secrets"], name
    head = compose["services"]["ray-head"]["command"]
    assert "--head" in head and "--dashboard-port=8265" in head and "--dashboard-host=0.0.0.0" in head


def test_mlflow_server_settings(compose) -> None:
    mlflow = compose["services"]["mlflow"]
    assert mlflow["entrypoint"] == ["mlflow"] and mlflow["command"][0] == "server"
    assert "--serve-artifacts" in mlflow["command"]
    (env_file,) = mlflow["env_file"]
    settings = dict(line.split("=", 1) for line in (DOCKER / env_file).read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
    mount = next(v.split(":")[1] for v in mlflow["volumes"] if v.startswith("mlflow:"))
    assert settings["MLFLOW_BACKEND_STORE_URI"].startswith(("sqlite:///" + mount, "postgresql"))
    assert settings["MLFLOW_ARTIFACTS_DESTINATION"].startswith(mount)
    assert "mlflow:5000" in settings["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for name in (*RAY_NODES, "croc"):
        assert compose["services"][name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
