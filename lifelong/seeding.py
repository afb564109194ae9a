"""Seeds derived from (run seed, purpose, index) so that no two consumers share a random stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Purposes keep streams apart: the training shuffle of task 3 never equals the init of task 3.
PURPOSES = {"stream": 0, "task": 1, "init": 2, "shuffle": 3, "buffer": 4, "episode": 5, "eval": 6, "schedule": 7}


def derive_seed(seed: int, purpose: str, *index: int) -> int:
    """A 63-bit seed that depends only on its arguments (numpy SeedSequence hashing)."""
    entropy = [int(seed), PURPOSES[purpose], *map(int, index)]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


def generator(seed: int, purpose: str, *index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded by `derive_seed`, living on `device`."""
    import torch

    return torch.Generator(device=device).manual_seed(derive_seed(seed, purpose, *index))
