"""Continual-learning metrics as pure functions of the accuracy record; each is registered with its
glossary entry (formula, sign, convention), which the report prints.

`R` has shape (T+1, T): row 0 = b (evaluation before any training), row i = after training
task i (1-based), column j = evaluated task (0-based). In 0-based terms the main diagonal
`R[c, c]` is the zero-shot score on task c+1 just before it is trained, and the diagonal
below it `R[c+1, c]` the score right after it is trained. Higher is better. Undefined
values (T = 1, cells not evaluated) are NaN, and NaN terms are skipped in averages.

The metrics a report shows are registered with `@metric` (lifelong.evaluation.registry): the
decorated function returns the metric's terms, and calling the registered metric averages them.
"""

from __future__ import annotations

import numpy as np

from lifelong.evaluation.registry import defined_mean, metric

NAN = float("nan")
LCA_BETA = 10  # A-GEM's beta, capped at the number of adaptation steps

CORE, REFERENCES, OTHER, FEW_SHOT = ("Core metrics", "Against the references", "Other conventions",
                                     "Few-shot adaptation")


def _check(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[1] < 1 or R.shape[0] != R.shape[1] + 1:
        raise ValueError(f"expected a record of shape (T+1, T) with T >= 1, got {R.shape}")
    return R


def _reference(R: np.ndarray, ref) -> np.ndarray:
    ref = np.asarray(ref, dtype=float)
    if ref.shape != (R.shape[1],):
        raise ValueError(f"expected a per-task reference of shape ({R.shape[1]},), got {ref.shape}")
    return ref


def _learned(R: np.ndarray) -> np.ndarray:
    return np.diagonal(R, offset=-1)  # R[j][j] (1-based): right after training task j


# ---- per-task quantities -------------------------------------------------------------------------

def fwt_per_task(R) -> np.ndarray:
    """R[j-1][j] - b_j per task: zero-shot score just before task j is trained minus its score
    at random init; NaN for task 1, which has no earlier task."""
    R = _check(R)
    out = np.diagonal(R) - R[0]
    out[0] = NAN
    return out


def _max_forgetting(R: np.ndarray, first_row) -> np.ndarray:
    """max_{first_row <= l <= T-1} R[l][j] - R[T][j] per task (`first_row`: scalar or one per
    task); NaN for j = T, where Chaudhry's f_j^T is not defined."""
    rows = np.arange(R.shape[0])[:, None]
    window = np.where((rows >= first_row) & (rows < R.shape[1]), R, np.nan)
    out = np.fmax.reduce(window, axis=0) - R[-1]  # fmax skips NaN without warning
    out[-1] = NAN
    return out


def forgetting_per_task(R) -> np.ndarray:
    """f_j = max_{l=j..T-1} R[l][j] - R[T][j]: Chaudhry et al. 2018 (RWalk) with the max over rows
    after task j was trained (Lifelong's choice); NaN for j = T."""
    R = _check(R)
    return _max_forgetting(R, first_row=np.arange(1, R.shape[1] + 1))


def forgetting_chaudhry_paper_per_task(R) -> np.ndarray:
    """f_j = max_{l=1..T-1} R[l][j] - R[T][j], rows before j was trained included
    (RWalk paper, Chaudhry et al. 2018; A-GEM code); NaN for j = T."""
    return _max_forgetting(_check(R), first_row=1)


def avalanche_forgetting_per_task(R) -> np.ndarray:
    """Avalanche ExperienceForgetting at stream end: initial - last = R[j][j] - R[T][j]; NaN for j = T."""
    R = _check(R)
    out = _learned(R) - R[-1]
    out[-1] = NAN
    return out


def intransigence_per_task(R, joint_diag) -> np.ndarray:
    """I_k = a*_k - R[k][k], a*_k = joint model on tasks 1..k evaluated on task k
    (RWalk, Chaudhry et al. 2018)."""
    R = _check(R)
    return _reference(R, joint_diag) - _learned(R)


def ntg_learn_per_task(R, independent_diag) -> np.ndarray:
    """NTG_learn = r_j - R[j][j] against the independent learner r_j (> 0 = negative transfer)."""
    R = _check(R)
    return _reference(R, independent_diag) - _learned(R)


def ntg_final_per_task(R, independent_diag) -> np.ndarray:
    """NTG_final = r_j - R[T][j] against the independent learner r_j (> 0 = worse at the end)."""
    R = _check(R)
    return _reference(R, independent_diag) - R[-1]


def negative_transfer_per_task(R, independent_diag) -> dict[str, np.ndarray]:
    """NTG_learn and NTG_final per task (sign of Wang et al. 2019's NTG: > 0 = negative transfer)."""
    return {"ntg_learn": ntg_learn_per_task(R, independent_diag), "ntg_final": ntg_final_per_task(R, independent_diag)}


def adaptation_gain(curve) -> np.ndarray:
    """c(K) - c(0) over the last axis: score after K adaptation steps minus the score before
    adapting."""
    curve = np.asarray(curve, dtype=float)
    return curve[..., -1] - curve[..., 0]


def adaptation_area(curve) -> np.ndarray:
    """mean_{s=0..K} (c(s) - c(0)) over the last axis: area of the adaptation curve above its
    start, normalised by the K+1 points (LCA-style: Chaudhry et al. 2019's learning curve area)."""
    curve = np.asarray(curve, dtype=float)
    return (curve - curve[..., :1]).mean(axis=-1)


def _final_curves(curves) -> np.ndarray:
    return np.asarray(curves, dtype=float)[-1]


# ---- registered metrics, in report order -----------------------------------------------------------

@metric("acc", group=CORE, title="ACC", formula="(1/T) Σ_j R[T][j]", better="higher", baseline="none",
        convention="GEM (Lopez-Paz & Ranzato 2017) = A_T of RWalk; Avalanche's stream accuracy weights the tasks "
                   "by test-set size instead (metrics.sample_weighted_accuracy)", cells="R[T][j]")
def acc(R) -> np.ndarray:
    """ACC = (1/T) sum_j R[T][j]: mean of the final row (GEM, Lopez-Paz & Ranzato 2017; = A_T)."""
    return _check(R)[-1]


@metric("learning_acc", group=CORE, title="learning accuracy", formula="(1/T) Σ_j R[j][j]", better="higher",
        baseline="none", convention="LA of MER (Riemer et al. 2019): score right after each task is learned",
        cells="R[j][j]")
def learning_acc(R) -> np.ndarray:
    """LA = (1/T) sum_j R[j][j]: mean score right after each task is learned (MER, Riemer et al. 2019)."""
    return _learned(_check(R))


@metric("bwt", group=CORE, title="BWT", formula="1/(T−1) Σ_{j<T} (R[T][j] − R[j][j])", better="higher",
        baseline="the task's own score right after it",
        convention="GEM paper, divided by T−1 (GEM's code divides by T); < 0 = forgetting; = Avalanche's StreamBWT",
        cells="R[T][j] with R[j][j], j < T")
def bwt(R) -> np.ndarray:
    """BWT = 1/(T-1) sum_{j<T} (R[T][j] - R[j][j]) (GEM paper); NaN for T = 1."""
    R = _check(R)
    return R[-1, :-1] - _learned(R)[:-1]


@metric("fwt", group=CORE, title="FWT", formula="1/(T−1) Σ_{j≥2} (R[j−1][j] − b_j)", better="higher",
        baseline="b_j = row 0, before any training",
        convention="GEM paper, divided by T−1; > 0 = earlier tasks helped before training on j; = Avalanche's "
                   "StreamForwardTransfer",
        cells="R[j−1][j] with b_j, j ≥ 2", per_task=fwt_per_task,
        per_task_title="forward transfer R[j−1][j] − b_j (higher is better)")
def fwt(R) -> np.ndarray:
    """FWT = 1/(T-1) sum_{j=2..T} (R[j-1][j] - b_j): zero-shot gain over random init
    (GEM paper, Lopez-Paz & Ranzato 2017); NaN for T = 1."""
    return fwt_per_task(R)[1:]


@metric("forgetting", group=CORE, title="forgetting", formula="mean_{j<T} [max_{l=j..T−1} R[l][j] − R[T][j]]",
        better="lower", baseline="the task's best score since it was trained",
        convention="Chaudhry et al. 2018 (RWalk), max over trained rows l = j..T−1 only "
                   "(the RWalk paper maxes over l = 1..T−1); > 0 = forgot",
        cells="R[T][j] with some R[l][j], j ≤ l < T", per_task=forgetting_per_task,
        per_task_title="forgetting f_j = max_{l=j..T−1} R[l][j] − R[T][j] (lower is better)")
def forgetting(R) -> np.ndarray:
    """F = mean_{j<T} f_j of `forgetting_per_task` (Lifelong's choice); NaN for T = 1."""
    return forgetting_per_task(R)[:-1]


@metric("ntg_learn", group=REFERENCES, title="negative transfer at acquisition", formula="mean_j (r_j − R[j][j])",
        better="lower", baseline="r_j = independent learner: same model and budget, from scratch on task j",
        convention="NTG sign of Wang et al. 2019: > 0 = worse than learning j alone (isolates transfer)",
        cells="R[j][j] with r_j", needs=("R", "independent"), per_task=ntg_learn_per_task,
        per_task_title="NTG_learn = r_j − R[j][j] (> 0 = negative transfer)")
def ntg_learn(R, independent_diag) -> np.ndarray:
    return ntg_learn_per_task(R, independent_diag)


@metric("ntg_final", group=REFERENCES, title="negative transfer at the end", formula="mean_j (r_j − R[T][j])",
        better="lower", baseline="r_j = independent learner, same budget",
        convention="as NTG_learn but at the end: mixes negative transfer and forgetting",
        cells="R[T][j] with r_j", needs=("R", "independent"), per_task=ntg_final_per_task,
        per_task_title="NTG_final = r_j − R[T][j] (> 0 = worse than the independent learner at the end)")
def ntg_final(R, independent_diag) -> np.ndarray:
    return ntg_final_per_task(R, independent_diag)


@metric("intransigence", group=REFERENCES, title="intransigence I_T", formula="a*_T − R[T][T]", better="lower",
        baseline="a*_k = joint model trained on tasks 1..k, evaluated on k",
        convention="RWalk (Chaudhry et al. 2018), value at the last task; > 0 = learns less than the joint model",
        cells="R[T][T] with a*_T", needs=("R", "joint"), per_task=intransigence_per_task,
        per_task_title="intransigence I_k = a*_k − R[k][k] (lower is better)")
def intransigence_final(R, joint_diag) -> np.ndarray:
    return intransigence_per_task(R, joint_diag)[-1:]


@metric("intransigence_mean", group=REFERENCES, title="intransigence, mean",
        formula="mean_k (a*_k − R[k][k]) over the k in joint_at", better="lower",
        baseline="joint model on 1..k, at the k listed with the references",
        convention="RWalk, averaged over the k where a*_k was trained", cells="R[k][k] with a*_k",
        needs=("R", "joint"))
def intransigence_mean(R, joint_diag) -> np.ndarray:
    return intransigence_per_task(R, joint_diag)


def intransigence(R, joint_diag) -> dict[str, float]:
    """RWalk intransigence: {"final": I_T, "mean": mean_k I_k} (NaN I_k skipped)."""
    return {"final": intransigence_final(R, joint_diag), "mean": intransigence_mean(R, joint_diag)}


@metric("forgetting_avalanche", group=OTHER, title="forgetting (Avalanche)",
        formula="mean_{j<T} (R[j][j] − R[T][j]) = −BWT", better="lower",
        baseline="the task's score right after it was trained",
        convention="Avalanche StreamForgetting: initial − last, no max; can be < 0",
        cells="R[j][j] with R[T][j], j < T", per_task=avalanche_forgetting_per_task)
def avalanche_forgetting(R) -> np.ndarray:
    """Avalanche StreamForgetting at stream end: mean_{j<T} (R[j][j] - R[T][j]) = -bwt(R)."""
    return avalanche_forgetting_per_task(R)[:-1]


def _dr_pairs(R) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows 1..T of R with the row and column index of every entry (Díaz-Rodríguez et al. 2018)."""
    M = _check(R)[1:]
    i, j = np.indices(M.shape)
    return M, i, j


@metric("dr_A", group=OTHER, title="A (Díaz-Rodríguez)", formula="mean_{i≥j} R[i][j], rows 1..T",
        better="higher", baseline="none", convention="Díaz-Rodríguez et al. 2018: every seen entry over the lifetime",
        cells="R[i][j], i ≥ j")
def dr_A(R) -> np.ndarray:
    M, i, j = _dr_pairs(R)
    return M[i >= j]


@metric("dr_BWT", group=OTHER, title="BWT (Díaz-Rodríguez)", formula="mean_{i>j} (R[i][j] − R[j][j])",
        better="higher", baseline="the task's own score right after it",
        convention="Díaz-Rodríguez et al. 2018: all pairs i > j, not only the final row",
        cells="R[i][j] with R[j][j], i > j")
def dr_BWT(R) -> np.ndarray:
    M, i, j = _dr_pairs(R)
    return (M - np.diagonal(M))[i > j]  # column j minus its own diagonal entry


def _rem(terms: np.ndarray) -> float:
    return float(1 - abs(np.minimum(defined_mean(terms), 0.0)))  # np.minimum keeps NaN


def _bwt_plus(terms: np.ndarray) -> float:
    return float(np.maximum(defined_mean(terms), 0.0))


@metric("dr_REM", group=OTHER, title="REM", formula="1 − |min(BWT_DR, 0)|", better="higher", baseline="none",
        convention="Díaz-Rodríguez et al. 2018; needs a [0, 1] score (n/a for regression)",
        cells="R[i][j] with R[j][j], i > j", reduce=_rem, bounded=True)
def dr_REM(R) -> np.ndarray:
    return dr_BWT.terms(R)


@metric("dr_BWT_plus", group=OTHER, title="BWT⁺", formula="max(BWT_DR, 0)", better="higher", baseline="none",
        convention="Díaz-Rodríguez et al. 2018; needs a [0, 1] score (n/a for regression)",
        cells="R[i][j] with R[j][j], i > j", reduce=_bwt_plus, bounded=True)
def dr_BWT_plus(R) -> np.ndarray:
    return dr_BWT.terms(R)


@metric("dr_FWT", group=OTHER, title="FWT (Díaz-Rodríguez)", formula="mean_{i<j} R[i][j], rows 1..T",
        better="higher", baseline="none (a level)",
        convention="Díaz-Rodríguez et al. 2018: no b_j subtracted, unlike GEM's FWT", cells="R[i][j], 1 ≤ i < j")
def dr_FWT(R) -> np.ndarray:
    M, i, j = _dr_pairs(R)
    return M[i < j]


def diaz_rodriguez(R) -> dict[str, float]:
    """A, BWT, REM, BWT+, FWT of Díaz-Rodríguez et al. 2018 over rows 1..T (paper, not continuum).

    A = mean_{i>=j} R[i][j]; BWT = mean_{i>j} (R[i][j] - R[j][j]); REM = 1 - |min(BWT, 0)|;
    BWT+ = max(BWT, 0); FWT = mean_{i<j} R[i][j] (a level: no b subtracted).
    """
    return {"A": dr_A(R), "BWT": dr_BWT(R), "REM": dr_REM(R), "BWT_plus": dr_BWT_plus(R), "FWT": dr_FWT(R)}


@metric("acc_zero_shot", group=FEW_SHOT, title="ACC before adapting", formula="(1/T) Σ_j C[T][j][0]",
        better="higher", baseline="none", convention="few-shot: ACC on the scores after 0 adaptation steps",
        cells="C[T][j][0]", needs=("curves",))
def acc_zero_shot(curves) -> np.ndarray:
    return acc.terms(np.asarray(curves, dtype=float)[:, :, 0])


@metric("adaptation_gain", group=FEW_SHOT, title="adaptation gain", formula="mean_j (C[T][j][K] − C[T][j][0])",
        better="higher", baseline="the score before adapting",
        convention="after the whole lifetime (final row), K = evaluation.steps adaptation steps", cells="C[T][j][K] with C[T][j][0]",
        needs=("curves",), per_task=lambda curves: adaptation_gain(_final_curves(curves)),
        per_task_title="adaptation gain C[T][j][K] − C[T][j][0] (higher is better)")
def mean_adaptation_gain(curves) -> np.ndarray:
    return adaptation_gain(_final_curves(curves))


@metric("adaptation_area", group=FEW_SHOT, title="adaptation area",
        formula="mean_j mean_{s=0..K} (C[T][j][s] − C[T][j][0])", better="higher",
        baseline="the score before adapting", convention="area above the curve's start (LCA-style)",
        cells="C[T][j][s]", needs=("curves",), per_task=lambda curves: adaptation_area(_final_curves(curves)))
def mean_adaptation_area(curves) -> np.ndarray:
    return adaptation_area(_final_curves(curves))


def lca_terms(curves, beta: int) -> np.ndarray:
    """Z_b = mean_k curves[k][b] for b = 0..beta (A-GEM's LCA terms), NaN entries skipped."""
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or not 0 <= beta < curves.shape[1]:
        raise ValueError(f"expected curves of shape (T, > beta), beta >= 0; got {curves.shape}, {beta=}")
    return np.array([defined_mean(curves[:, b]) for b in range(beta + 1)])


def lca(curves, beta: int) -> float:
    """LCA_beta = 1/(beta+1) sum_{b=0..beta} Z_b, Z_b = mean_k curves[k][b] (A-GEM, Chaudhry et al. 2019).

    `curves[k][b]` = score on task k after b minibatches of task k (b = 0: before its first
    update), NaN-padded; NaN entries are skipped in Z_b.
    """
    return defined_mean(lca_terms(curves, beta))


@metric("lca", group=FEW_SHOT, title="LCA_β", formula="1/(β+1) Σ_{b=0..β} mean_k C[k−1][k][b], β = min(10, K)",
        better="higher", baseline="none",
        convention="A-GEM (Chaudhry et al. 2019) on the few-shot adaptation curve of each task just before its "
                   "training: b counts adaptation steps on the support set, not training minibatches "
                   "(per-minibatch training curves are not recorded)",
        cells="C[k−1][k][b]", needs=("curves",))
def lca_before_training(curves) -> np.ndarray:
    """LCA terms Z_b on each task's adaptation curve just before its own training (C[k-1, k])."""
    curves = np.asarray(curves, dtype=float)
    n = curves.shape[1]
    return lca_terms(curves[np.arange(n), np.arange(n)], min(LCA_BETA, curves.shape[2] - 1))


# ---- conveniences ----------------------------------------------------------------------------------

def average_accuracy_after(R, k: int) -> float:
    """A_k = (1/k) sum_{j<=k} R[k][j], k = 1..T: mean over the tasks seen so far
    (RWalk, Chaudhry et al. 2018)."""
    R = _check(R)
    if not 1 <= k <= R.shape[1]:
        raise ValueError(f"k must be in 1..{R.shape[1]}, got {k}")
    return defined_mean(R[k, :k])


def sample_weighted_accuracy(R, test_sizes, row: int = -1) -> float:
    """sum_j n_j R[row][j] / sum_j n_j over every task, n_j = task j's test-set size (default row: T).

    Avalanche's stream accuracy (Top1_Acc_Stream): the accuracy of all test examples of the stream
    pooled, tasks not yet trained included. Equals ACC (`acc`, the unweighted mean) on the last row
    when the test sets are equally large.
    """
    R, n = _check(R), np.asarray(test_sizes, dtype=float)
    if n.shape != (R.shape[1],) or (n <= 0).any():
        raise ValueError(f"expected {R.shape[1]} positive test-set sizes, got {test_sizes!r}")
    return float(R[row] @ n / n.sum())


def bwt_gem_code(R) -> float:
    """GEM released code's BWT: the same sum divided by T, = ACC - LA = (T-1)/T * bwt (MER's BTI)."""
    R = _check(R)
    return defined_mean(R[-1] - _learned(R))


def core_metrics(R) -> dict:
    """Core set {acc, learning_acc, bwt, fwt, forgetting} plus forgetting_per_task, as plain
    floats and lists (NaN kept)."""
    return {"acc": acc(R), "learning_acc": learning_acc(R), "bwt": bwt(R), "fwt": fwt(R),
            "forgetting": forgetting(R), "forgetting_per_task": [float(f) for f in forgetting_per_task(R)]}


def to_higher_is_better(loss_matrix) -> np.ndarray:
    """Return -loss (e.g. negative MSE) so every metric here keeps "higher is better"
    and BWT < 0 / forgetting > 0 still mean "got worse" for regression."""
    return -np.asarray(loss_matrix, dtype=float)
