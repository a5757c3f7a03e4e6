"""The Ray cluster: joining it (or starting a private local one), splitting its CPUs between Train workers and
Ray Data, and refusing, before anything starts, a request it can never place (a run would hang, not fail)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray

from croc.errors import InputError
from pipelines.config import PretrainConfig
from pipelines.config.evaluation import EvaluationSection
from pipelines.terminal import mute_library_info, verbose


def connect_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (as under `ray job submit`), else start a private local one.

    The local instance keeps Ray's token authentication on: its GCS and raylet listen on every interface of the
    machine (Ray 2.60 binds them to all of them, whatever the node address), so on a shared network only the token
    keeps other hosts out. Its workers' and actors' log lines stay in Ray's log files unless `croc --verbose`:
    the terminal shows our progress, summaries and errors (a worker's error reaches the driver as an exception).
    """
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
    else:
        logging.getLogger(AUTH_LOGGER).addFilter(_token_auth_on_by_default)
        ray.init(address="local", include_dashboard=False, log_to_driver=verbose(),
                 logging_level=logging.INFO if verbose() else logging.WARNING)
    mute_library_info()


AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _token_auth_on_by_default(record: logging.LogRecord) -> bool:
    """Drop Ray's notice that a local instance has token authentication on (ours keeps it on by design, see
    connect_ray); its warning that authentication is off still shows."""
    return "Token authentication is enabled" not in record.getMessage()


@dataclass(frozen=True)
class ResourcePlan:
    """How a machine's CPUs are split between Train workers and Ray Data."""

    cpus_per_worker: float
    data_cpus: float


def plan_resources(total_cpus: float, num_workers: int, gpus: bool) -> ResourcePlan:
    """Keep at least one whole CPU (half of a small machine) for Ray Data.

    A Train worker that holds every CPU leaves Ray Data's read tasks unschedulable: the run hangs silently.
    """
    if num_workers < 1:
        raise InputError(f"resources.num_workers={num_workers}: must be >= 1")
    data = max(1.0, total_cpus / 2) if not gpus else max(1.0, total_cpus - num_workers)
    per_worker = (total_cpus - data) / num_workers
    if per_worker <= 0:
        per_worker = min(0.5, total_cpus / (2 * num_workers))
        data = total_cpus - per_worker * num_workers
    return ResourcePlan(cpus_per_worker=round(per_worker, 3), data_cpus=data)


def check_cluster_fits(cfg: PretrainConfig, cpus_per_worker: float, reserved_cpus: float = 0.0) -> None:
    """An impossible resource request is an error now, not a hang later."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0) - reserved_cpus, resources.get("GPU", 0.0)
    workers = cfg.resources.num_workers
    if cfg.resources.use_gpu and gpus < workers:
        raise InputError(f"resources.num_workers={workers} with resources.use_gpu=true needs {workers} GPUs; "
                         f"the cluster has {gpus:g}")
    decode = cfg.data_settings("").decode_cpus  # one decode task must fit beside the workers, or the run hangs
    if workers * cpus_per_worker > cpus - decode + 1e-6:  # float slack: 0.9 + 1.0 fits in 1.9
        raise InputError(f"resources.num_workers={workers} x cpus_per_worker={cpus_per_worker:g} leaves less than "
                         f"the {decode:g} CPU a Ray Data decode task needs on a cluster of {cpus:g} CPUs: lower "
                         "resources.cpus_per_worker (resources.threads_per_worker sets the step's threads)")


def train_worker_cpus(cfg: PretrainConfig, reserved_cpus: float = 0.0) -> float:
    """The CPUs each Train worker holds on the connected cluster (resources.cpus_per_worker, else the plan), checked
    to fit beside Ray Data; `reserved_cpus` are held by the caller (a Tune trial) and left out of the plan."""
    cluster_cpus = ray.cluster_resources().get("CPU", 1.0) - reserved_cpus
    plan = plan_resources(cluster_cpus, cfg.resources.num_workers, cfg.resources.use_gpu)
    cpus_per_worker = cfg.resources.cpus_per_worker or plan.cpus_per_worker
    check_cluster_fits(cfg, cpus_per_worker, reserved_cpus)
    return cpus_per_worker


def check_evaluations_fit(evaluation: EvaluationSection) -> None:
    """An evaluation task the cluster can never place would wait forever: say so now."""
    resources = ray.cluster_resources()
    res = evaluation.resources
    if res.cpus_per_task > resources.get("CPU", 0):
        raise InputError(f"evaluation.resources.cpus_per_task={res.cpus_per_task:g} exceeds the cluster's "
                         f"{resources.get('CPU', 0):g} CPUs")
    if res.gpus_per_task > resources.get("GPU", 0):
        raise InputError(f"evaluation.resources.gpus_per_task={res.gpus_per_task:g} but the cluster has "
                         f"{resources.get('GPU', 0):g} GPUs")
