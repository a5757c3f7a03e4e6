"""Orchestration of the CrOC method: command line, demo, and (later) Ray Data / Train / Tune and MLflow."""
