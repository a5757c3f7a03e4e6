"""The `evaluation` section of the config (pydantic) -> croc's plain protocol dataclass."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.config.evaluation import EvaluationSection

if TYPE_CHECKING:
    from croc.eval.settings import EvalProtocol


def protocol_of(evaluation: EvaluationSection) -> EvalProtocol:
    """The pydantic section -> croc's frozen `EvalProtocol`, built from the sections' dataclasses."""
    return evaluation.protocol()
