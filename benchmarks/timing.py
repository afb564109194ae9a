"""One helper the benchmark scripts share: a function that also adds up the time its calls take."""

from __future__ import annotations

import time


def accumulated(function, totals: dict, key: str, clock=time.perf_counter):
    """`function`, adding the `clock` time of every call (also a raising one) to `totals[key]`."""
    def call(*args, **kwargs):
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            totals[key] += clock() - started
    return call
