"""Find strategy classes by name: entry points of the group `lifelong.strategies` (built-ins are
registered the same way in pyproject.toml), or `package.module:Class` when a config asks for it.

Listing the names imports no strategy (and so no torch): `lifelong list strategies` answers at once."""

from __future__ import annotations

import difflib
import importlib.util
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from lifelong.errors import ConfigError
from lifelong.user_code import import_reference

if TYPE_CHECKING:
    from lifelong.strategies.base import Strategy

GROUP = "lifelong.strategies"
AVALANCHE_PREFIX = "avalanche."
# `avalanche.<name>` -> the class in avalanche.training (lifelong.interop.avalanche.strategies runs it)
AVALANCHE_STRATEGIES = {"Naive": "Naive", "EWC": "EWC", "Replay": "Replay", "LwF": "LwF",
                        "SI": "SynapticIntelligence", "AGEM": "AGEM", "GEM": "GEM", "GDumb": "GDumb",
                        "DER": "DER", "ICaRL": "ICaRL"}


class UnknownStrategyError(ConfigError):
    pass


def available() -> dict[str, str]:
    """Registered names and where they point, and the Avalanche strategies Lifelong runs (with the
    `avalanche` extra)."""
    names = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    avalanche = "" if importlib.util.find_spec("avalanche") else " (needs the 'avalanche' extra)"
    return names | {AVALANCHE_PREFIX + name: f"avalanche.training:{target}{avalanche}"
                    for name, target in AVALANCHE_STRATEGIES.items()}


def strategy_class(name: str) -> type[Strategy]:
    """The class for a registered name or an explicit `module:Class` reference."""
    from lifelong.strategies.base import Strategy  # noqa: F811  (imports torch: only when a class is asked for)

    if ":" in name:
        cls = _import_reference(name)
    elif name.startswith(AVALANCHE_PREFIX):
        from lifelong.interop.avalanche.strategies import strategy_for  # imports avalanche

        cls = strategy_for(name.removeprefix(AVALANCHE_PREFIX))
    else:
        cls = _registered(name)
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
    return import_reference(reference, "strategy", UnknownStrategyError)
