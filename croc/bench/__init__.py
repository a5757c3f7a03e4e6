"""Benchmarks runnable with nothing but torch, timm and numpy installed (a bare GPU box).

- `python -m croc.bench step` times the training step (train_step.py);
- `python -m croc.bench gpu` measures the step, the data kernel and the evaluation stages in one command, against
  the GPU targets (gpu.py);
- data.py holds the one-core measurements of `croc bench data`.
The evaluations' benchmark is croc/eval/bench.py (`python -m croc.eval.bench`); the benchmarks that need Ray are
pipelines/bench/."""
