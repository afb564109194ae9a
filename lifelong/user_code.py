"""Import what a config names as `package.module:attribute` (a user's strategy class, a benchmark factory)."""

from __future__ import annotations

import importlib
import os
import sys


def import_reference(reference: str, what: str, error: type[Exception]):
    """The attribute `reference` ("module:attribute") names, or `error` saying what failed and the fix.

    A module file in the current folder is found as the README promises (the folder goes last on the
    import path, so it never shadows an installed package). `what` names the config entry in messages.
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise error(f"{what} {reference!r} must name 'package.module:name'")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as exc:
        raise error(f"cannot import module {module_name!r} for {what} {reference!r}: {type(exc).__name__}: "
                    f"{exc}. Is it in the folder you run from (or on PYTHONPATH)?") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise error(f"module {module_name!r} has no attribute {attribute!r} ({what} {reference!r})") from None
