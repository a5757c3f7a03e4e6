"""How `croc --help` looks: click's type names in the options' type column, and the commands in the order of the
work (data, the demo, pre-training, evaluation, sweeps, comparison)."""

from __future__ import annotations

import typer

_CLICK_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}
_typer_type_column = typer.core.TyperOption.display_type_rich


def _type_column(param, ctx) -> str | None:
    """The help's type column as click prints it (TEXT, INTEGER, a|b; nothing for a flag). Typer 0.29 writes
    `<str>` / `<bool>` there, even for --help."""
    if param.metavar is not None:
        return param.metavar
    shown = _typer_type_column(param, ctx)
    if shown is None:
        return None
    bare = shown.strip("<>")
    if bare == "bool":
        return None
    return _CLICK_NAMES.get(bare, bare.upper() if shown.startswith("<") else shown)


typer.core.TyperOption.display_type_rich = _type_column
typer.core.TyperArgument.display_type_rich = _type_column

WORKFLOW = ("data", "demo", "pretrain", "evaluate", "sweep", "submit", "compare", "davis-score", "bench")


class WorkflowGroup(typer.core.TyperGroup):
    """Commands listed in the order of the work: data, the demo, pre-training, evaluation, sweeps, comparison."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))
