"""Continual-learning metrics as pure functions of the accuracy record (see METRICS.md).

`R` has shape (T+1, T): row 0 = b (evaluation before any training), row i = after training
task i (1-based), column j = evaluated task (0-based). In 0-based terms the main diagonal
`R[c, c]` is the zero-shot score on task c+1 just before it is trained, and the diagonal
below it `R[c+1, c]` the score right after it is trained. Higher is better. Undefined
values (T = 1, missing entries) are NaN, and NaN terms are skipped in averages.
"""

from __future__ import annotations

import numpy as np

NAN = float("nan")


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


def defined_mean(x) -> float:
    """Mean of the non-NaN values; NaN (without numpy's warning) when there are none."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else NAN


def _learned(R: np.ndarray) -> np.ndarray:
    return np.diagonal(R, offset=-1)  # R[j][j] (1-based): right after training task j


def acc(R) -> float:
    """ACC = (1/T) sum_j R[T][j]: mean of the final row (GEM, Lopez-Paz & Ranzato 2017; = A_T)."""
    return defined_mean(_check(R)[-1])


def learning_acc(R) -> float:
    """LA = (1/T) sum_j R[j][j]: mean score right after each task is learned
    (MER, Riemer et al. 2019)."""
    return defined_mean(_learned(_check(R)))


def average_accuracy_after(R, k: int) -> float:
    """A_k = (1/k) sum_{j<=k} R[k][j], k = 1..T: mean over the tasks seen so far
    (RWalk, Chaudhry et al. 2018)."""
    R = _check(R)
    if not 1 <= k <= R.shape[1]:
        raise ValueError(f"k must be in 1..{R.shape[1]}, got {k}")
    return defined_mean(R[k, :k])


def bwt(R) -> float:
    """BWT = 1/(T-1) sum_{j<T} (R[T][j] - R[j][j]) (GEM paper); NaN for T = 1."""
    R = _check(R)
    return defined_mean(R[-1, :-1] - _learned(R)[:-1])


def bwt_gem_code(R) -> float:
    """GEM released code's BWT: the same sum divided by T, = ACC - LA = (T-1)/T * bwt (MER's BTI)."""
    R = _check(R)
    return defined_mean(R[-1] - _learned(R))


def fwt_per_task(R) -> np.ndarray:
    """R[j-1][j] - b_j per task: zero-shot score just before task j is trained minus its score
    at random init; NaN for task 1, which has no earlier task."""
    R = _check(R)
    out = np.diagonal(R) - R[0]
    out[0] = NAN
    return out


def fwt(R) -> float:
    """FWT = 1/(T-1) sum_{j=2..T} (R[j-1][j] - b_j): zero-shot gain over random init
    (GEM paper, Lopez-Paz & Ranzato 2017); NaN for T = 1."""
    return defined_mean(fwt_per_task(R)[1:])


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


def forgetting(R) -> float:
    """F = mean_{j<T} f_j of `forgetting_per_task` (Lifelong's choice); NaN for T = 1."""
    return defined_mean(forgetting_per_task(R)[:-1])


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


def avalanche_forgetting(R) -> float:
    """Avalanche StreamForgetting at stream end: mean_{j<T} (R[j][j] - R[T][j]) = -bwt(R)."""
    return defined_mean(avalanche_forgetting_per_task(R)[:-1])


def intransigence_per_task(R, joint_diag) -> np.ndarray:
    """I_k = a*_k - R[k][k], a*_k = joint model on tasks 1..k evaluated on task k
    (RWalk, Chaudhry et al. 2018)."""
    R = _check(R)
    return _reference(R, joint_diag) - _learned(R)


def intransigence(R, joint_diag) -> dict[str, float]:
    """RWalk intransigence: {"final": I_T, "mean": mean_k I_k} (NaN I_k skipped)."""
    values = intransigence_per_task(R, joint_diag)
    return {"final": float(values[-1]), "mean": defined_mean(values)}


def negative_transfer_per_task(R, independent_diag) -> dict[str, np.ndarray]:
    """NTG_learn = r_j - R[j][j] and NTG_final = r_j - R[T][j] against the independent learner r_j
    (sign of Wang et al. 2019's NTG: > 0 = negative transfer)."""
    R = _check(R)
    r = _reference(R, independent_diag)
    return {"ntg_learn": r - _learned(R), "ntg_final": r - R[-1]}


def diaz_rodriguez(R) -> dict[str, float]:
    """A, BWT, REM, BWT+, FWT of Díaz-Rodríguez et al. 2018 over rows 1..T (paper, not continuum).

    A = mean_{i>=j} R[i][j]; BWT = mean_{i>j} (R[i][j] - R[j][j]); REM = 1 - |min(BWT, 0)|;
    BWT+ = max(BWT, 0); FWT = mean_{i<j} R[i][j] (a level: no b subtracted).
    """
    M = _check(R)[1:]
    i, j = np.indices(M.shape)
    back = defined_mean((M - np.diagonal(M))[i > j])  # column j minus its own diagonal entry
    return {
        "A": defined_mean(M[i >= j]),
        "BWT": back,
        "REM": float(1 - abs(np.minimum(back, 0.0))),  # np.minimum/maximum keep NaN for T = 1
        "BWT_plus": float(np.maximum(back, 0.0)),
        "FWT": defined_mean(M[i < j]),
    }


def lca(curves, beta: int) -> float:
    """LCA_beta = 1/(beta+1) sum_{b=0..beta} Z_b, Z_b = mean_k curves[k][b] (A-GEM, Chaudhry et al. 2019).

    `curves[k][b]` = score on task k after b minibatches of task k (b = 0: before its first
    update), NaN-padded; NaN entries are skipped in Z_b.
    """
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or not 0 <= beta < curves.shape[1]:
        raise ValueError(f"expected curves of shape (T, > beta), beta >= 0; got {curves.shape}, {beta=}")
    return defined_mean([defined_mean(curves[:, b]) for b in range(beta + 1)])


def adaptation_gain(curve) -> np.ndarray:
    """c(K) - c(0) over the last axis: score after K adaptation steps minus the score before
    adapting (METRICS.md §5)."""
    curve = np.asarray(curve, dtype=float)
    return curve[..., -1] - curve[..., 0]


def adaptation_area(curve) -> np.ndarray:
    """mean_{s=0..K} (c(s) - c(0)) over the last axis: area of the adaptation curve above its
    start, normalised by the K+1 points (LCA-style, METRICS.md §5)."""
    curve = np.asarray(curve, dtype=float)
    return (curve - curve[..., :1]).mean(axis=-1)


def core_metrics(R) -> dict:
    """Core set {acc, learning_acc, bwt, fwt, forgetting} plus forgetting_per_task, as plain
    floats and lists (NaN kept) for the run writer."""
    return {
        "acc": acc(R),
        "learning_acc": learning_acc(R),
        "bwt": bwt(R),
        "fwt": fwt(R),
        "forgetting": forgetting(R),
        "forgetting_per_task": [float(f) for f in forgetting_per_task(R)],
    }


def to_higher_is_better(loss_matrix) -> np.ndarray:
    """Return -loss (e.g. negative MSE) so every metric here keeps "higher is better"
    and BWT < 0 / forgetting > 0 still mean "got worse" for regression (METRICS.md §6)."""
    return -np.asarray(loss_matrix, dtype=float)
