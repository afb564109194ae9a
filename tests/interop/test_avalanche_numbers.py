"""One set of numbers: Avalanche trains with its own EvaluationPlugin; the accuracy matrix R is built
from the per-experience accuracies it logs, and Lifelong's metric functions on that R equal Avalanche's
stream and experience metrics to 1e-6 under the mapping in the README ("Avalanche's numbers and ours",
as code: lifelong.interop.avalanche.metrics.avalanche_metrics)."""

import numpy as np
import pytest
import torch

avalanche = pytest.importorskip("avalanche", reason="the `avalanche` extra is not installed")
pytestmark = [pytest.mark.avalanche, pytest.mark.filterwarnings("ignore:No loggers specified")]

from avalanche.benchmarks import tensors_benchmark  # noqa: E402
from avalanche.evaluation.metrics import (accuracy_metrics, bwt_metrics, forgetting_metrics,  # noqa: E402
                                          forward_transfer_metrics)
from avalanche.training import EWC  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402
from torch import nn  # noqa: E402

from lifelong.evaluation import metrics  # noqa: E402
from lifelong.interop.avalanche.metrics import avalanche_metrics  # noqa: E402
from tests.single_thread import one_thread  # noqa: E402,F401  (autouse fixture)

T = 4
TEST_SIZES = [30, 50, 20, 70]  # unequal, so a sample-weighted average differs from a plain one
STREAM = "eval_phase/test_stream"


def blobs(n_per_class, classes, g):
    centres = 2.0 * torch.randn(2 * T, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor(classes).repeat(n_per_class)
    return centres[y] + torch.randn(len(y), 8, generator=g), y


@pytest.fixture(scope="module", params=[[0] * T, list(range(T))], ids=["class-il", "task-labels"])
def logged(request):
    """Avalanche's EWC on 4 class-incremental tasks (all task label 0, or one label per task), evaluated
    on the whole test stream before training and after each task: R from its per-experience accuracies,
    every metric it logged, and the task labels."""
    labels = request.param
    g = torch.Generator().manual_seed(1)
    classes = [[2 * i, 2 * i + 1] for i in range(T)]
    train = [blobs(40, c, g) for c in classes]
    test = [blobs(n // 2, c, g) for n, c in zip(TEST_SIZES, classes)]
    benchmark = tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=labels)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2 * T))
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                 forgetting_metrics(experience=True, stream=True),
                                 bwt_metrics(experience=True, stream=True),
                                 forward_transfer_metrics(experience=True, stream=True), loggers=[])
    strategy = EWC(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=nn.CrossEntropyLoss(),
                   ewc_lambda=5.0, train_mb_size=16, train_epochs=3, evaluator=evaluator,
                   eval_every=0)  # forward transfer needs eval_every > -1; the evaluations are the calls below
    rows = [strategy.eval(benchmark.test_stream)]
    for experience in benchmark.train_stream:
        strategy.train(experience, eval_streams=[])
        rows.append(strategy.eval(benchmark.test_stream))
    R = np.array([[row[f"Top1_Acc_Exp/{STREAM}/Task{labels[j]:03d}/Exp{j:03d}"] for j in range(T)] for row in rows])
    return R, rows, labels


def test_the_run_learns_and_forgets(logged):
    R, _, _ = logged
    assert R.shape == (T + 1, T) and len({tuple(r) for r in R}) == T + 1
    assert (np.diagonal(R, offset=-1) > 0.6).all() and metrics.bwt(R) < -0.1  # not a degenerate matrix


def test_stream_accuracy_is_lifelongs_sample_weighted_accuracy_not_acc(logged):
    R, rows, labels = logged
    for i, row in enumerate(rows):  # every row, untrained tasks and every task label pooled (named by the last)
        assert row[f"Top1_Acc_Stream/{STREAM}/Task{labels[-1]:03d}"] == pytest.approx(
            metrics.sample_weighted_accuracy(R, TEST_SIZES, row=i), abs=1e-6)
    assert abs(metrics.acc(R) - metrics.sample_weighted_accuracy(R, TEST_SIZES)) > 1e-3  # the convention matters


def test_every_metric_avalanche_logs_at_the_end_is_lifelongs_on_the_same_matrix(logged):
    R, rows, labels = logged
    ours, theirs = avalanche_metrics(R, TEST_SIZES, task_labels=labels), rows[-1]
    assert set(ours) == set(theirs)  # nothing Avalanche logged is left unmapped, nothing invented
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-6), name
    # the conventions the mapping rests on (README table): forgetting is initial minus last, not
    # Lifelong's max since training; BWT is its negative; forward transfer is GEM's FWT
    assert theirs[f"StreamForgetting/{STREAM}"] == pytest.approx(metrics.avalanche_forgetting(R), abs=1e-6)
    assert theirs[f"StreamBWT/{STREAM}"] == pytest.approx(metrics.bwt(R), abs=1e-6)
    assert theirs[f"StreamForwardTransfer/{STREAM}"] == pytest.approx(metrics.fwt(R), abs=1e-6)
    assert metrics.forgetting(R) >= metrics.avalanche_forgetting(R) - 1e-12


def test_after_each_task_avalanche_forgetting_is_the_same_function_on_the_block_trained_so_far(logged):
    R, rows, _ = logged
    for k in range(2, T + 1):
        assert rows[k][f"StreamForgetting/{STREAM}"] == pytest.approx(
            metrics.avalanche_forgetting(R[:k + 1, :k]), abs=1e-6)
