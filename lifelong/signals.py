"""Ctrl-C between files, never inside one: bookkeeping runs with SIGINT held back until it is done."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def interrupts_deferred():
    """Hold SIGINT while the block writes; deliver it (KeyboardInterrupt by default) right after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; nothing to hold back here
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)
