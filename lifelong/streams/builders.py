"""Turn a validated stream spec into a `Stream` whose tasks are built when the run reaches them.

Each task's randomness (subset, permutation, angle, sinusoid) comes from a seed derived from the
stream seed and the task index, so every strategy, seed and resumed run sees the same stream,
and a task built again is the same task. The builders live in `lifelong.streams.builtin`.
"""

from __future__ import annotations

from lifelong.streams.memory import tasks_bytes
from lifelong.streams.registry import StreamSpecBase, builders
from lifelong.streams.task import Stream, Tasks

# A stream whose tasks take at most this much all together keeps every task once built, so the
# strategies and seeds of a run share them; a larger one keeps only the last few.
KEEP_ALL_BYTES = 256 * 2**20
KEEP_LAST = 2


def build_stream(spec: StreamSpecBase) -> Stream:
    """The stream of `spec`; raises ValueError (naming the field and the fix) for what cannot be built."""
    recipe = builders()[spec.builder].build(spec)
    size = tasks_bytes(spec)
    keep = spec.n_tasks if size is not None and size <= KEEP_ALL_BYTES else KEEP_LAST
    return Stream(spec.name, spec.scenario, Tasks(recipe.names, recipe.make, keep), recipe.input_shape,
                  recipe.n_outputs, spec.seed, meta={**recipe.meta, "builder": spec.builder})
