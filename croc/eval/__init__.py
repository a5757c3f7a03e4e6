"""Evaluations of a frozen backbone: linear segmentation, K-Means segmentation, DAVIS-2017 label propagation.

`tasks.run_task` runs one task end to end; the protocols, their constants and their metrics are described in
docs/evaluation.md ("Shared conventions", the three protocols, unsupervised "Matching", DAVIS "Metrics").
"""
