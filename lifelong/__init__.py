"""Lifelong: a lifelong/continual-learning simulation engine."""

__version__ = "0.1.0"
