"""What every benchmark needs to time a device: synchronise, time the step's phases, read the peak memory."""

from __future__ import annotations

import contextlib
import resource
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB on Linux


class PhaseTimer:
    """The `phase` callback of TrainStep: seconds per named phase, synchronised around each one (so timed steps
    run slower than untimed ones; the split, not the total, is what they are for)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        sync(self.device)
        start = time.perf_counter()
        yield
        sync(self.device)
        self.seconds[name] += time.perf_counter() - start

    def ms_per_step(self, phases: Sequence[str], steps: int) -> dict[str, float]:
        """Mean ms per step of each phase timed, in `phases` order."""
        return {name: round(1000 * self.seconds[name] / steps, 2) for name in phases if name in self.seconds}


def clustering_share(phases_ms: dict[str, float]) -> float | None:
    """The clustering phase's share of the phases' total (None when nothing was timed)."""
    total = sum(phases_ms.values())
    return round(phases_ms.get("clustering", 0.0) / total, 4) if total else None
