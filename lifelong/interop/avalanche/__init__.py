"""Avalanche (avalanche-lib 0.6.0) inside Lifelong and Lifelong's streams inside Avalanche.

Installed by the `avalanche` extra: `pip install 'lifelong[avalanche]'` with
`torch==2.14.1 torchvision==0.29.1` (see the README). Importing this package never imports
avalanche; each entry point calls `require()` first, so without the extra it stops with one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from lifelong.errors import UserError

if TYPE_CHECKING:
    from lifelong.streams.task import Stream

INSTALL_HINT = ("pip install 'lifelong[avalanche]' torch==2.14.1 torchvision==0.29.1 "
                "(avalanche-lib 0.6.0 needs torchvision; that torch/torchvision pair installs together)")


class AvalancheMissing(UserError):
    """Avalanche is not installed (or does not import) and an Avalanche entry point was used."""


def require(what: str = "this") -> ModuleType:
    """The `avalanche` module, or an `AvalancheMissing` whose one line names the extra to install.

    `what` names the entry point in the message (e.g. "the 'avalanche' stream builder").
    """
    try:
        return importlib.import_module("avalanche")
    except ImportError as err:  # also `sys.modules['avalanche'] = None`, and a broken install
        raise AvalancheMissing(f"{what} needs Avalanche, which is not installed ({err}); "
                               f"install it with: {INSTALL_HINT}") from None


def from_avalanche(benchmark, scenario=None, name: str = "avalanche") -> Stream:
    """An Avalanche benchmark as a Lifelong `Stream`; see `lifelong.interop.avalanche.streams`."""
    require("from_avalanche")
    from lifelong.interop.avalanche.streams import from_avalanche as convert
    return convert(benchmark, scenario=scenario, name=name)


def to_avalanche(stream: Stream):
    """A Lifelong `Stream` as an Avalanche benchmark; see `lifelong.interop.avalanche.streams`."""
    require("to_avalanche")
    from lifelong.interop.avalanche.streams import to_avalanche as convert
    return convert(stream)


__all__ = ["AvalancheMissing", "INSTALL_HINT", "from_avalanche", "require", "to_avalanche"]
