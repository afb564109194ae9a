"""One place per metric: a metric registered with `@metric` reaches metrics.json, the report's tables and
glossary, and `lifelong compare`, with nothing else to edit."""

import numpy as np
import pytest

from lifelong.evaluation.analysis import record_metrics
from lifelong.evaluation.record import LifetimeRecord
from lifelong.evaluation.registry import METRICS, groups, metric
from lifelong.report import write_report
from lifelong.report.compare import compare_runs
from tests.unit.run_folders import forgets, keeps, write_run


@pytest.fixture
def final_min():
    """A plug-in metric: the worst final score over the tasks, in the core group."""
    @metric("final_min", group="Core metrics", title="worst final score", formula="min_j R[T][j]",
            better="higher", baseline="none", convention="a test's plug-in", cells="R[T][j]",
            reduce=lambda terms: float(np.nanmin(terms)) if np.isfinite(terms).any() else float("nan"))
    def final_min(R):
        return np.asarray(R, dtype=float)[-1]

    yield final_min
    del METRICS["final_min"]


def test_a_registered_metric_reaches_metrics_report_glossary_and_compare(final_min, tmp_path):
    assert final_min(forgets(3)) == pytest.approx(0.1) and "final_min" in groups()["Core metrics"]
    out = record_metrics(LifetimeRecord("naive", 0, ["a", "b", "c"], "classification", forgets(3)))
    assert out["final_min"] == pytest.approx(0.1) and out["coverage"]["final_min"]["used"] == 3
    folder = write_run(tmp_path / "run", {"naive": [forgets(3)], "replay": [keeps(3, 0.8)]})
    write_report(folder)
    md = (folder / "report.md").read_text()
    core = md.split("### Core metrics\n\n")[1].split("\n\n")[0]
    assert core.splitlines()[0].endswith("| final_min |") and "| replay |" in core and core.endswith("| **0.8000** |")
    assert "| final_min | worst final score | min_j R\\[T\\]\\[j\\] | higher is better |" in md  # glossary row
    compared = compare_runs([folder], tmp_path / "cmp")
    assert "final_min" in set(compared.frame["metric"]) and "final_min" in (tmp_path / "cmp/compare.md").read_text()


def test_a_metric_is_registered_once_with_known_inputs(final_min):
    with pytest.raises(ValueError, match="registered twice"):
        metric("final_min", group="x", title="", formula="", better="higher", baseline="", convention="",
               cells="")(lambda R: R)
    with pytest.raises(ValueError, match="unknown inputs"):
        metric("other", group="x", title="", formula="", better="higher", baseline="", convention="", cells="",
               needs=("R", "labels"))(lambda R, labels: R)


def test_every_built_in_metric_has_its_glossary_entry_and_group():
    assert list(groups()) == ["Core metrics", "Against the references", "Other conventions", "Few-shot adaptation",
                              "Prediction flips", "L2M (DARPA Lifelong Learning Machines)", "Cost and efficiency"]
    assert groups()["Core metrics"] == ("acc", "learning_acc", "bwt", "fwt", "forgetting")
    for key, entry in METRICS.items():
        assert entry.title and entry.formula and entry.better in ("higher", "lower") and entry.cells, key
