"""Metric wiring (records + references -> metrics.json) on records whose values are worked out by hand."""

import json
import math

import numpy as np
import pytest

from lifelong.evaluation.analysis import ReferenceScores, analyse, record_metrics, reference_scores
from lifelong.evaluation.record import LifetimeRecord

nan = math.nan
approx = pytest.approx

from tests.unit.test_metrics import R3  # the hand-worked 3-task record


def record(scores, strategy="naive", seed=0, kind="classification", curves=None) -> LifetimeRecord:
    scores = np.asarray(scores, dtype=float)
    return LifetimeRecord(strategy, seed, [f"T{j + 1}" for j in range(scores.shape[1])], kind, scores,
                          curves=None if curves is None else np.asarray(curves, dtype=float))


def test_references_wire_into_negative_transfer_and_intransigence():
    # joint trained at k = 1 and 3 only (joint_at), as on a long stream
    refs = ReferenceScores(independent=np.array([0.85, 0.85, 0.85]), joint=np.array([0.95, nan, 0.85]))
    out = record_metrics(record(R3), refs)
    per_task = out["per_task"]
    np.testing.assert_allclose(per_task["ntg_learn"], [-0.05, 0.05, -0.05])  # 0.85 - (0.9, 0.8, 0.9)
    np.testing.assert_allclose(per_task["ntg_final"], [0.25, 0.15, -0.05])  # 0.85 - (0.6, 0.7, 0.9)
    assert out["ntg_learn"] == approx(-0.05 / 3) and out["ntg_final"] == approx(0.35 / 3)
    np.testing.assert_allclose(per_task["intransigence"], [0.05, nan, -0.05])  # a*_k - R[k][k]
    assert out["intransigence"] == approx(-0.05)  # I_T
    assert out["intransigence_mean"] == approx(0.0)  # (0.05 - 0.05) / 2: k = 2 was not trained
    # the core set and the other conventions, per task kept
    assert out["acc"] == approx(2.2 / 3) and out["forgetting"] == approx(0.2)
    np.testing.assert_allclose(per_task["forgetting"], [0.3, 0.1, nan])
    np.testing.assert_allclose(per_task["fwt"], [nan, 0.4, 0.2])  # R[j-1][j] - b_j
    assert out["forgetting_avalanche"] == approx(0.2)  # mean(0.9 - 0.6, 0.8 - 0.7)
    assert out["dr_REM"] == approx(1 - 0.5 / 3) and out["dr_BWT_plus"] == 0.0
    json.dumps(out)


def test_without_references_no_reference_metrics_and_regression_has_no_rem():
    out = record_metrics(record(-R3, kind="regression"))
    assert not {"ntg_learn", "ntg_final", "intransigence"} & set(out)
    assert math.isnan(out["dr_REM"]) and math.isnan(out["dr_BWT_plus"])  # need a [0, 1] score
    assert out["dr_BWT"] == approx(0.5 / 3)  # still defined on -loss


def test_few_shot_curves_give_adaptation_gain_area_and_lca():
    curves = np.array([
        [[0.1, 0.2, 0.3], [0.0, 0.1, 0.4]],  # before training
        [[0.5, 0.6, 0.9], [0.2, 0.3, 0.5]],  # after task 1
        [[0.4, 0.6, 0.7], [0.5, 0.8, 0.9]],  # after task 2
    ])
    out = record_metrics(record(curves[..., -1], curves=curves))
    assert out["acc_zero_shot"] == approx(0.45)  # (0.4 + 0.5) / 2, final row at step 0
    np.testing.assert_allclose(out["per_task"]["adaptation_gain"], [0.3, 0.4])  # 0.7 - 0.4; 0.9 - 0.5
    assert out["adaptation_area"] == approx(0.2)  # mean((0 + .2 + .3) / 3, (0 + .3 + .4) / 3)
    # LCA on each task's curve just before its training: C[0][0] and C[1][1]; beta = min(10, 2)
    # Z_0 = (0.1 + 0.2) / 2, Z_1 = (0.2 + 0.3) / 2, Z_2 = (0.3 + 0.5) / 2 -> (0.15 + 0.25 + 0.4) / 3
    assert out["lca"] == approx(0.8 / 3)


def test_across_seeds_mean_ci_and_flags_beyond_noise():
    R = [[0.1, 0.1], [0.6, 0.1], [0.5, 0.5]]
    refs = {("naive", 0): ReferenceScores(np.array([0.9, 0.8]), None),  # gaps 0.3, 0.3
            ("naive", 1): ReferenceScores(np.array([0.3, 0.82]), None)}  # gaps -0.3, 0.32
    results = analyse([record(R, seed=0), record(R, seed=1)], refs, tolerance=0.5)
    assert results["summary"]["naive"]["ntg_learn"]["mean"] == approx(0.155)  # (0.3 + 0.01) / 2
    task2 = results["per_task"]["naive"]["ntg_learn"][1]
    # mean 0.31, std 0.01414, half-width 12.7062 * 0.01414 / sqrt(2) = 0.127 -> lower 0.183 > 0
    assert task2["ci95_low"] == approx(0.31 - 12.7062 * 0.02 / 2)
    assert results["flags"]["naive"]["ntg_learn"] == [False, True]  # task 1: 0.3 and -0.3 is noise
    assert results["flag_rule"]["rule"] == "ci95"  # the tolerance 0.5 plays no part with 2 seeds


def test_one_seed_is_at_most_inconclusive_with_the_stated_tolerance():
    refs = {("naive", 0): ReferenceScores(np.array([0.63, 0.55]), None)}  # gaps 0.03, 0.05
    for tolerance, expected in ((0.02, ["inconclusive", "inconclusive"]), (0.04, ["none", "inconclusive"])):
        results = analyse([record([[0.1, 0.1], [0.6, 0.1], [0.5, 0.5]])], refs, tolerance)
        assert [v["verdict"] for v in results["verdicts"]["naive"]["ntg_learn"]] == expected
        assert results["flags"]["naive"]["ntg_learn"] == [False, False]  # no seed noise known: never flagged
        assert results["flag_rule"]["rule"] == "tolerance" and str(tolerance) in results["flag_rule"]["text"]


def test_inconclusive_gaps_say_how_many_seeds_would_decide():
    R = [[0.1, 0.1], [0.6, 0.1], [0.5, 0.5]]
    # task 1 gaps 0.1, 0.2, 0.3: mean 0.2 > tolerance 0.05, CI low -0.048 -> inconclusive, 4 seeds decide
    refs = {("naive", s): ReferenceScores(np.array([0.6 + g, 0.1]), None) for s, g in enumerate((0.1, 0.2, 0.3))}
    results = analyse([record(R, seed=s) for s in range(3)], refs, tolerance=0.05)
    assert results["verdicts"]["naive"]["ntg_learn"] == [{"verdict": "inconclusive", "seeds_needed": 4},
                                                         {"verdict": "none", "seeds_needed": None}]


def test_a_seed_without_references_is_left_out_of_the_reference_metrics():
    refs = {("naive", 0): ReferenceScores(np.array([0.9, 0.8]), None)}
    results = analyse([record([[0.1, 0.1], [0.6, 0.1], [0.5, 0.5]], seed=s) for s in (0, 1)], refs)
    assert results["summary"]["naive"]["ntg_learn"]["n"] == 1 and results["summary"]["naive"]["acc"]["n"] == 2


def test_reference_scores_reads_references_json():
    data = {"entries": [{"strategies": ["naive", "ewc"], "seed": 3, "independent": [0.5, 0.6],
                         "joint": [None, 0.7]}]}
    scores = reference_scores(json.loads(json.dumps(data)))
    assert set(scores) == {("naive", 3), ("ewc", 3)}
    np.testing.assert_allclose(scores[("ewc", 3)].joint, [nan, 0.7])
    assert reference_scores(None) == {}


def test_unevaluated_cells_are_skipped_and_counted_by_hand():
    # evaluation.tasks: seen -> nothing before training, no zero-shot cells (upper triangle NaN)
    seen = np.array([[nan, nan, nan],
                     [0.9, nan, nan],
                     [0.8, 0.8, nan],
                     [0.6, 0.7, 0.9]])
    out = record_metrics(record(seen))
    cover = out["coverage"]
    assert out["acc"] == approx(2.2 / 3) and cover["acc"] == {"used": 3, "of": 3, "reason": None}
    assert out["bwt"] == approx(-0.2) and cover["bwt"] == {"used": 2, "of": 2, "reason": None}
    assert out["forgetting"] == approx(0.2)  # (0.3 + 0.1) / 2: only rows after training are maxed
    assert math.isnan(out["fwt"]) and cover["fwt"]["used"] == 0 and cover["fwt"]["of"] == 2
    assert "R[j−1][j] with b_j" in cover["fwt"]["reason"]
    assert math.isnan(out["dr_FWT"]) and cover["dr_FWT"]["of"] == 3  # pairs (1,2), (1,3), (2,3)
    assert out["dr_A"] == approx(4.7 / 6) and cover["dr_A"]["used"] == 6
    np.testing.assert_allclose(out["per_task"]["fwt"], [nan, nan, nan])

    # evaluation.every: 2 -> row 1 (after task 1) not evaluated
    every = np.array(R3, dtype=float)
    every[1] = nan
    out = record_metrics(record(every))
    assert out["learning_acc"] == approx(0.85) and out["coverage"]["learning_acc"]["used"] == 2  # (0.8 + 0.9) / 2
    assert out["bwt"] == approx(-0.1) and out["coverage"]["bwt"] == {"used": 1, "of": 2, "reason": None}
    # task 1: max over rows 1..2 = 0.8 (row 1 missing) - 0.6 = 0.2; task 2: 0.8 - 0.7 = 0.1
    assert out["forgetting"] == approx(0.15)
    assert out["fwt"] == approx(0.2) and out["coverage"]["fwt"]["used"] == 1  # R[2][3] - b_3 = 0.5 - 0.3


def test_undefined_metrics_are_nan_with_the_reason_never_a_crash():
    one_task = record_metrics(record([[0.2], [0.8]]))
    assert one_task["acc"] == 0.8 and math.isnan(one_task["bwt"])
    assert one_task["coverage"]["bwt"] == {"used": 0, "of": 0,
                                           "reason": "undefined with 1 task(s): no term R[T][j] with R[j][j], "
                                                     "j < T exists"}
    regression = record_metrics(record(-R3, kind="regression"))
    assert "score in [0, 1]" in regression["coverage"]["dr_REM"]["reason"]
    nothing = record_metrics(record(np.full((4, 3), nan)), ReferenceScores(np.full(3, 0.5), np.full(3, 0.5)))
    assert all(math.isnan(nothing[k]) and nothing["coverage"][k]["reason"] for k in nothing["coverage"])


def test_coverage_is_summed_over_seeds():
    full, holed = np.array(R3), np.array(R3)
    holed[3, 0] = nan
    results = analyse([record(full, seed=0), record(holed, seed=1)])
    assert results["coverage"]["naive"]["acc"] == {"used": 5, "of": 6, "reason": None}
    assert results["summary"]["naive"]["acc"]["mean"] == approx((2.2 / 3 + 0.8) / 2)  # seed 1: (0.7 + 0.9) / 2
    holed[3] = nan  # seed 1 never reached the final row: ACC still defined by seed 0, so no reason
    results = analyse([record(full, seed=0), record(holed, seed=1)])
    assert results["coverage"]["naive"]["acc"] == {"used": 3, "of": 6, "reason": None}
    assert results["summary"]["naive"]["acc"]["n"] == 1
