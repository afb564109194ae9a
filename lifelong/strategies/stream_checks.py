"""Refusals of a stream a strategy cannot serve, raised from `setup` so that `lifelong validate` and
`lifelong run` (which set every strategy up before creating the run folder) stop before training."""

from __future__ import annotations

from lifelong.errors import ConfigError
from lifelong.streams.task import Stream


class UnsuitableStreamError(ConfigError):
    """A strategy given a stream (or an evaluation mode) it cannot serve; the message names the fix."""


def require_classification(stream: Stream, strategy: str, why: str, alternatives: str) -> None:
    """Refuse a regression stream to a classification-only strategy."""
    if stream.kind != "classification":
        raise UnsuitableStreamError(
            f"{strategy} {why}, so it needs a classification stream; stream {stream.name!r} ({stream.scenario}) "
            f"is {stream.kind}. Give `stream:` a classification stream (split, permuted, rotated) or choose a "
            f"strategy that serves regression ({alternatives})")


def require_scenario(stream: Stream, strategy: str, scenario: str, why: str, fix: str) -> None:
    """Refuse a stream of another scenario than the one the strategy is defined for."""
    if stream.scenario != scenario:
        raise UnsuitableStreamError(
            f"{strategy} {why}, so it serves {scenario} streams only; stream {stream.name!r} is "
            f"{stream.scenario}. {fix}")
