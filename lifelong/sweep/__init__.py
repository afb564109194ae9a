"""Sweeps: many runs of one experiment config, varied over strategies, streams, seeds and any parameter.

A sweep file (YAML)::

    base: quickstart.yaml        # the experiment config every run starts from (relative to this file)
    name: lr_study               # optional; default: the file's stem. Sweep folder: <out>/<name>
    out: reports/sweeps          # optional
    set:                         # optional: parameters every run gets
      references.enabled: false
    grid:                        # every combination of the values (cartesian product) ...
      strategy: [naive, {name: ewc, params: {lambda: 100}}]
      stream: [split_digits, permuted_digits]
      seed: [0, 1, 2]
      training.lr: [0.01, 0.05]
    # ... or `list:` instead of `grid:`, one mapping per run:
    # list:
    #   - {strategy: naive, seed: 0}
    #   - {strategy: replay, seed: 0, strategies.0.params.buffer_size: 500}

A parameter is any dotted config path, exactly as the overrides of `lifelong run` (`training.lr`,
`stream.n_tasks`, `strategies.0.params.lambda`, `stream` as a shipped name or path); `strategy` (a name or
a strategy entry) and `seed` are shorthands for a run of that one strategy or seed; a `strategy` name that is
the label (or the name) of one of the base config's strategies stands for that entry, params and all. A
parameter a run does not name keeps the base config's value (all its strategies and seeds when
`strategy`/`seed` are not swept).
Whole sections apply before their fields (`stream` before `set: {stream.n_tasks: 3}`), and a run's own
values after `set:`.

Each run is a normal run folder, <sweep folder>/runs/<run id>, where the id is a slug of the parameters and
a hash of them with the base config: starting the same sweep again skips finished runs and resumes
unfinished ones. The sweep folder also holds index.csv / index.json (run id, status, folder, seconds,
error, parameters) and compare/ (the `lifelong compare` view of the finished runs).
"""

from lifelong.sweep.driver import SweepResult, run_sweep
from lifelong.sweep.spec import SweepError, load_sweep

__all__ = ["SweepError", "SweepResult", "load_sweep", "run_sweep"]
