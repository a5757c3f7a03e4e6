"""Evaluation metrics: split-level mIoU, Hungarian cluster-to-class matching, DAVIS-2017 J and F.

See docs/eval-protocols.md ("Shared conventions", unsupervised "Matching", DAVIS "Metrics").
"""
