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
