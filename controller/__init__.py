"""Rolekeeper: a Kubernetes operator that makes AWS IAM roles and users declarative."""

__version__ = "0.1.0"
