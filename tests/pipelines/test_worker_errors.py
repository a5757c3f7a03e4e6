"""A worker's InputError reaches the user as its own one line, out of Ray Train's wrapping."""

from __future__ import annotations

from ray.exceptions import RayTaskError
from ray.train.v2.api.exceptions import ControllerError, WorkerGroupError

from croc.errors import InputError
from pipelines.train.worker_errors import worker_input_error


def wrapped(error: Exception) -> Exception:
    """As Ray ships a task's exception: a RayTaskError that is also an instance of the cause's class."""
    return RayTaskError("train_fn", "Traceback:\n  ...remote lines...", error).as_instanceof_cause()


def test_the_first_ranks_input_error_is_found_with_its_message_only() -> None:
    message = "none of the 24 records this worker read could be decoded"
    group = WorkerGroupError("Training failed due to worker errors", {1: wrapped(InputError(message + " (rank 1)")),
                                                                      0: wrapped(InputError(message))})
    found = worker_input_error(group)
    assert type(found) is InputError and str(found) == message
    assert isinstance(wrapped(InputError("x")), InputError) and "remote lines" in str(wrapped(InputError("x")))
    assert str(worker_input_error(ControllerError(wrapped(InputError("in the controller"))))) == "in the controller"


def test_other_failures_are_left_as_they_are() -> None:
    assert worker_input_error(WorkerGroupError("failed", {0: wrapped(FloatingPointError("non-finite loss"))})) is None
    assert worker_input_error(RuntimeError("plain")) is None
