"""What every metric in metrics.json means: formula, which direction is better, the baseline it
compares with and the convention it follows (METRICS.md). Reports and comparisons print from here."""

from __future__ import annotations

from typing import Literal, NamedTuple


class MetricInfo(NamedTuple):
    title: str
    formula: str
    better: Literal["higher", "lower"]
    baseline: str
    convention: str


R_NOTATION = ("R[i][j] = score on task j's test set after training tasks 1..i; row 0 (b_j) = before any "
              "training; T = number of tasks. Every score is 'higher is better' (accuracy, or negative MSE "
              "for regression).")

GLOSSARY: dict[str, MetricInfo] = {
    "acc": MetricInfo("ACC", "(1/T) Σ_j R[T][j]", "higher", "none",
                      "GEM (Lopez-Paz & Ranzato 2017) = A_T of RWalk"),
    "learning_acc": MetricInfo("learning accuracy", "(1/T) Σ_j R[j][j]", "higher", "none",
                               "LA of MER (Riemer et al. 2019): score right after each task is learned"),
    "bwt": MetricInfo("BWT", "1/(T−1) Σ_{j<T} (R[T][j] − R[j][j])", "higher",
                      "the task's own score right after it",
                      "GEM paper, divided by T−1 (GEM's code divides by T); < 0 = forgetting"),
    "fwt": MetricInfo("FWT", "1/(T−1) Σ_{j≥2} (R[j−1][j] − b_j)", "higher", "b_j = row 0, before any training",
                      "GEM paper, divided by T−1; > 0 = earlier tasks helped before training on j"),
    "forgetting": MetricInfo("forgetting", "mean_{j<T} [max_{l=j..T−1} R[l][j] − R[T][j]]", "lower",
                             "the task's best score since it was trained",
                             "Chaudhry et al. 2018 (RWalk), max over trained rows l = j..T−1 only "
                             "(the RWalk paper maxes over l = 1..T−1); > 0 = forgot"),
    "forgetting_avalanche": MetricInfo("forgetting (Avalanche)", "mean_{j<T} (R[j][j] − R[T][j]) = −BWT", "lower",
                                       "the task's score right after it was trained",
                                       "Avalanche StreamForgetting: initial − last, no max; can be < 0"),
    "intransigence": MetricInfo("intransigence I_T", "a*_T − R[T][T]", "lower",
                                "a*_k = joint model trained on tasks 1..k, evaluated on k",
                                "RWalk (Chaudhry et al. 2018), value at the last task; > 0 = learns less than "
                                "the joint model"),
    "intransigence_mean": MetricInfo("intransigence, mean", "mean_k (a*_k − R[k][k]) over the k in joint_at",
                                     "lower", "joint model on 1..k, at the k listed with the references",
                                     "RWalk, averaged over the k where a*_k was trained"),
    "ntg_learn": MetricInfo("negative transfer at acquisition", "mean_j (r_j − R[j][j])", "lower",
                            "r_j = independent learner: same model and budget, from scratch on task j",
                            "NTG sign of Wang et al. 2019: > 0 = worse than learning j alone (isolates transfer)"),
    "ntg_final": MetricInfo("negative transfer at the end", "mean_j (r_j − R[T][j])", "lower",
                            "r_j = independent learner, same budget", "as NTG_learn but at the end: mixes "
                                                                      "negative transfer and forgetting"),
    "dr_A": MetricInfo("A (Díaz-Rodríguez)", "mean_{i≥j} R[i][j], rows 1..T", "higher", "none",
                       "Díaz-Rodríguez et al. 2018: every seen entry over the lifetime"),
    "dr_BWT": MetricInfo("BWT (Díaz-Rodríguez)", "mean_{i>j} (R[i][j] − R[j][j])", "higher",
                         "the task's own score right after it", "Díaz-Rodríguez et al. 2018: all pairs i > j, "
                                                                "not only the final row"),
    "dr_REM": MetricInfo("REM", "1 − |min(BWT_DR, 0)|", "higher", "none",
                         "Díaz-Rodríguez et al. 2018; needs a [0, 1] score (n/a for regression)"),
    "dr_BWT_plus": MetricInfo("BWT⁺", "max(BWT_DR, 0)", "higher", "none",
                              "Díaz-Rodríguez et al. 2018; needs a [0, 1] score (n/a for regression)"),
    "dr_FWT": MetricInfo("FWT (Díaz-Rodríguez)", "mean_{i<j} R[i][j], rows 1..T", "higher", "none (a level)",
                         "Díaz-Rodríguez et al. 2018: no b_j subtracted, unlike GEM's FWT"),
    "acc_zero_shot": MetricInfo("ACC before adapting", "(1/T) Σ_j C[T][j][0]", "higher", "none",
                                "few-shot: ACC on the scores after 0 adaptation steps"),
    "adaptation_gain": MetricInfo("adaptation gain", "mean_j (C[T][j][K] − C[T][j][0])", "higher",
                                  "the score before adapting", "METRICS.md §5, final row, K = evaluation.steps"),
    "adaptation_area": MetricInfo("adaptation area", "mean_j mean_{s=0..K} (C[T][j][s] − C[T][j][0])", "higher",
                                  "the score before adapting", "area above the curve's start (LCA-style)"),
    "lca": MetricInfo("LCA_β", "1/(β+1) Σ_{b=0..β} mean_k C[k−1][k][b], β = min(10, K)", "higher", "none",
                      "A-GEM (Chaudhry et al. 2019) on the few-shot adaptation curve of each task just before "
                      "its training: b counts adaptation steps on the support set, not training minibatches "
                      "(per-minibatch training curves are not recorded)"),
}

GROUPS: dict[str, tuple[str, ...]] = {
    "Core metrics": ("acc", "learning_acc", "bwt", "fwt", "forgetting"),
    "Against the references": ("ntg_learn", "ntg_final", "intransigence", "intransigence_mean"),
    "Other conventions": ("forgetting_avalanche", "dr_A", "dr_BWT", "dr_REM", "dr_BWT_plus", "dr_FWT"),
    "Few-shot adaptation": ("acc_zero_shot", "adaptation_gain", "adaptation_area", "lca"),
}

PER_TASK: dict[str, str] = {
    "forgetting": "forgetting f_j = max_{l=j..T−1} R[l][j] − R[T][j] (lower is better)",
    "fwt": "forward transfer R[j−1][j] − b_j (higher is better)",
    "ntg_learn": "NTG_learn = r_j − R[j][j] (> 0 = negative transfer)",
    "ntg_final": "NTG_final = r_j − R[T][j] (> 0 = worse than the independent learner at the end)",
    "intransigence": "intransigence I_k = a*_k − R[k][k] (lower is better)",
    "adaptation_gain": "adaptation gain C[T][j][K] − C[T][j][0] (higher is better)",
}


def better(metric: str) -> str | None:
    info = GLOSSARY.get(metric)
    return info.better if info else None
