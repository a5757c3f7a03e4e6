"""Pre-training on Ray Train, tracked in MLflow.

    pretrain.py        `croc pretrain`: the driver (checks, the TorchTrainer, evaluations, artifacts)
    train_loop.py      the Ray Train worker: steps, checkpoints, buffered metrics, per-checkpoint exports
    data_pipeline.py   Ray Data: Parquet shards -> two uint8 views + boxes + flips per image -> the workers
    progress.py        the progress bar, fed by rank 0 through `ProgressBoard`
    artifacts.py       the final backbone, exported from the final checkpoint, and the run's artifacts
    headlines.py       the evaluations' headline numbers, also on the pre-training run
    resume.py          the checks before a run resumes (its checkpoint, its config)
    worker_errors.py   a worker's own error, out of Ray Train's wrapping
"""
