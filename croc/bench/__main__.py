"""`python -m croc.bench step ...`: time the training step (see croc/bench/train_step.py)."""

from croc.bench.train_step import main

if __name__ == "__main__":
    main()
