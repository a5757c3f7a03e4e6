#!/usr/bin/env bash
# Check a built image: the pinned versions, the imports, the `croc` command and one tiny CPU pre-training.
#   docker/smoke.sh croc:0.1.0-cpu
#   docker/smoke.sh croc:0.1.0-cu130 --gpus all     # further arguments go to `docker run` (GPU: also checks CUDA)
# Needs only Docker; runs offline (nothing is downloaded at run time). Exit status 0 = the image is good.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: $0 IMAGE [docker run options...]   e.g. $0 croc:0.1.0-cpu" >&2
  exit 2
fi
image="$1"
shift
run=(docker run --rm --network none --shm-size 1g "$@")

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nSMOKE FAILED (%s): %s\n' "$image" "$*" >&2; exit 1; }

step "image $image exists"
docker image inspect "$image" > /dev/null 2>&1 || fail "no such image; build it first (docker/README.md)"
env_vars="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image")"
for var in CROC_IMAGE CROC_GIT_SHA; do  # recorded by every run as the MLflow tags croc.image / croc.git_sha
  grep -E "^$var=." <<< "$env_vars" || fail "the image does not set $var (build with --build-arg IMAGE=... GIT_SHA=...)"
done

step "installed versions = docker/requirements.lock"
"${run[@]}" --interactive --entrypoint python "$image" - <<'PY' || fail "installed versions differ from the lock"
import re
from importlib.metadata import version
from pathlib import Path

bad = []
for line in Path("/app/docker/requirements.lock").read_text().splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, pin = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line).groups()
    got = version(name).split("+")[0]  # torch 2.14.1+cpu is the pin 2.14.1
    print(f"  {name:14s} {pin:10s} {'ok' if got == pin else 'INSTALLED ' + got}")
    if got != pin:
        bad.append(name)
raise SystemExit(f"differ: {bad}" if bad else 0)
PY

step "imports"
"${run[@]}" --entrypoint python "$image" -c "
import torch, torchvision, timm, ray, mlflow, faiss, croc, pipelines
print('  torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPUs visible:', torch.cuda.device_count())
print('  ray', ray.__version__, '| mlflow', mlflow.__version__, '| faiss', faiss.__version__)
" || fail "an import failed"

if [[ " $* " == *" --gpus "* ]]; then
  step "CUDA"
  "${run[@]}" --entrypoint python "$image" -c "
import torch
assert torch.cuda.is_available(), 'torch sees no GPU'
x = torch.randn(256, 256, device='cuda')
print('  ', torch.cuda.get_device_name(0), float((x @ x).sum()))
" || fail "CUDA does not work in the container"
fi

step "croc --help"
"${run[@]}" "$image" --help > /dev/null || fail "croc --help failed"
echo "  ok"

step "a tiny CPU pre-training (croc demo --in-process --smoke, as the non-root user)"
"${run[@]}" --workdir /tmp "$image" demo --in-process --smoke || fail "the smoke pre-training failed"

printf '\nSMOKE OK: %s\n' "$image"
