"""Container healthchecks of docker/compose.yaml (stdlib only; in the image: /app/docker/healthcheck.py).

    python /app/docker/healthcheck.py http http://127.0.0.1:5000/health    # answers 200 (the MLflow server)
    python /app/docker/healthcheck.py ray-head                             # GCS + raylet running, dashboard port open
    python /app/docker/healthcheck.py ray-worker                           # the raylet of this node is running
Exit status 0 = healthy; anything else prints why.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path


def running(name: str) -> bool:
    """A process of this container whose command line names `name` (e.g. raylet, gcs_server)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if name.encode() in cmdline.read_bytes():
                return True
        except OSError:  # the process ended meanwhile
            continue
    return False


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> str | None:
    """None when healthy, else the reason."""
    if argv[:1] == ["http"] and len(argv) == 2:
        with urllib.request.urlopen(argv[1], timeout=5) as response:
            return None if response.status == 200 else f"{argv[1]} answered {response.status}"
    if argv == ["ray-head"]:
        missing = [p for p in ("gcs_server", "raylet") if not running(p)]
        if missing:
            return f"not running: {', '.join(missing)}"
        return None if port_open("127.0.0.1", 8265) else "the dashboard (port 8265) does not accept connections"
    if argv == ["ray-worker"]:
        return None if running("raylet") else "not running: raylet"
    return f"usage: {__doc__}"


if __name__ == "__main__":
    try:
        problem = main(sys.argv[1:])
    except OSError as error:
        problem = str(error)
    if problem:
        print(problem, file=sys.stderr)
    sys.exit(1 if problem else 0)
