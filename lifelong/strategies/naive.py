"""Naive fine-tuning: one model trained on each task in turn, nothing to protect the past.

The lower reference of continual learning: whatever it forgets is the forgetting problem.
"""

from lifelong.strategies.base import Strategy


class Naive(Strategy):
    """Plain sequential fine-tuning (the base behaviour, under its field name)."""
