"""The project's own message out of a Ray Train failure: an InputError raised in a worker, not Ray's wrapping.

Ray Train hands the driver a WorkerGroupError whose `worker_failures` hold each rank's exception, itself wrapped
(a RayTaskError carries the original in `.cause` and prints a whole remote traceback). The user needs the
one-line InputError the worker raised, as the last line of the output, with exit status 2.
"""

from __future__ import annotations

from croc.errors import InputError


def _nested(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    failures = getattr(error, "worker_failures", None)
    if isinstance(failures, dict):
        found.extend(failures[rank] for rank in sorted(failures))
    for attr in ("cause", "controller_failure", "__cause__", "__context__"):
        nested = getattr(error, attr, None)
        if isinstance(nested, BaseException):
            found.append(nested)
    return found


def worker_input_error(error: BaseException, depth: int = 8) -> InputError | None:
    """The innermost InputError inside `error` (the first rank's, by rank), with its message only; else None."""
    seen: set[int] = set()
    queue = [error]
    for _ in range(depth):
        inner: list[BaseException] = []
        for candidate in queue:
            if id(candidate) in seen:
                continue
            seen.add(id(candidate))
            nested = _nested(candidate)
            plain = type(candidate).__module__.split(".")[0] != "ray"  # Ray's dual-class wrapper prints a traceback
            if isinstance(candidate, InputError) and plain and not any(isinstance(n, InputError) for n in nested):
                return InputError(str(candidate.args[0]) if candidate.args else str(candidate))
            inner.extend(nested)
        if not inner:
            return None
        queue = inner
    return None
