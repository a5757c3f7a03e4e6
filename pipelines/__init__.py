"""Orchestration of the CrOC method: the `croc` command line, Ray Data, Ray Train, Ray Tune, Ray tasks and MLflow.

The layers and the data flow are described in docs/architecture.md.
"""
