"""`python -m croc.bench step ...` times the training step (croc/bench/train_step.py); `python -m croc.bench gpu ...`
measures the platform on one machine (croc/bench/gpu.py)."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["gpu"]:
        from croc.bench.gpu import main as gpu_main

        gpu_main(sys.argv[2:])
    else:
        from croc.bench.train_step import main

        main()
