"""The benchmarks that need Ray: `croc bench data` (data.py: the Ray Data pipeline against the authors' way) and
`croc bench train` (train.py: Ray Train's overhead against a plain loop). Their parts that need torch alone are in
croc/bench/."""
