"""A `--checkpoint` argument -> what the evaluation task loads, and the MLflow run it came from (if any)."""

from __future__ import annotations

import re
from pathlib import Path

from mlflow.tracking import MlflowClient

from croc.checkpoint_layouts import BACKBONE_FILE
from croc.errors import InputError

RUN_ID = re.compile(r"^(runs:/)?([0-9a-f]{32})(/.*)?$")


def resolve_checkpoint(spec: str, tracking_uri: str) -> tuple[str, str | None]:
    """A checkpoint argument -> (what croc.eval.backbones.load_backbone reads, the MLflow run it came from).

    'runs:/<id>' or a bare 32-hex run id: that run's backbone.safetensors artifact (downloaded); anything else
    (a file, a run / checkpoint folder, random:<arch>, stats:<kind>) is passed through.
    """
    match = RUN_ID.match(spec)
    if not match or Path(spec).exists():
        return spec, None
    run_id = match.group(2)
    client = MlflowClient(tracking_uri)
    try:
        client.get_run(run_id)
    except Exception as error:
        raise InputError(f"--checkpoint {spec}: no MLflow run {run_id} at {tracking_uri}") from error
    try:
        local = client.download_artifacts(run_id, BACKBONE_FILE)
    except Exception as error:
        raise InputError(f"MLflow run {run_id} has no {BACKBONE_FILE} artifact (did its pre-training "
                         f"finish?): {error}") from error
    return local, run_id
