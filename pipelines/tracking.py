"""MLflow: runs and their tags (docs/architecture.md, "MLflow runs"), buffered metrics, reachability check."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from croc.errors import InputError
from pipelines.config import PretrainConfig


def git_sha() -> str:
    """The revision the code runs from ('unknown' outside a git checkout; CROC_GIT_SHA overrides, e.g. images)."""
    if os.environ.get("CROC_GIT_SHA"):
        return os.environ["CROC_GIT_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail before training when the tracking store cannot be used; the message says what to do."""
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"tracking.tracking_uri={uri}: cannot create {folder}: {error}") from error
        if not os.access(folder, os.W_OK):
            raise InputError(f"tracking.tracking_uri={uri}: {folder} is not writable")
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
                if response.status == 200:
                    return
        except OSError as error:
            raise InputError(f"tracking.tracking_uri={uri} does not answer ({error}); start the MLflow server "
                             "or point tracking.tracking_uri at a reachable one") from error
        raise InputError(f"tracking.tracking_uri={uri}/health did not answer 200")


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created when missing; with a sqlite store its artifacts go beside the database
    (MLflow's default, ./mlruns, would follow the current directory)."""
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    uri = client.tracking_uri
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def provenance_tags(sha: str) -> dict[str, str]:
    """MLflow's own source tags (the UI's Source and Version columns) and what `croc submit` passed to the job."""
    submitted = os.environ.get("CROC_SUBMISSION_ID")
    tags = {"mlflow.source.name": os.environ.get("CROC_COMMAND", "croc"),
            "mlflow.source.type": "JOB" if submitted or "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ else "LOCAL"}
    if sha != "unknown":
        tags["mlflow.source.git.commit"] = sha
    if os.environ.get("CROC_GIT_DIRTY") in ("0", "1"):
        tags["croc.git_dirty"] = "true" if os.environ["CROC_GIT_DIRTY"] == "1" else "false"
    if submitted:
        tags["croc.submission_id"] = submitted
    return tags


def run_tags(kind: str, method: str, dataset: str, config_hash: str, extra: Mapping[str, str] | None = None) -> dict:
    sha = git_sha()
    tags = {"croc.kind": kind, "croc.method": method, "croc.dataset": dataset, "croc.config_hash": config_hash,
            "croc.git_sha": sha, **provenance_tags(sha)}
    if os.environ.get("CROC_IMAGE"):
        tags["croc.image"] = os.environ["CROC_IMAGE"]
    tags.update(extra or {})
    return tags


DESCRIPTION = "mlflow.note.content"  # the run's Description in the MLflow UI
PICTURE_KEY = "clusters"  # the MLflow image key of the cluster pictures (one image per step: a step slider)


def pretrain_description(cfg: PretrainConfig, num_images: int, total_steps: int,
                         pictures_run: str | None = None) -> str:
    """One paragraph for the MLflow UI's Description: what was trained, on what, how long, evaluated how, and the
    child run holding its cluster pictures."""
    m, o = cfg.model, cfg.optim
    data = (f"the synthetic benchmark (seed {cfg.data.synthetic.seed})" if cfg.data.source == "synthetic"
            else f"the shards in {cfg.data.shard_dir}")
    tasks = ", ".join(cfg.evaluation.tasks) or "none"
    return (f"{cfg.method.method} pre-training of {m.arch}/{m.patch_size} at {cfg.data.image_size} px on {data} "
            f"({num_images} images): {o.epochs} epochs, {total_steps} steps of batch {o.batch_size}, lr {o.lr:g} per "
            f"256 images. Evaluations: {tasks} ({cfg.evaluation.after}, {cfg.evaluation.network}). "
            f"Command: {os.environ.get('CROC_COMMAND', 'croc')}."
            + (f" Cluster pictures: child run '{pictures_run}'." if pictures_run else ""))


def find_run(client: MlflowClient, experiment: str, run_name: str) -> str | None:
    """The id of an existing run of this name (a re-submitted run continues it)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.mlflow.runName = '{run_name}'",
                              max_results=1)
    return runs[0].info.run_id if runs else None


def start_run(client: MlflowClient, experiment: str, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, str], parent_run_id: str | None = None) -> str:
    """Create (or re-open, by name) a run with its tags and params -> run id."""
    existing = find_run(client, experiment, run_name)
    if existing:
        client.update_run(existing, status="RUNNING")
        return existing
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id(client, experiment), run_name=run_name, tags=all_tags)
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


# Bounded retries for MLflow's HTTP client (its defaults retry for minutes): an outage fails the run in well under a
# minute, and nothing is lost, since the metrics of a checkpoint travel inside it (MetricBuffer.save_pending).
BOUNDED_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
PENDING_FILE = "metrics.json"  # in a checkpoint folder: the metrics of the steps up to it, not yet confirmed logged


def bound_retries() -> None:
    """Apply BOUNDED_RETRIES to this process, where the user has not set them."""
    for name, value in BOUNDED_RETRIES.items():
        os.environ.setdefault(name, value)


def log_training_dataset(client: MlflowClient, run_id: str, shard_dir: str, manifest: Mapping) -> None:
    """The shards a run trains on as an MLflow dataset input (the UI's Datasets column): named after the dataset
    folder, the manifest's fingerprint as digest, the shard folder as source, image count as profile."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    root = Path(str(manifest.get("root", shard_dir)))
    digest = str(manifest.get("fingerprint") or
                 hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16])
    dataset = Dataset(name=f"{root.parent.name}/{root.name}", digest=digest, source_type="local", source=shard_dir,
                      schema=json.dumps({"columns": ["id", "source", "image", "width", "height"]}),
                      profile=json.dumps({"num_images": manifest.get("num_images"), "kind": manifest.get("kind"),
                                          "shards": len(manifest.get("shards", []))}))
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])


def system_metrics(tracking_uri: str, run_id: str, every_s: float, resumed: bool = False):
    """MLflow's own system metrics (CPU, memory, disk, network; GPU where pynvml sees one) of this machine, on the
    run as `system/...`, sampled every `every_s` seconds by a background thread; None when every_s is 0.
    -> the monitor (call .finish() at the end)."""
    if not every_s:
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=every_s, resume_logging=resumed,
                                   tracking_uri=tracking_uri)
    monitor.start()
    return monitor


class TrackingOutageError(RuntimeError):
    """MLflow did not take a batch of metrics (they are kept with the checkpoint and replayed on resume)."""


class MetricBuffer:
    """Metrics held until the next checkpoint, then written in one batch.

    Each step is logged once: a resumed run recomputes the steps after its checkpoint, and any of them that an
    earlier attempt had already logged (its checkpoint was not registered before the failure) is not logged again.
    The metrics of a checkpoint are saved inside it before it is reported (`save_pending`), and a resumed run
    replays those that MLflow does not hold (`replay`): an MLflow outage loses no step.
    """

    def __init__(self, client: MlflowClient, run_id: str, key: str = "loss",
                 pictures_run_id: str | None = None) -> None:
        self.client, self.run_id = client, run_id
        self.pictures_run_id = pictures_run_id or run_id  # pictures may go to a child run of their own
        self.pending: list[Metric] = []
        self.logged_up_to = max((m.step for m in client.get_metric_history(run_id, key)), default=0)
        self.pictured_steps: set[int] | None = None

    def add(self, step: int, values: Mapping[str, float]) -> None:
        if step <= self.logged_up_to:
            return
        now = int(time.time() * 1000)
        self.pending.extend(Metric(k, float(v), now, step) for k, v in values.items())

    def flush(self) -> None:
        try:
            for i in range(0, len(self.pending), 1000):
                self.client.log_batch(self.run_id, metrics=self.pending[i:i + 1000])
        except Exception as error:
            steps = sorted({m.step for m in self.pending})
            raise TrackingOutageError(
                f"MLflow at {self.client.tracking_uri} did not take the metrics of steps {steps[0]}-{steps[-1]} "
                f"({type(error).__name__}: {str(error)[:300]}); they are kept with the checkpoint and logged when "
                "the run resumes") from error
        self.pending = []

    def save_pending(self, folder: str | Path) -> None:
        """Write the metrics not yet logged into a checkpoint folder (before the checkpoint is reported)."""
        rows = [[m.key, m.value, m.timestamp, m.step] for m in self.pending]
        (Path(folder) / PENDING_FILE).write_text(json.dumps(rows))

    def replay(self, folder: str | Path) -> int:
        """Log the metrics a restored checkpoint carries that MLflow does not hold (by key and step); -> how many."""
        path = Path(folder) / PENDING_FILE
        if not path.is_file():
            return 0
        rows = [Metric(str(k), float(v), int(t), int(s)) for k, v, t, s in json.loads(path.read_text())]
        held = {(m.key, m.step) for key in {m.key for m in rows}
                for m in self.client.get_metric_history(self.run_id, key)}
        missing = [m for m in rows if (m.key, m.step) not in held]
        self.pending = missing + self.pending
        self.flush()
        self.logged_up_to = max([self.logged_up_to, *(m.step for m in missing)])
        return len(missing)

    def picture(self, step: int, image, key: str = PICTURE_KEY) -> None:
        """A picture for this step, logged at once (pictures are not part of the metric history), and only once:
        a resumed run recomputes the steps after its checkpoint, and a picture an earlier attempt logged stays."""
        if self.pictured_steps is None:  # read once per attempt: MLflow names images <key>+step+<step>+...
            names = (a.path.rsplit("/", 1)[-1] for a in self.client.list_artifacts(self.pictures_run_id, "images"))
            self.pictured_steps = {int(n.split("+")[2]) for n in names
                                   if n.startswith(f"{key}+step+") and n.split("+")[2].isdigit()}
        if step in self.pictured_steps:
            return
        self.client.log_image(self.pictures_run_id, image, key=key, step=step)
        self.pictured_steps.add(step)

    def tag(self, key: str, value: str) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(key, value)])
