"""A run folder's L2M outputs, in <run>/l2m/:

    <label>-seed<N>/log/              the lifetime as an l2logger log (see log.py)
    <label>-seed<N>/ste/<task>/       the single-task expert logs (independent learner: references.json, and
                                      its learning curves when the run has `independent` with curves)
    <label>-seed<N>/preprocessed.tsv  every logged value: raw, smoothed, normalised (L2M's preprocessing)
    <label>-seed<N>/terminal.tsv      every regime (block x task): its terminal performance
    metrics.json                      per lifetime: L2M metrics, per-task values, transfer per task pair,
                                      the reasons for NaN values, the settings and normalisation ranges

Written by `lifelong l2m RUN_FOLDER`, or at the end of a run whose config says `l2m: true`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lifelong.evaluation.analysis import reference_scores
from lifelong.evaluation.record import LifetimeRecord
from lifelong.l2m.compute import compute
from lifelong.l2m.log import l2m_task_names, write_expert_log, write_lifetime_log
from lifelong.record_log import LOG_NAME, RecordLog
from lifelong.run_folder import atomic_write, safe_name

L2M_DIR = "l2m"
RESULTS = "metrics.json"


def export_run(run_dir: str | Path, records: list[LifetimeRecord] | None = None) -> Path:
    """Write the L2M logs and metrics of every lifetime of the run folder; return l2m/metrics.json."""
    run = Path(run_dir)
    records = RecordLog(run / LOG_NAME).read() if records is None else records
    references_file = run / "references.json"
    references = reference_scores(json.loads(references_file.read_text()) if references_file.is_file() else None)
    results: dict[str, dict[str, dict]] = {}
    expert_curves = {record.seed: record.within_task for record in records if record.strategy == "independent"}
    for record in records:
        life = run / L2M_DIR / f"{safe_name(record.strategy, 'strategy label')}-seed{record.seed}"
        scenario = {"lifelong_strategy": record.strategy, "seed": record.seed}
        log = write_lifetime_log(record, life / "log", scenario)
        names = l2m_task_names(record.task_names)
        experts = {}
        refs = references.get((record.strategy, record.seed))
        for j, score in enumerate(refs.independent if refs is not None and refs.independent is not None else []):
            if not math.isnan(score):
                curve = [point[3] for point in expert_curves.get(record.seed, {}).get(j, [])]
                experts[names[j]] = write_expert_log(j, record.task_names[j], float(score), record.score_name,
                                                     life / "ste" / names[j], scenario, curve)
        result = compute(log, experts)
        write_preprocessing(result, life)
        results.setdefault(record.strategy, {})[str(record.seed)] = {
            **result.to_json(), "lifelong_task_names": dict(zip(names, record.task_names))}
    path = run / L2M_DIR / RESULTS
    atomic_write(path, json.dumps(results, indent=1, default=_plain) + "\n")
    return path


def write_preprocessing(result, folder: Path) -> list[Path]:
    """L2M's preprocessing beside the values: every logged value raw, smoothed and normalised
    (preprocessed.tsv), and every regime's terminal performance (terminal.tsv)."""
    paths = [folder / "preprocessed.tsv", folder / "terminal.tsv"]
    atomic_write(paths[0], result.data.to_csv(sep="\t", index=False))
    atomic_write(paths[1], result.terminal.to_csv(sep="\t", index=False))
    return paths


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_results(run_dir: str | Path) -> dict | None:
    """l2m/metrics.json of a run folder, or None when the run has no L2M outputs."""
    path = Path(run_dir) / L2M_DIR / RESULTS
    return json.loads(path.read_text()) if path.is_file() else None


def attach(records: list[LifetimeRecord], run_dir: str | Path) -> None:
    """Give each record its L2M result (record.l2m), when the run folder has one."""
    results = read_results(run_dir) or {}
    for record in records:
        record.l2m = results.get(record.strategy, {}).get(str(record.seed))


def is_run_folder(path: Path) -> bool:
    return (Path(path) / LOG_NAME).is_file()


def compute_log(log_dir: str | Path, ste_dir: str | Path | None = None, out: str | Path | None = None):
    """L2M metrics of any l2logger log; `ste_dir` holds one expert log folder per task, named after the
    task. With `out`, metrics.json, preprocessed.tsv and terminal.tsv are written there. Returns (result,
    files)."""
    experts = {}
    if ste_dir is not None:
        if not Path(ste_dir).is_dir():
            from lifelong.l2m import L2MError

            raise L2MError(f"--ste {ste_dir}: no such folder; give a folder holding one expert log folder per task")
        experts = {entry.name.lower(): entry for entry in sorted(Path(ste_dir).iterdir()) if entry.is_dir()}
    result = compute(log_dir, experts)
    written = []
    if out is not None:
        atomic_write(Path(out) / RESULTS, json.dumps(result.to_json(), indent=1, default=_plain) + "\n")
        written = [Path(out) / RESULTS, *write_preprocessing(result, Path(out))]
    return result, written


def refresh_metrics(folder) -> Path:
    """Rewrite the run's metrics.json with the L2M metrics in it, recomputed from the folder's files as
    the report does (`lifelong l2m` after a run)."""
    from lifelong.report.rundata import load_run  # the report's reader: imported by the command only

    folder.write_json("metrics.json", load_run(folder.path).metrics)
    return folder.file("metrics.json")
