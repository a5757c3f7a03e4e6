"""`croc sweep`: an ablation grid on Ray Tune; each trial pre-trains (Ray Train) and then evaluates (Ray tasks).

    run.py          `run_sweep`: start or resume a sweep, one Tune trial per planned trial, its MLflow sweep run
    sweep_file.py   a sweep file: its schema, the configs of its trials, the trial plan
    trial.py        one trial: `run_pretrain` with its overrides, its evaluations reported to Tune
    records.py      what MLflow records of each trial, and what `--resume` reads back
    baselines.py    the sweep's baselines, evaluated once
    table.py        the sweep's results table
"""
