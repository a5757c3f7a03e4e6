"""Shared fixtures: ONE throw-away local Ray session per pytest process (started here, stopped here).

`make test` runs two pytest processes (pytest-xdist, each test file whole in one of them), so at most two such
sessions run at once, each private to its process."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """A private local Ray instance (address="local": never joins another cluster on the machine), 2 CPUs."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    try:
        yield ray
    finally:
        ray.shutdown()
