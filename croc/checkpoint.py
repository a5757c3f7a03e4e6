"""Training state on disk: everything needed to resume exactly, loaded safely (weights only).

A checkpoint file holds tensors and plain Python values only (RNG states included), so
`torch.load(..., weights_only=True)` reads it; a foreign or tampered file is refused with a clear message.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from croc.checkpoint_layouts import STATE_FILE, STATE_FORMAT
from croc.errors import InputError
from croc.files import write_atomically

FORMAT = STATE_FORMAT


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, CUDA) generator states as tensors / plain values."""
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {"python": random.getstate(), "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                                                     "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(folder: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler, step: int, epoch: int, data_seed: int,
                        config: dict[str, Any]) -> Path:
    """Write folder/state.pt atomically: student + teacher + loss centres (model state), optimiser, scaler, counters."""
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "epoch": int(epoch),
        "data_seed": int(data_seed),
        "rng": rng_state(),
        "config_json": json.dumps(config, sort_keys=True),
    }
    path = Path(folder) / STATE_FILE
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, buffer.getvalue())
    return path


def load_failure_reason(error: Exception) -> str:
    """torch's reason in one line, without its advice to load with weights_only=False (which would run the file)."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return line.split(". ")[0].strip()[:200]


def load_training_state(folder: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read folder/state.pt with weights_only=True; refuse anything that is not our training state."""
    path = Path(folder) / STATE_FILE
    if not path.exists():
        raise InputError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle with foreign objects, truncated or tampered bytes
        raise InputError(f"checkpoint {path} cannot be loaded safely as weights only ({load_failure_reason(error)}):"
                         " it was not written by this platform, or was altered since; remove its folder to resume "
                         "from the checkpoint before it") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise InputError(f"{path} is not a CrOC training state (found {found!r}, expected {FORMAT!r})")
    return state


def restore_training_state(state: dict[str, Any], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scaler: torch.amp.GradScaler) -> tuple[int, int]:
    """Load a state into the live objects; -> (step, epoch) to continue from."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["step"], state["epoch"]
