"""Stream specs: the YAML a researcher writes to describe a stream, validated by pydantic.

One model per builder, told apart by `builder:`, so a wrong field names the builder it belongs to.
The union is read off the builder registry (`lifelong.streams.registry`): a new builder module
adds its spec here by itself. The shipped spec classes are re-exported for convenience.

Nothing this module imports loads torch: the builders import it when they build tensors, so
`lifelong list` and config validation answer without paying for it.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from lifelong.streams.builtin.domain import PermutedSpec, RotatedSpec
from lifelong.streams.builtin.known_answer import RepeatSpec, UnrelatedSpec
from lifelong.streams.builtin.nway import NWayConflictSpec, NWaySpec
from lifelong.streams.builtin.sinusoid import SinusoidFamilySpec, SinusoidSpec
from lifelong.streams.builtin.split import SplitSpec
from lifelong.streams.registry import builders

StreamSpec = Annotated[Union[tuple(builder.spec for builder in builders().values())], Field(discriminator="builder")]

__all__ = ["StreamSpec", "SplitSpec", "PermutedSpec", "RotatedSpec", "SinusoidSpec", "SinusoidFamilySpec",
           "NWaySpec", "NWayConflictSpec", "RepeatSpec", "UnrelatedSpec"]
