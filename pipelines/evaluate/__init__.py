"""Evaluations as Ray tasks, each recorded as an MLflow run (nested under the pre-training run it evaluates).

    evaluations.py   `Evaluations`: the one way a command evaluates checkpoints (submit, collect, table, failures)
    requests.py      what one task is given (`EvalRequest`) and returns (`EvalSummary`); the requests of a checkpoint
    task.py          the Ray task: one evaluation in its own process, recorded as its own MLflow run
    progress.py      one progress bar per task (`EvalBoard`), waiting for the tasks (`collect`, `finished`)
    results.py       the results table, its headline numbers and the failures
    protocol.py      the `evaluation` section -> croc's protocol dataclasses
    checks.py        what is checked before any task starts (every task's dataset root)
    outputs.py       where evaluations write (DAVIS predictions): one folder per checkpoint label and task
    resolve.py       a `--checkpoint` argument -> what the task loads, and the MLflow run it came from
    run.py           `croc evaluate`: any checkpoint (ours, an MLflow run's, the authors', timm's, random init)
"""
