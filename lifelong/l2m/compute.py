"""L2M metrics of one lifetime from its l2logger log, as the reference l2metrics 3.1.0 computes them
with its default settings (New et al. 2022, arXiv:2201.08278; l2metrics `report.py` and one module
per metric):

preprocessing
  1. keep complete experiences with a value; regimes = runs of rows with one block and task;
  2. smoothing: a flat moving average over each *training* regime (and every regime of the
     single-task experts), window min(20% of the regime, 100), none under 3 points;
  3. range normalisation per task: (x − min) / (max − min) · 100 + 1 over the task's lifetime and
     expert training data (a constant task becomes 1);
  4. terminal performance of a regime: the mean of a test regime, the mean of the last 10% of a
     training regime.
metrics (per task, then the lifetime value = the mean over tasks or task pairs)
  performance maintenance (MRLEP): each test of a task after its first post-training test, minus
    the most recent such reference test; forward / backward transfer, ratio tp2 / tp1 and contrast
    (tp2 − tp1) / (tp1 + tp2), of consecutive tests of task b around a training block of task a,
    before b's first training (forward) or after it (backward); relative performance: sum of the
    task's training curve over the sum of its single-task expert's, on their common length; sample
    efficiency: (saturation / expert saturation) · (expert experiences to saturation / experiences to
    saturation), 0 when the curve falls or saturates below 20% of the expert; performance recovery:
    minus the Theil-Sen slope of the recovery times of a task trained in several blocks.

Every value is written with the preprocessed data and the settings (see `L2MResult`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd

from lifelong.l2m import L2MError, require_l2logger

SCALE, OFFSET = 100, 1  # l2metrics' Normalizer defaults
TERMINAL_WINDOW = 0.1  # share of a training regime its terminal performance averages
SETTINGS = {"variant_mode": "aware", "ste_averaging_method": "metrics", "aggregation_method": "mean",
            "maintenance_method": "mrlep", "transfer_method": "both", "normalization_method": "task",
            "normalization_scale": SCALE, "normalization_offset": OFFSET, "smoothing_method": "flat",
            "window_length": None, "do_smooth_eval_data": False, "clamp_outliers": False,
            "terminal_window_ratio": TERMINAL_WINDOW}
TRANSFERS = ("forward_transfer_ratio", "backward_transfer_ratio", "forward_transfer_contrast",
             "backward_transfer_contrast")


@dataclass
class L2MResult:
    """One lifetime's L2M metrics: lifetime values, per-task values, transfer per ordered pair
    {trained task: {evaluated task: [values in order]}}, why a NaN is NaN, and the preprocessing."""

    perf_measure: str
    tasks: list[str]  # in order of first training, then tasks only evaluated
    lifetime: dict[str, float]
    per_task: dict[str, dict[str, float]]
    transfer: dict[str, dict[str, dict[str, list[float]]]]
    reasons: dict[str, str]
    data_range: dict[str, dict[str, float]]
    data: pd.DataFrame = field(repr=False)  # every kept row: raw, smoothed and normalised values
    terminal: pd.DataFrame = field(repr=False)  # every regime (block x task) with its terminal performance

    def to_json(self) -> dict:
        return {"perf_measure": self.perf_measure, "tasks": self.tasks, "settings": SETTINGS,
                "lifetime": self.lifetime, "per_task": self.per_task, "transfer": self.transfer,
                "reasons": self.reasons, "normalization_data_range": self.data_range}


def read_log(log_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """The log's rows (read and validated with l2logger's own functions) with their regime numbers, and
    the log's first metrics column."""
    _, util = require_l2logger()
    path = Path(log_dir)
    hint = ("an l2logger scenario folder holds logger_info.json, scenario_info.json and "
            "<worker>/<block>-<train|test>/data-log.tsv files")
    if not path.is_dir():
        raise L2MError(f"{path}: no such folder; give an l2logger scenario folder ({hint})")
    if not (path / "logger_info.json").is_file():
        raise L2MError(f"{path} has no logger_info.json, so it is not an l2logger log; {hint}")
    if not any(path.rglob("data-log.tsv")):
        raise L2MError(f"{path} has no data-log.tsv file, so it holds no experiences; {hint}")
    try:
        info = util.read_logger_info(path)
        data = util.read_log_data(path)
        util.validate_log(data, info["metrics_columns"])
        column = info["metrics_columns"][0]
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, pd.errors.ParserError) as error:
        raise L2MError(f"{path} is not a valid l2logger log ({type(error).__name__}: {error}); {hint}") from None
    data = data[(data["exp_status"] == "complete") & data[column].notna()].reset_index(drop=True)
    if data.empty:
        raise L2MError(f"{path}: no complete experience has a value in its metrics column {column!r}")
    _check_supported(data, path)
    data["regime_num"] = _regime_numbers(data)
    return data.sort_values(["regime_num", "exp_num"], kind="stable").reset_index(drop=True), column


def _check_supported(data: pd.DataFrame, path: Path) -> None:
    """Refuse what this implementation does not compute as l2metrics would: sleep blocks (l2metrics then
    uses only sleep evaluations) and several rows per experience (several workers, averaged per experience)."""
    if (data["block_subtype"] == "sleep").any():
        raise L2MError(f"{path} has sleep blocks; Lifelong computes L2M metrics of wake blocks only: use "
                       "l2metrics itself for this log")
    if data["exp_num"].duplicated().any():
        raise L2MError(f"{path} has several rows for one experience (exp_num), e.g. from several workers; "
                       "Lifelong computes L2M metrics of one row per experience: use l2metrics itself for this log")


def _regime_numbers(data: pd.DataFrame) -> np.ndarray:
    """l2logger's `fill_regime_num` in O(rows): a new regime where the block, its type or subtype, or
    the task changes from one row to the next."""
    keys = [data[c].to_numpy() for c in ("block_num", "block_type", "block_subtype", "task_name")]
    changes = np.any([k[1:] != k[:-1] for k in keys], axis=0) if len(data) > 1 else np.zeros(0, dtype=bool)
    return np.concatenate([[0], np.cumsum(changes)])


def smooth(x: np.ndarray) -> np.ndarray:
    """l2metrics' flat moving average with reflected ends, same length as `x` (identity under 3 points)."""
    window = min(int(x.size * 0.2), 100)
    if window < 3:
        return x
    s = np.r_[x[window - 1:0:-1], x, x[-2:-window - 1:-1]]
    s = s[~np.isnan(s)]
    y = np.convolve(np.ones(window) / window, s, mode="valid")
    return y[int(np.floor(window / 2 - 1)):-int(np.ceil(window / 2))]


@dataclass
class _Blocks:
    """The regimes of a log: block number, type and task of each, its rows, and each task's regimes."""

    regimes: pd.DataFrame  # indexed by regime number
    rows: dict[int, np.ndarray]  # regime -> positions of its rows in the data
    trained: dict[str, np.ndarray]  # task -> its training regimes, in order
    tested: dict[str, np.ndarray]  # task -> its test regimes, in order

    @classmethod
    def of(cls, data: pd.DataFrame) -> _Blocks:
        regimes = data.groupby("regime_num", sort=True).agg(
            block_num=("block_num", "first"), block_type=("block_type", "first"), task=("task_name", "first"))
        of_type = {kind: regimes[regimes["block_type"] == kind].groupby("task").groups for kind in ("train", "test")}
        tasks = regimes["task"].unique()
        return cls(regimes, data.groupby("regime_num").indices,
                   *({t: np.sort(np.asarray(of_type[kind].get(t, []), dtype=int)) for t in tasks}
                     for kind in ("train", "test")))

    def type_of(self, regime: int) -> str:
        return self.regimes.at[regime, "block_type"]


def _terminal(values: np.ndarray, block_type: str) -> float:
    if not values.size:
        return math.nan
    return float(values.mean() if block_type == "test" else values[int((1 - TERMINAL_WINDOW) * values.size):].mean())


def _saturation(values: np.ndarray) -> tuple[float, int]:
    smoothed = smooth(values)
    smoothed = smoothed[~np.isnan(smoothed)]
    if not smoothed.size:
        return math.nan, -1
    return float(smoothed.max()), int(np.flatnonzero(smoothed == smoothed.max())[0])


def compute(log_dir: str | Path, ste_dirs: dict[str, Path] | None = None) -> L2MResult:
    """L2M metrics of the log at `log_dir`; `ste_dirs` maps a task name to its single-task expert's log."""
    data, column = read_log(log_dir)
    ste = {task.lower(): _smoothed_ste(*read_log(d)) for task, d in (ste_dirs or {}).items()}
    blocks = _Blocks.of(data)
    order = blocks.regimes.sort_values(["block_type", "block_num"], ascending=[False, True], kind="stable")
    tasks = list(dict.fromkeys(order["task"]))
    data["raw"] = data[column].to_numpy(dtype=float)
    values = data["raw"].to_numpy(copy=True)
    for regime in blocks.regimes.index[blocks.regimes["block_type"] == "train"]:
        values[blocks.rows[regime]] = smooth(values[blocks.rows[regime]])
    data["smoothed"] = values
    task_rows = data.groupby("task_name").indices
    data_range, normalised = {}, np.empty_like(values)
    for task in tasks:
        expert = [s["value"].to_numpy() for s in ste.get(task, [])]
        both = np.concatenate([values[task_rows[task]], *expert])
        data_range[task] = {"min": float(np.nanmin(both)), "max": float(np.nanmax(both))}
        normalised[task_rows[task]] = _normalise(values[task_rows[task]], data_range[task])
    data["normalized"] = normalised
    ste = {task: [s.assign(value=_normalise(s["value"].to_numpy(), data_range[task])) for s in runs]
           for task, runs in ste.items() if task in data_range}
    series = {r: normalised[rows] for r, rows in blocks.rows.items()}
    term = {r: _terminal(series[r], blocks.type_of(r)) for r in blocks.rows}
    per_task: dict[str, dict] = {task: {} for task in tasks}
    reasons: dict[str, str] = {}
    transfer = _transfer(blocks, term)
    _averages(blocks, series, tasks, per_task)
    _maintenance(blocks, term, tasks, per_task)
    _relative_and_efficiency(blocks, data, ste, tasks, per_task, reasons)
    _recovery(blocks, series, term, tasks, per_task)
    lifetime = {}
    for key in ("avg_train_perf", "avg_eval_perf", "perf_maintenance_mrlep", "ste_rel_perf", "sample_efficiency",
                "perf_recovery"):
        found = [v[key] for v in per_task.values() if key in v and not math.isnan(v[key])]
        lifetime[key] = float(np.mean(found)) if found else math.nan
    for key in TRANSFERS:
        firsts = [first for pairs in transfer[key].values() for first, *_ in pairs.values()]
        lifetime[key] = float(np.mean(firsts)) if firsts else math.nan
    for key, reason in _default_reasons().items():
        if math.isnan(lifetime[key]):
            reasons.setdefault(key, reason)
    reasons = {k: v for k, v in reasons.items() if math.isnan(lifetime[k])}
    kept = data[["regime_num", "block_num", "block_type", "exp_num", "task_name", "raw", "smoothed", "normalized"]]
    terminal = blocks.regimes.assign(terminal_performance=pd.Series(term)).reset_index()
    return L2MResult(column, tasks, lifetime, per_task, transfer, reasons, data_range, kept, terminal)


def _default_reasons() -> dict[str, str]:
    return {"perf_maintenance_mrlep": "no task was tested again after its first test following its training",
            "forward_transfer_ratio": "no task was tested before and after another task's training, before "
                                      "its own", "forward_transfer_contrast": "as forward_transfer_ratio",
            "backward_transfer_ratio": "no task was tested before and after another task's training, after "
                                       "its own", "backward_transfer_contrast": "as backward_transfer_ratio",
            "ste_rel_perf": "no single-task expert log for the trained tasks",
            "sample_efficiency": "no single-task expert log for the trained tasks",
            "perf_recovery": "needs at least two recovery times, i.e. tasks trained in three or more blocks",
            "avg_train_perf": "no training block", "avg_eval_perf": "no test block"}


def _smoothed_ste(data: pd.DataFrame, column: str) -> list[pd.DataFrame]:
    """A single-task expert's training rows, smoothed per regime, as one run (l2metrics' 'metrics' averaging)."""
    values = data[column].to_numpy(dtype=float, copy=True)
    for regime in data["regime_num"].unique():
        rows = (data["regime_num"] == regime).to_numpy()
        values[rows] = smooth(values[rows])
    train = data["block_type"].to_numpy() == "train"
    return [pd.DataFrame({"exp_num": data["exp_num"].to_numpy()[train], "value": values[train]})]


def _normalise(x: np.ndarray, data_range: dict) -> np.ndarray:
    """(x − min) / (max − min) · 100 + 1 over the task's range; a constant task becomes 1."""
    low, high = data_range["min"], data_range["max"]
    x = np.asarray(x, dtype=float)
    return x * 0 + OFFSET if low == high else (x - low) / (high - low) * SCALE + OFFSET


def _transfer(blocks: _Blocks, term: dict) -> dict:
    """{metric: {trained task a: {tested task b: [values]}}}: l2metrics' Transfer, ratio and contrast.

    For each training regime of a (before b's first training: forward; after it: backward), the tests
    of b just before and after it; a later pair sharing that second test replaces an earlier one, as
    in l2metrics (only with tests sparser than trainings)."""
    found: dict[str, dict[int, tuple[str, str, float]]] = {key: {} for key in TRANSFERS}
    for a, b in permutations(blocks.regimes["task"].unique(), 2):
        trained, tests, b_trained = blocks.trained[a], blocks.tested[b], blocks.trained[b]
        first_b = b_trained[0] if b_trained.size else np.inf
        for direction, chosen in (("forward", trained[trained < first_b]), ("backward", trained[trained > first_b])):
            after = np.searchsorted(tests, chosen)
            inside = (after > 0) & (after < tests.size)
            for t1, t2 in zip(tests[after[inside] - 1], tests[after[inside]]):
                tp1, tp2 = term[t1], term[t2]
                if tp1 != 0:
                    found[f"{direction}_transfer_ratio"][t2] = (a, b, tp2 / tp1)
                if tp1 + tp2 != 0:
                    found[f"{direction}_transfer_contrast"][t2] = (a, b, (tp2 - tp1) / (tp1 + tp2))
    out = {}
    for key, by_regime in found.items():
        pairs: dict[str, dict[str, list[float]]] = {}
        for regime in sorted(by_regime):
            a, b, value = by_regime[regime]
            pairs.setdefault(a, {}).setdefault(b, []).append(float(value))
        out[key] = pairs
    return out


def _averages(blocks: _Blocks, series, tasks, per_task) -> None:
    for task in tasks:
        for key, regimes in (("avg_train_perf", blocks.trained[task]), ("avg_eval_perf", blocks.tested[task])):
            if regimes.size:
                per_task[task][key] = float(np.mean([np.nanmean(series[r]) for r in regimes]))


def _maintenance(blocks: _Blocks, term, tasks, per_task) -> None:
    """MRLEP: each later test minus the most recent reference test (the first test after a training)."""
    for task in tasks:
        trained, tests = blocks.trained[task], blocks.tested[task]
        followed = trained[trained < tests.max(initial=-1)]  # trainings with a test after them
        refs = np.unique(tests[np.searchsorted(tests, followed)])  # the first test after each
        diffs = [term[t] - term[refs[refs < t][-1]] for t in tests if np.any(refs < t) and t not in refs]
        if diffs:
            per_task[task]["perf_maintenance_mrlep"] = float(np.mean(diffs))


def _relative_and_efficiency(blocks: _Blocks, data, ste, tasks, per_task, reasons) -> None:
    """Relative performance and sample efficiency against each expert run, l2metrics' 'metrics' averaging."""
    normalised, exp_num = data["normalized"].to_numpy(), data["exp_num"].to_numpy()
    for task in tasks:
        if not blocks.trained[task].size:
            continue
        if not ste.get(task):
            reasons.setdefault("ste_rel_perf", f"no single-task expert log for task {task!r}")
            reasons.setdefault("sample_efficiency", f"no single-task expert log for task {task!r}")
            continue
        rows = np.concatenate([blocks.rows[r] for r in blocks.trained[task]])
        curve, exps = normalised[rows], exp_num[rows]
        relative, efficiency = [], []
        saturation, to_saturation = _saturation(curve)
        slope = np.polyfit(exps, curve, 1)[0] if curve.size > 1 else 0.0
        for expert in ste[task]:
            n = min(curve.size, len(expert))
            relative.append(float(np.nansum(curve[:n]) / np.nansum(expert["value"].to_numpy()[:n])))
            expert_saturation, expert_to_saturation = _saturation(expert["value"].to_numpy())
            if to_saturation == 0 or expert_to_saturation == 0:
                continue
            ok = saturation >= 0.2 * expert_saturation and slope >= 0
            efficiency.append(saturation / expert_saturation * expert_to_saturation / to_saturation if ok else 0.0)
        per_task[task]["ste_rel_perf"] = float(np.nanmean(relative))
        if efficiency:
            per_task[task]["sample_efficiency"] = float(np.nanmean(efficiency))
        else:
            reasons.setdefault("sample_efficiency", "the training curve (or the expert's) reaches its maximum at its "
                                                    "first experience, so experiences to saturation are 0")


def _recovery(blocks: _Blocks, series, term, tasks, per_task) -> None:
    """Recovery time of each training block of a task after its first (experiences until the previous
    block's terminal performance is reached again); performance recovery = −Theil-Sen slope of them."""
    from scipy import stats

    times = {}
    for task in tasks:
        trained = blocks.trained[task]
        times[task] = []
        for previous, current in zip(trained, trained[1:]):
            reached = np.flatnonzero(series[current] >= term[previous])
            times[task].append(float(reached[0]) if reached.size else float(series[current].size + 1))
        if times[task]:
            per_task[task]["recovery_times"] = times[task]
    if sum(len(t) for t in times.values()) <= 1:
        return
    for task, found in times.items():
        if len(found) > 1:
            per_task[task]["perf_recovery"] = float(-stats.theilslopes(np.array(found)).slope)
