"""What a lifetime costs: counted FLOPs (`flops`), the task's own peak memory (`memory`), energy
(`energy`) and the counters the orchestrator records per task and per evaluation (`meter`).

Levels (`cost:` in the config): `basic` (default) counts evaluations in full and a training loop's
steps twice per distinct step shape; `full` counts every operation; `off` records no cost but the
per-task wall time and peak memory. Nothing here is imported when the CLI starts.
"""

LEVELS = ("off", "basic", "full")
