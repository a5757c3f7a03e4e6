"""Orchestration of the CrOC method: the `croc` command line, Ray Data, Ray Train, Ray Tune, Ray tasks and MLflow.

One folder per concern, imports pointing downwards (cli -> sweep, bench -> train -> evaluate -> the shared modules):

    cli/        the `croc` command line            config/     the typed config, checked before Ray starts
    train/      pre-training (Ray Data, Train)     evaluate/   evaluations as Ray tasks, one MLflow run each
    sweep/      ablation grids (Ray Tune)          compare/    the paper's tables from MLflow
    bench/      the benchmarks that need Ray
    tracking.py (MLflow runs, tags, metrics), cluster.py (Ray: connect, plan, check), datasets.py (where a config's
    data lives), terminal.py (consoles, --verbose)

The layers and the data flow are described in docs/architecture.md.
"""
