"""Metrics on small records whose expected values are worked out by hand (the report glossary states each definition).

Record convention: row 0 = b (before training), row i = after training task i, column j = task j+1.
"""

import json
import math

import numpy as np
import pytest

from lifelong.evaluation import metrics as m
from lifelong.evaluation.aggregate import (INCONCLUSIVE, NEGATIVE, NONE, gap_beyond_noise, seeds_needed, summarize,
                                          t975)

nan = math.nan
approx = pytest.approx

# Three tasks. Task 2 scores 0.9 zero-shot (row 1) and only 0.8 after its own training (row 2),
# so the RWalk-paper forgetting (max over rows 1..T-1) differs from Lifelong's (rows j..T-1).
R3 = np.array([
    [0.1, 0.5, 0.3],  # b
    [0.9, 0.9, 0.2],  # after task 1
    [0.8, 0.8, 0.5],  # after task 2
    [0.6, 0.7, 0.9],  # after task 3
])


def test_three_task_record_by_hand():
    assert m.acc(R3) == approx(2.2 / 3)  # (0.6 + 0.7 + 0.9) / 3
    assert m.learning_acc(R3) == approx(2.6 / 3)  # (0.9 + 0.8 + 0.9) / 3
    assert m.average_accuracy_after(R3, 1) == approx(0.9)  # R[1][1]
    assert m.average_accuracy_after(R3, 2) == approx(0.8)  # (0.8 + 0.8) / 2
    assert m.average_accuracy_after(R3, 3) == approx(2.2 / 3)  # = ACC
    assert m.bwt(R3) == approx(-0.2)  # ((0.6 - 0.9) + (0.7 - 0.8)) / 2
    assert m.bwt_gem_code(R3) == approx(-0.4 / 3)  # (-0.3 - 0.1 + 0) / 3
    assert m.fwt(R3) == approx(0.3)  # ((0.9 - 0.5) + (0.5 - 0.3)) / 2
    # Lifelong: task 1 max(0.9, 0.8) - 0.6 = 0.3; task 2 max(0.8) - 0.7 = 0.1; task 3 undefined
    np.testing.assert_allclose(m.forgetting_per_task(R3), [0.3, 0.1, nan])
    assert m.forgetting(R3) == approx(0.2)  # (0.3 + 0.1) / 2
    # RWalk paper: task 2 max(0.9, 0.8) - 0.7 = 0.2 (row 1 is before task 2 was trained)
    np.testing.assert_allclose(m.forgetting_chaudhry_paper_per_task(R3), [0.3, 0.2, nan])
    # Avalanche initial - last: 0.9 - 0.6 = 0.3, 0.8 - 0.7 = 0.1
    np.testing.assert_allclose(m.avalanche_forgetting_per_task(R3), [0.3, 0.1, nan])
    assert m.avalanche_forgetting(R3) == approx(0.2)


def test_three_task_references_by_hand():
    joint = [0.95, 0.9, 0.85]
    # I_k = a*_k - R[k][k]: 0.95 - 0.9, 0.9 - 0.8, 0.85 - 0.9
    np.testing.assert_allclose(m.intransigence_per_task(R3, joint), [0.05, 0.1, -0.05])
    assert m.intransigence(R3, joint) == {"final": approx(-0.05), "mean": approx(0.1 / 3)}  # 0.05+0.1-0.05
    # a missing joint run is skipped: mean (0.1 - 0.05) / 2
    assert m.intransigence(R3, [nan, 0.9, 0.85])["mean"] == approx(0.025)
    ntg = m.negative_transfer_per_task(R3, [0.85, 0.85, 0.85])
    np.testing.assert_allclose(ntg["ntg_learn"], [-0.05, 0.05, -0.05])  # 0.85 - (0.9, 0.8, 0.9)
    np.testing.assert_allclose(ntg["ntg_final"], [0.25, 0.15, -0.05])  # 0.85 - (0.6, 0.7, 0.9)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        m.intransigence_per_task(R3, [0.9, 0.9])


def test_diaz_rodriguez_by_hand():
    dr = m.diaz_rodriguez(R3)
    assert dr["A"] == approx(4.7 / 6)  # (0.9 + 0.8 + 0.8 + 0.6 + 0.7 + 0.9) / (3*4/2)
    # all i > j pairs: (0.8 - 0.9) + (0.6 - 0.9) + (0.7 - 0.8) = -0.5 over 3*2/2 = 3 pairs
    # (continuum's loop skips j = i-1 and would give -0.3 / 3 = -0.1)
    assert dr["BWT"] == approx(-0.5 / 3)
    assert dr["REM"] == approx(1 - 0.5 / 3)  # 1 - |min(BWT, 0)|
    assert dr["BWT_plus"] == 0.0  # max(BWT, 0)
    assert dr["FWT"] == approx(1.6 / 3)  # upper triangle of rows 1..3: (0.9 + 0.2 + 0.5) / 3


@pytest.mark.filterwarnings("error")  # NaN must come without numpy's empty-mean warnings
def test_single_task_defines_levels_only():
    R1 = np.array([[0.2], [0.7]])
    assert m.acc(R1) == 0.7
    assert m.learning_acc(R1) == 0.7
    assert m.bwt_gem_code(R1) == 0.0  # BTI = ACC - LA = 0
    for undefined in (m.bwt, m.fwt, m.forgetting, m.avalanche_forgetting):
        assert math.isnan(undefined(R1))
    assert np.isnan(m.forgetting_per_task(R1)).all()
    assert np.isnan(m.forgetting_chaudhry_paper_per_task(R1)).all()
    dr = m.diaz_rodriguez(R1)
    assert dr["A"] == 0.7
    assert all(math.isnan(dr[k]) for k in ("BWT", "REM", "BWT_plus", "FWT"))
    assert m.intransigence(R1, [0.8]) == {"final": approx(0.1), "mean": approx(0.1)}  # 0.8 - 0.7
    assert m.negative_transfer_per_task(R1, [0.6])["ntg_learn"] == approx([-0.1])  # 0.6 - 0.7


def test_zero_forgetting_with_positive_bwt():
    R = np.array([
        [0.1, 0.1, 0.1],
        [0.5, 0.2, 0.1],
        [0.8, 0.6, 0.3],
        [0.8, 0.6, 0.7],
    ])
    assert m.bwt(R) == approx(0.15)  # ((0.8 - 0.5) + (0.6 - 0.6)) / 2
    np.testing.assert_allclose(m.forgetting_per_task(R), [0.0, 0.0, nan])  # max(0.5, 0.8) - 0.8; 0.6 - 0.6
    assert m.forgetting(R) == 0.0
    assert m.avalanche_forgetting(R) == approx(-0.15)  # Avalanche "forgetting" goes negative


@pytest.mark.parametrize("R", [R3, np.arange(20.0).reshape(5, 4) % 7 / 7])
def test_identities(R):
    T = R.shape[1]
    # ACC - LA = (T-1)/T * BWT = GEM-code BWT (= MER BTI)
    assert m.acc(R) - m.learning_acc(R) == approx((T - 1) / T * m.bwt(R))
    assert m.bwt_gem_code(R) == approx((T - 1) / T * m.bwt(R))
    assert m.avalanche_forgetting(R) == approx(-m.bwt(R))
    assert m.average_accuracy_after(R, T) == approx(m.acc(R))
    # Chaudhry forgetting >= -BWT term per task (row l = j is among the rows maxed)
    per_bwt = R[-1, :-1] - np.diagonal(R, offset=-1)[:-1]
    assert (m.forgetting_per_task(R)[:-1] >= -per_bwt - 1e-12).all()


def test_independent_model_identity():
    # each column sits at b_j until its own training, then stays constant: R[j-1][j] == b_j
    R = np.array([
        [0.1, 0.2, 0.3],
        [0.9, 0.2, 0.3],
        [0.9, 0.8, 0.3],
        [0.9, 0.8, 0.7],
    ])
    assert m.bwt(R) == 0.0
    assert m.forgetting(R) == 0.0
    assert m.fwt(R) == 0.0
    assert m.avalanche_forgetting(R) == 0.0


def test_missing_entries_are_skipped():
    R = R3.copy()
    R[1, 1] = nan  # zero-shot score of task 2 not evaluated
    assert m.fwt(R) == approx(0.2)  # only task 3 defined: 0.5 - 0.3
    assert m.forgetting_chaudhry_paper_per_task(R)[1] == approx(0.1)  # max(0.8) - 0.7


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.zeros(4), np.zeros((1, 0)), np.zeros((2, 2, 1))])
def test_wrong_shape_raises(bad):
    with pytest.raises(ValueError, match=r"\(T\+1, T\)"):
        m.acc(bad)


def test_lca_by_hand():
    curves = [[0.1, 0.5, 0.7], [0.3, 0.6, nan]]  # task 2 saw one minibatch only
    assert m.lca(curves, 0) == approx(0.2)  # Z_0 = (0.1 + 0.3) / 2
    assert m.lca(curves, 1) == approx(0.375)  # (Z_0 + Z_1) / 2 = (0.2 + 0.55) / 2
    assert m.lca(curves, 2) == approx(1.45 / 3)  # (0.2 + 0.55 + 0.7) / 3, Z_2 over task 1 only
    with pytest.raises(ValueError):
        m.lca(curves, 3)


def test_adaptation_gain_and_area_by_hand():
    curve = np.array([[0.2, 0.5, 0.8], [0.4, 0.4, 0.1]])
    np.testing.assert_allclose(m.adaptation_gain(curve), [0.6, -0.3])  # 0.8 - 0.2; 0.1 - 0.4
    np.testing.assert_allclose(m.adaptation_area(curve), [0.3, -0.1])  # (0 + 0.3 + 0.6) / 3; (0 + 0 - 0.3) / 3
    assert m.adaptation_gain(curve[None]).shape == (1, 2)  # vectorised over leading dims


def test_core_metrics_is_json_friendly():
    core = m.core_metrics(R3)
    assert core["acc"] == approx(2.2 / 3) and core["forgetting"] == approx(0.2)
    assert core["forgetting_per_task"][:2] == approx([0.3, 0.1]) and math.isnan(core["forgetting_per_task"][2])
    assert all(type(v) is float for k, v in core.items() if k != "forgetting_per_task")
    json.dumps(core)


def test_to_higher_is_better():
    mse = np.array([[4.0, 3.0], [1.0, 2.0], [1.5, 0.5]])
    np.testing.assert_allclose(m.to_higher_is_better(mse), -mse)
    # task 1 MSE went 1.0 -> 1.5 after task 2: BWT = -1.5 - (-1.0) = -0.5 (worse stays negative)
    assert m.bwt(m.to_higher_is_better(mse)) == approx(-0.5)
    assert m.forgetting(m.to_higher_is_better(mse)) == approx(0.5)  # -1.0 - (-1.5)


def test_summarize_by_hand():
    s = summarize([1.0, 2.0, 3.0])
    half = 4.30265273 / math.sqrt(3)  # t_{0.975, 2} * std 1 / sqrt(3) = 2.4841
    assert s == {"mean": 2.0, "std": 1.0, "ci95_low": approx(2 - half), "ci95_high": approx(2 + half), "n": 3}
    s = summarize([1.0, nan, 3.0])  # NaN seed ignored: mean 2, std sqrt(2), half = 12.7062 * sqrt(2)/sqrt(2)
    assert (s["n"], s["std"], s["ci95_low"]) == (2, approx(math.sqrt(2)), approx(2 - 12.70620474))
    one = summarize([5.0])
    assert (one["mean"], one["n"]) == (5.0, 1)
    assert all(math.isnan(one[k]) for k in ("std", "ci95_low", "ci95_high"))


def test_student_t_quantiles_come_from_scipy_at_every_df():
    # 40 seeds: t_{0.975, 39} = 2.0227 (the old table stopped at 30 df and fell back to 1.96)
    s = summarize([0.0] * 20 + [2.0] * 20)  # mean 1, var = 40 * 1^2 / 39
    assert s["ci95_high"] == approx(1 + 2.02269092 * math.sqrt(40 / 39) / math.sqrt(40))
    assert t975(1) == approx(12.70620474) and t975(1000) == approx(1.96233908)


def test_negative_transfer_has_three_verdicts():
    # mean 0.6, std 0.1, lower = 0.6 - 4.3027 * 0.1 / sqrt(3) = 0.352 > 0: decisive
    assert gap_beyond_noise([0.5, 0.6, 0.7], tolerance=1.0) == (NEGATIVE, "ci95", None)
    # mean 0.2 > tolerance 0.1, lower = 0.2 - 0.248 = -0.048: the CI includes 0 -> inconclusive.
    # At std 0.1 a decisive answer needs t_{0.975, n-1} * 0.1 / sqrt(n) < 0.2: n = 4 gives
    # 3.1824 * 0.05 = 0.159 < 0.2, n = 3 gives 0.248 -> 4 seeds
    verdict = gap_beyond_noise([0.1, 0.2, 0.3], tolerance=0.1)
    assert verdict == (INCONCLUSIVE, "ci95", 4) and not verdict.flagged
    assert gap_beyond_noise([0.1, 0.2, 0.3], tolerance=0.25).verdict == NONE  # mean within the tolerance
    # mean 0.01, std 1: t * 1 / sqrt(n) < 0.01 needs ~38,400 seeds: beyond what is advised
    assert seeds_needed(0.01, 1.0) is None and seeds_needed(0.2, 0.0) is None
    # one seed: at most inconclusive, whatever the gap
    assert gap_beyond_noise([0.05], tolerance=0.02) == (INCONCLUSIVE, "tolerance", None)
    assert gap_beyond_noise([0.01, nan], tolerance=0.02) == (NONE, "tolerance", None)
    assert gap_beyond_noise([], tolerance=0.02) == (NONE, "no data", None)


def test_sample_weighted_accuracy_pools_every_test_example_of_a_row():
    R = np.array([[0.1, 0.2], [0.9, 0.0], [0.5, 1.0]])
    # (0.5*10 + 1.0*30) / 40 = 0.875 on the last row; ACC, unweighted, is 0.75
    assert m.sample_weighted_accuracy(R, [10, 30]) == pytest.approx(0.875)
    assert m.sample_weighted_accuracy(R, [10, 30], row=0) == pytest.approx((0.1 * 10 + 0.2 * 30) / 40)
    assert m.sample_weighted_accuracy(R, [5, 5]) == pytest.approx(m.acc(R))
    with pytest.raises(ValueError, match="2 positive test-set sizes"):
        m.sample_weighted_accuracy(R, [10])
