"""CrOC: Cross-View Online Clustering for dense visual representation learning, in plain PyTorch.

This package never imports ray or mlflow: it runs and is tested anywhere, a bare GPU box included.
"""

__version__ = "0.1.0"
