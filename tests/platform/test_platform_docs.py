"""The README's "Reproduce a paper run" section exists, and every `croc` command shown there, in the docker/ and
platform/ READMEs, in the KubeRay entrypoints and in the YAML comments parses: the command line against the real
CLI (typer), the config file exists, and config + key=value overrides load into the typed config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Reproduce a paper run"
DOCS = [ROOT / "docker" / "README.md", ROOT / "platform" / "README.md", ROOT / "platform" / "mlflow" / "README.md"]
YAMLS = sorted([*(ROOT / "platform").rglob("*.yaml"), *(ROOT / "docker").glob("*.yaml"), ROOT / ".hadolint.yaml"])
# Values the shells fill in at run time; any other $VARIABLE in a croc command is an error.
ENVIRONMENT = {"$MLFLOW_TRACKING_URI": "http://mlflow.croc.svc.cluster.local:5000"}


def reproduce_section() -> str:
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def shell_lines(text: str) -> list[str]:
    """Logical lines (backslash continuations joined) of the ```bash blocks of a markdown text."""
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines()]


def comment_lines(text: str) -> list[str]:
    """Logical lines of the commands shown in YAML comments ('#   cmd \\' continued on the next comment line)."""
    joined = re.sub(r"\\\n#\s*", " ", text)
    # commands are indented under the '#' ('#   croc ...'); prose is not ('# the croc image ...')
    return [line.lstrip("# ").strip() for line in joined.splitlines() if re.match(r"\s*#\s{2,}\S", line)]


def croc_commands(lines: list[str]) -> list[list[str]]:
    """The arguments after each `croc` word (the command, or the compose service whose entrypoint is croc)."""
    found = []
    for line in lines:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, word in enumerate(words):
            if word == "croc" and (i == 0 or words[i - 1] not in ("-n", "--namespace")) and i + 1 < len(words):
                found.append(words[i + 1:])
                break
    return found


def all_commands() -> list[tuple[str, list[str]]]:
    commands = [("README.md", c) for c in croc_commands(shell_lines(reproduce_section()))]
    for doc in DOCS:
        commands += [(str(doc.relative_to(ROOT)), c) for c in croc_commands(shell_lines(doc.read_text()))]
    for path in YAMLS:
        commands += [(str(path.relative_to(ROOT)), c) for c in croc_commands(comment_lines(path.read_text()))]
    for path in sorted((ROOT / "platform" / "kuberay").glob("rayjob-*.yaml")):
        entrypoint = yaml.safe_load(path.read_text())["spec"]["entrypoint"]
        commands += [(f"{path.name}:entrypoint", c) for c in croc_commands([entrypoint])]
    return commands


COMMANDS = all_commands()


@pytest.fixture(scope="module")
def cli():
    import typer

    from pipelines.cli import app

    return typer.main.get_command(app)


def parse(cli, args: list[str]):
    """(command name, parsed options, extra args) through the real command line, without running anything."""
    ctx, command = cli.make_context("croc", list(args)), cli
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)
    return command.name, ctx.params, ctx.args


def local_path(path: str) -> Path:
    """A config path as the command sees it: relative to the repo, or inside the image (/app = the repo)."""
    return ROOT / path.removeprefix("/app/")


def substitute(args: list[str]) -> list[str]:
    out = []
    for arg in args:
        for name, value in ENVIRONMENT.items():
            arg = arg.replace(name, value)
        assert "$" not in arg and "<" not in arg, f"unresolved placeholder in {arg!r}"
        out.append(arg)
    return out


def test_readme_section_exists() -> None:
    headings = re.findall(r"(?m)^## .*$", (ROOT / "README.md").read_text())
    assert headings.count(SECTION) == 1
    section = reproduce_section()
    for needed in ("docker/Dockerfile", "docker/compose.yaml", "platform/kuberay/rayjob-coco.yaml",
                   "experiments/paper/coco.yaml", "croc.image", "croc.git_sha"):
        assert needed in section, needed


def test_the_docs_show_the_commands_we_check() -> None:
    where = {source for source, _ in COMMANDS}
    assert {"README.md", "docker/README.md", "rayjob-coco.yaml:entrypoint", "rayjob-imagenet.yaml:entrypoint",
            "platform/cluster-launcher/aws-paper.yaml", "platform/kuberay/raycluster.yaml"} <= where
    pretrains = [args for _, args in COMMANDS if args[0] == "pretrain"]
    assert len(pretrains) >= 6 and any(args[:1] == ["demo"] for _, args in COMMANDS)


def test_the_extractor_finds_commands_and_skips_namespaces() -> None:
    lines = shell_lines("```bash\nkubectl -n croc get rayjob\ndocker compose run --rm croc \\\n  demo --smoke\n```")
    assert croc_commands(lines) == [["demo", "--smoke"]]


@pytest.mark.parametrize(("source", "args"), COMMANDS, ids=[f"{s}:{' '.join(a)[:60]}" for s, a in COMMANDS])
def test_croc_command_parses(cli, source: str, args: list[str]) -> None:
    from pipelines.config import load_config
    from pipelines.config.evaluation import EVAL_TASKS

    name, params, extra = parse(cli, substitute(args))
    if name == "pretrain":
        config = local_path(params["config"])
        assert config.is_file(), f"{source}: {params['config']} does not exist"
        cfg = load_config(config, extra)  # unknown keys, wrong types, impossible values raise
        assert cfg.tracking.tracking_uri.startswith(("http://", "https://")), f"{source}: a local tracking store"
        assert cfg.checkpoint.storage_path.startswith(("/shared/", "s3://", "gs://")), \
            f"{source}: checkpoints not on shared storage"
        for task in cfg.evaluation.tasks:  # roots are checked before training starts: every task needs one
            dataset = "davis" if task == "davis" else ("coco" if "coco" in task else task.split(":")[1])
            assert getattr(cfg.evaluation.datasets, dataset), f"{source}: {task} without evaluation.datasets"
    elif name == "evaluate":
        load_config(local_path(params["config"]), extra)
        assert not params["tasks"] or set(params["tasks"].split(",")) <= set(EVAL_TASKS)
    else:
        assert not extra, f"{source}: unexpected arguments {extra}"


def test_a_wrong_command_fails(cli) -> None:
    from pipelines.config import load_config

    with pytest.raises(Exception, match="pretrian"):
        parse(cli, ["pretrian", "--config", "experiments/paper/coco.yaml"])
    _, params, extra = parse(cli, ["pretrain", "--config", "experiments/paper/coco.yaml", "optim.lrr=1"])
    with pytest.raises(Exception, match="lrr"):
        load_config(local_path(params["config"]), extra)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path) -> None:
    assert [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
