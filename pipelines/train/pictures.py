"""Where a pre-training's cluster pictures go: a child run of their own, so that MLflow's picture cards read.

MLflow's image charts caption every picture with its run's name and, below it, every param of that run as
`key=value, ...`. A pre-training run holds the whole config (over a hundred params), so a picture logged on it
would carry a caption that is the whole parameter list. The pictures go instead to a child run, `clusters of
<run>`, whose few params are the settings that tell two runs' pictures apart (tokens, K, lambda_pos, ...).
"""

from __future__ import annotations

from collections.abc import Mapping

from mlflow.tracking import MlflowClient

from pipelines.config import PretrainConfig
from pipelines.tracking import DESCRIPTION, PICTURE_KEY, start_run

PICTURES_KIND = "pictures"  # the child run's croc.kind


def pictures_run_name(run_name: str) -> str:
    return f"{PICTURE_KEY} of {run_name}"


def picture_params(cfg: PretrainConfig) -> dict[str, str]:
    """The settings a cluster picture depends on, under their config names (the card's caption)."""
    return {"method.tokens": cfg.method.tokens, "clustering.n_init": str(cfg.clustering.n_init),
            "clustering.n_centroids_max": str(cfg.clustering.n_centroids_max),
            "clustering.lambda_pos": str(cfg.clustering.lambda_pos),
            "tracking.cluster_pictures_every_steps": str(cfg.tracking.cluster_pictures_every_steps)}


def has_pictures(cfg: PretrainConfig) -> bool:
    """Cluster pictures are drawn when they are asked for and the method clusters (DINO does not)."""
    return bool(cfg.tracking.cluster_pictures_every_steps) and cfg.method.method == "croc"


def start_pictures_run(client: MlflowClient, cfg: PretrainConfig, experiment: str, run_name: str,
                       parent_run_id: str, tags: Mapping[str, str]) -> str | None:
    """The pictures' child run of pre-training `run_name` (re-opened when the pre-training resumes) -> its id, or
    None when the run draws no pictures."""
    if not has_pictures(cfg):
        return None
    every = cfg.tracking.cluster_pictures_every_steps
    description = (f"The clusters CrOC found on both views of the first two images of the batch (first head), "
                   f"every {every} steps of pre-training run {run_name}: image key '{PICTURE_KEY}', one picture per "
                   "step (the Model metrics tab has a step slider). Grey: pruned clusters.")
    child_tags = {**tags, "croc.kind": PICTURES_KIND, DESCRIPTION: description}
    return start_run(client, experiment, pictures_run_name(run_name), child_tags, picture_params(cfg),
                     parent_run_id=parent_run_id)
