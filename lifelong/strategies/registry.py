"""Find strategy classes by name: entry points of the group `lifelong.strategies` (built-ins are
registered the same way in pyproject.toml), or `package.module:Class` when a config asks for it."""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points

from lifelong.strategies.base import Strategy

GROUP = "lifelong.strategies"


class UnknownStrategyError(ValueError):
    pass


def available() -> dict[str, str]:
    """Registered names and where they point."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def strategy_class(name: str) -> type[Strategy]:
    """The class for a registered name or an explicit `module:Class` reference."""
    cls = _import_reference(name) if ":" in name else _registered(name)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise UnknownStrategyError(f"{name!r} is {cls!r}, not a subclass of lifelong.strategies.base.Strategy")
    return cls


def _registered(name: str):
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        names = sorted(available())
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownStrategyError(
            f"unknown strategy {name!r}.{hint} Registered: {', '.join(names) or 'none (is lifelong pip-installed?)'}. "
            "Your own class: name it as 'package.module:ClassName', or expose it under the entry-point group "
            f"'{GROUP}'.")
    return found[0].load()


def _import_reference(reference: str):
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownStrategyError(f"cannot import module {module_name!r} for strategy {reference!r}: {error}. "
                                   "Is it on PYTHONPATH (or in the folder you run from)?") from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise UnknownStrategyError(f"module {module_name!r} has no attribute {attribute!r} "
                                   f"(strategy {reference!r})") from None
