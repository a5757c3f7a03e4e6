"""platform/: the KubeRay manifests against our schema (platform/schemas/kuberay.json), the cluster launcher YAML
against Ray's own schema, and the rules between them: the paper's GPU counts, shared storage on every Ray pod,
token authentication on, the MLflow address from the environment, Ray's version = the project's pin."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads pyproject.toml")
ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "platform" / "kuberay"
LAUNCHER = ROOT / "platform" / "cluster-launcher" / "aws-paper.yaml"
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))
PAPER_JOBS = {"rayjob-coco.yaml": "coco", "rayjob-imagenet.yaml": "imagenet"}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def by_kind(kind: str) -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFESTS for doc in documents(path) if doc["kind"] == kind]


def cluster_specs() -> list[tuple[str, dict]]:
    specs = [(p.name, d["spec"]) for p, d in by_kind("RayCluster")]
    return specs + [(p.name, d["spec"]["rayClusterSpec"]) for p, d in by_kind("RayJob")]


def pod_templates(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec.get("workerGroupSpecs", []))]


def ray_pin() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return next(d.split("==")[1] for d in deps if re.match(r"ray(\[|=)", d))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "platform" / "schemas" / "kuberay.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_manifests_are_there() -> None:
    kinds = sorted(doc["kind"] for path in MANIFESTS for doc in documents(path))
    assert kinds == ["PersistentVolumeClaim", "RayCluster", "RayJob", "RayJob", "Secret"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(validator, path: Path) -> None:
    for doc in documents(path):
        assert errors(validator, doc) == [], f"{path.name}: {doc['kind']}"


def _break(job: dict, how: str) -> None:
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    if how == "no headGroupSpec":
        del cluster["headGroupSpec"]
    elif how == "replicas as a string":
        cluster["workerGroupSpecs"][0]["replicas"] = "2"
    elif how == "no entrypoint":
        del spec["entrypoint"]
    elif how == "auth mode misspelt":
        cluster["authOptions"]["mode"] = "tokens"
    elif how == "resources typo":
        container = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        container["resources"]["limit"] = container["resources"].pop("limits")
    elif how == "bad quantity":
        cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "16 GB"
    elif how == "rayStartParams not strings":
        cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    elif how == "wrong apiVersion":
        job["apiVersion"] = "ray.io/v1alpha1"
    elif how == "no cluster at all":
        del spec["rayClusterSpec"]
    elif how == "unknown field":
        spec["shutdownAfterJobFinish"] = spec.pop("shutdownAfterJobFinishes")


@pytest.mark.parametrize("how", ["no headGroupSpec", "replicas as a string", "no entrypoint", "auth mode misspelt",
                                 "resources typo", "bad quantity", "rayStartParams not strings",
                                 "wrong apiVersion", "no cluster at all", "unknown field"])
def test_a_broken_rayjob_fails(validator, how: str) -> None:
    (job,) = documents(KUBERAY / "rayjob-coco.yaml")
    broken = copy.deepcopy(job)
    _break(broken, how)
    assert errors(validator, broken) != []


def test_broken_pvc_and_secret_fail(validator) -> None:
    (_, pvc), = by_kind("PersistentVolumeClaim")
    (_, secret), = by_kind("Secret")
    bad_pvc = copy.deepcopy(pvc)
    bad_pvc["spec"]["accessModes"] = ["ReadWriteAll"]
    bad_secret = copy.deepcopy(secret)
    bad_secret["data"] = {"auth_token": "not base64!"}
    assert errors(validator, bad_pvc) != [] and errors(validator, bad_secret) != []


@pytest.mark.parametrize("job_file", sorted(PAPER_JOBS))
def test_paper_jobs_have_the_papers_gpus(job_file: str) -> None:
    (job,) = documents(KUBERAY / job_file)
    config = yaml.safe_load((ROOT / "experiments" / "paper" / f"{PAPER_JOBS[job_file]}.yaml").read_text())
    workers = config["resources"]["num_workers"]
    assert workers == {"coco": 2, "imagenet": 4}[PAPER_JOBS[job_file]]
    gpus = 0
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        assert group["minReplicas"] == group["replicas"] == group["maxReplicas"], group["groupName"]
        (container,) = group["template"]["spec"]["containers"]
        limits = container["resources"]["limits"]
        assert limits.get("nvidia.com/gpu") == container["resources"]["requests"].get("nvidia.com/gpu")
        gpus += group["replicas"] * int(limits.get("nvidia.com/gpu", 0))
    assert gpus == workers
    entrypoint = job["spec"]["entrypoint"]
    assert f"experiments/paper/{PAPER_JOBS[job_file]}.yaml" in entrypoint
    assert f"resources.num_workers={workers}" in entrypoint
    assert "evaluation.tasks" in entrypoint or config["evaluation"]["tasks"], "no evaluation after pre-training"
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_shared_storage_is_mounted_on_every_ray_pod() -> None:
    (_, pvc), = by_kind("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, spec in cluster_specs():
        for template in pod_templates(spec):
            claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                      for v in template["spec"].get("volumes", []) if "persistentVolumeClaim" in v}
            mounts = {m["name"]: m["mountPath"] for c in template["spec"]["containers"]
                      for m in c.get("volumeMounts", [])}
            assert any(claims.get(n) == pvc["metadata"]["name"] and p == "/shared" for n, p in mounts.items()), name
    for path, job in by_kind("RayJob"):
        assert "checkpoint.storage_path=/shared/" in job["spec"]["entrypoint"], path.name


def test_ray_token_authentication_is_on() -> None:
    (_, secret), = by_kind("Secret")
    assert "auth_token" in secret.get("stringData", secret.get("data", {}))
    for name, spec in cluster_specs():
        assert spec["authOptions"] == {"mode": "token", "secretName": secret["metadata"]["name"]}, name


def test_mlflow_address_comes_from_the_environment() -> None:
    for path, job in by_kind("RayJob"):
        spec = job["spec"]
        uri = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["MLFLOW_TRACKING_URI"]
        assert uri.startswith("http://") and "tracking.tracking_uri=$MLFLOW_TRACKING_URI" in spec["entrypoint"]
        templates = [*pod_templates(spec["rayClusterSpec"]), spec["submitterPodTemplate"]]
        for template in templates:
            for container in template["spec"]["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                assert env.get("MLFLOW_TRACKING_URI") == uri, f"{path.name}: {container['name']}"


def test_ray_version_and_images_agree() -> None:
    images = set()
    for name, spec in cluster_specs():
        assert spec["rayVersion"] == ray_pin(), name
        images |= {c["image"] for t in pod_templates(spec) for c in t["spec"]["containers"]}
    for _, job in by_kind("RayJob"):
        images |= {c["image"] for c in job["spec"]["submitterPodTemplate"]["spec"]["containers"]}
    images.add(yaml.safe_load(LAUNCHER.read_text())["docker"]["image"])
    assert len(images) == 1, images


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    spec = importlib.util.find_spec("ray")  # finds the package without importing it
    path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    return json.loads(path.read_text())


def test_cluster_launcher_yaml_is_valid(ray_schema) -> None:
    config = yaml.safe_load(LAUNCHER.read_text())
    assert [e.message for e in jsonschema.Draft7Validator(ray_schema).iter_errors(config)] == []
    broken = copy.deepcopy(config)
    del broken["provider"]
    broken["available_node_types"]["gpu_1x"]["resources"]["GPU"] = "1"
    assert len(list(jsonschema.Draft7Validator(ray_schema).iter_errors(broken))) >= 2


def test_cluster_launcher_fits_the_paper_and_keeps_auth_on() -> None:
    config = yaml.safe_load(LAUNCHER.read_text())
    assert config["provider"]["type"] in ("aws", "gcp")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu_capacity = sum(t["resources"].get("GPU", 0) * t.get("max_workers", 0) for t in types.values())
    assert gpu_capacity >= 4 and config["max_workers"] >= 2  # COCO: 2 GPUs, ImageNet: 4
    options = " ".join(config["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in options and "/shared:/shared" in options
    assert any("auth_token" in target for target in config["file_mounts"])
