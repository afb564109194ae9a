"""Few-shot streams: how family and N-way segments store their data, their episodes, their evaluation."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from lifelong.evaluation.evaluator import evaluate_stream_few_shot
from lifelong.evaluation.fewshot import HeldOutEpisodes, support_set
from lifelong.streams.builders import build_stream
from lifelong.streams.episodic import episode_sampler, held_out_functions, training_functions
from lifelong.streams.spec import StreamSpec
from lifelong.streams.task import Task


def stream_of(**fields):
    return build_stream(TypeAdapter(StreamSpec).validate_python(fields))


@pytest.fixture(scope="module")
def family():
    return stream_of(name="fam", builder="sinusoid_family", n_tasks=3, amplitude=[1.0, 2.0], amplitude_shift=1.5,
                     functions_per_task=30, points_per_function=12, test_functions=8, test_points_per_function=25)


@pytest.fixture(scope="module")
def nway():
    return stream_of(name="nway", builder="nway", dataset="digits", n_tasks=2, ways=4, train_per_class=30,
                     test_per_class=20, eval_episodes=3)


@pytest.fixture(scope="module")
def conflict():
    return stream_of(name="conflict", builder="nway_conflict", dataset="digits", n_tasks=3, ways=3, classes=[7, 1, 4],
                     train_per_class=20, test_per_class=10)


def test_family_segments_store_functions_flat_and_drift(family):
    assert family.scenario == "few-shot" and family.n_outputs == 1 and family.input_shape == (1,)
    peaks = []
    for i, task in enumerate(family.tasks):
        assert task.meta["episodic"] == "family" and task.meta["amplitude"] == pytest.approx([1 + 1.5 * i, 2 + 1.5 * i])
        assert task.x_train.shape == (30 * 12, 1) and task.x_test.shape == (8 * 25, 1)
        x, y = training_functions(task)
        assert x.shape == (30, 12, 1) and torch.equal(x[2, 5], task.x_train[2 * 12 + 5])
        # every function is A sin(x - phase) with A in the segment's range: |y| <= upper bound
        peak = y.abs().amax(dim=(1, 2))
        assert bool((peak <= task.meta["amplitude"][1] + 1e-5).all())
        peaks.append(float(peak.mean()))
    assert peaks[0] < peaks[1] < peaks[2]


def test_family_evaluation_adapts_on_k_points_of_each_held_out_function(family):
    task = family.tasks[1]
    held_out = support_set(task, shots=5, seed=0)
    assert isinstance(held_out, HeldOutEpisodes) and len(held_out.tasks) == 8
    x, _ = held_out_functions(task)
    for f, episode in enumerate(held_out.tasks):
        assert episode.x_train.shape == (5, 1) and episode.x_test.shape == (20, 1)
        both = torch.cat([episode.x_train, episode.x_test]).flatten().sort().values
        assert torch.equal(both, x[f].flatten().sort().values)  # support and query split the function's points
    again = support_set(task, shots=5, seed=0)
    assert all(torch.equal(a.x_train, b.x_train) for a, b in zip(held_out.tasks, again.tasks))
    with pytest.raises(ValueError, match="evaluation.shots=25 leaves no query point"):
        support_set(task, shots=25, seed=0)


def test_nway_segments_hold_disjoint_balanced_classes_labelled_by_slot(nway):
    assert nway.n_outputs == 4
    groups = [task.meta["dataset_classes"] for task in nway.tasks]
    assert groups == [[0, 1, 2, 3], [4, 5, 6, 7]]
    for task in nway.tasks:
        assert task.classes == (0, 1, 2, 3) and task.meta["episode_labels"] == "shuffled"
        assert torch.bincount(task.y_train).tolist() == [30] * 4
        assert torch.bincount(task.y_test).tolist() == [20] * 4


def test_nway_evaluation_episodes_deal_labels_and_draw_k_shots(nway):
    task = nway.tasks[0]
    held_out = support_set(task, shots=3, seed=0)
    assert len(held_out.tasks) == 3
    dealings = set()
    for episode in held_out.tasks:
        assert torch.bincount(episode.y_train, minlength=4).tolist() == [3] * 4
        assert torch.equal(episode.x_test, task.x_test)
        # the episode's labels are a permutation of the stored slots, the same for support and query
        mapping = {int(a): int(b) for a, b in zip(task.y_test, episode.y_test)}
        assert sorted(mapping) == sorted(mapping.values()) == [0, 1, 2, 3]
        dealings.add(tuple(mapping[s] for s in range(4)))
    assert len(dealings) > 1
    with pytest.raises(ValueError, match="evaluation.shots=31"):
        support_set(task, shots=31, seed=0)


def test_conflicting_segments_share_inputs_and_permute_labels(conflict):
    first, *later = conflict.tasks
    assert first.meta["slots"] == [0, 1, 2] and all(t.meta["episode_labels"] == "fixed" for t in conflict.tasks)
    for task in later:
        assert torch.equal(task.x_train, first.x_train) and torch.equal(task.x_test, first.x_test)
        slots = torch.tensor(task.meta["slots"])
        assert torch.equal(task.y_train, slots[first.y_train])
    assert len({tuple(t.meta["slots"]) for t in conflict.tasks}) > 1


def test_episode_sampler_shapes_and_disjoint_support_query(family, nway):
    draw = torch.Generator().manual_seed(0)
    xs, ys, xq, yq = episode_sampler(family.tasks[0], 4, 6, "test")(7, draw)
    assert xs.shape == (7, 4, 1) and xq.shape == (7, 6, 1)
    x, y = training_functions(family.tasks[0])
    for e in range(7):
        points = torch.cat([xs[e], xq[e]]).flatten()
        owner = (x.flatten(1).unsqueeze(-1) == points).any(1).all(-1).nonzero().flatten()
        assert len(owner) == 1 and len(points.unique()) == 10  # one function, ten distinct points
    xs, ys, xq, yq = episode_sampler(nway.tasks[0], 2, 3, "test")(5, draw)
    assert xs.shape == (5, 8, 1, 8, 8) and yq.shape == (5, 12)
    for e in range(5):
        assert torch.bincount(ys[e]).tolist() == [2] * 4 and torch.bincount(yq[e]).tolist() == [3] * 4
    with pytest.raises(ValueError, match="params.shots \\+ params.queries = 13"):
        episode_sampler(family.tasks[0], 10, 3, "test")


def uneven_task(episode_labels: str = "fixed") -> Task:
    """Classes 3, 5, 8 and 9 with 6, 9, 12 and 7 training rows; row i holds the number i."""
    order = torch.randperm(34, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([3] * 6 + [5] * 9 + [8] * 12 + [9] * 7)[order]
    x = torch.arange(34.0).unsqueeze(1)
    return Task(0, "uneven", "classification", x, y, x[:4], y[:4], classes=(3, 5, 8, 9),
                meta={"episode_labels": episode_labels})


def rows_of(x: torch.Tensor) -> list[int]:
    return x.flatten().long().tolist()


def test_class_episodes_draw_ways_of_the_classes_k_distinct_rows_each_labelled_0_to_ways():
    task = uneven_task()
    xs, ys, xq, yq = episode_sampler(task, 2, 4, "test", ways=3)(50, torch.Generator().manual_seed(0))
    assert xs.shape == (50, 6, 1) and xq.shape == (50, 12, 1)
    chosen = set()
    for e in range(50):
        assert ys[e].tolist() == [0, 0, 1, 1, 2, 2] and yq[e].tolist() == [0] * 4 + [1] * 4 + [2] * 4
        support, query = rows_of(xs[e]), rows_of(xq[e])
        assert len(set(support + query)) == 18  # support and query never share a row
        classes = [{int(task.y_train[r]) for r in rows_of(torch.cat([xs[e][ys[e] == label], xq[e][yq[e] == label]]))}
                   for label in range(3)]
        assert all(len(c) == 1 for c in classes) and len(set.union(*classes)) == 3  # a label is one class
        chosen |= set.union(*classes)
    assert chosen == {3, 5, 8, 9}  # every class, the smallest included, takes part


def test_class_episodes_keep_stored_labels_unless_shuffled_or_relabelled():
    draw = torch.Generator().manual_seed(0)
    stored = episode_sampler(uneven_task(), 1, 1, "test")(20, draw)[1]
    assert (stored == torch.tensor([3, 5, 8, 9])).all()
    for task, relabel in ((uneven_task("shuffled"), False), (uneven_task(), True)):
        xs, ys = episode_sampler(task, 1, 1, "test", relabel=relabel)(20, draw)[:2]
        assert (ys == torch.arange(4)).all()
        slots = task.y_train[xs.flatten(1).long()]  # (episodes, ways): the class behind labels 0..3
        assert len({tuple(row) for row in slots.tolist()}) > 1  # dealt to the labels afresh per episode


@pytest.mark.parametrize("ways,shots,message", [(5, 1, "params.ways = 5 but task 'uneven' has only 4 classes"),
                                                (2, 6, "6 training examples of class 3, fewer than params.shots "
                                                       r"\+ params.queries = 7")])
def test_class_episodes_that_cannot_be_drawn_name_the_setting(ways, shots, message):
    with pytest.raises(ValueError, match=message):
        episode_sampler(uneven_task(), shots, 1, "test", ways=ways)


class _ConstantCurves:
    """A stand-in strategy whose curve on an episode is that episode's index within the call."""

    def adaptation_curves(self, tasks, supports, steps):
        return [torch.full((steps + 1, 2), float(i)) for i in range(len(tasks))]


def test_evaluator_averages_the_held_out_episodes_of_each_task(family):
    tasks = family.tasks[:2]
    supports = [support_set(task, shots=5, seed=0) for task in tasks]
    curves = evaluate_stream_few_shot(_ConstantCurves(), tasks, supports, steps=2)
    assert curves.shape == (2, 3, 2)
    assert curves[0, 0, 0] == pytest.approx(sum(range(8)) / 8)  # task 1: episodes 0..7 of the call
    assert curves[1, 0, 0] == pytest.approx(sum(range(8, 16)) / 8)
