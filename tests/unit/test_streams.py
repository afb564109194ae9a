"""Streams: what the tasks contain, and that they are the same every time they are built."""

import math

import pytest
import torch
from pydantic import TypeAdapter

from lifelong.streams.builders import build_stream
from lifelong.streams.builtin.domain import rotate
from lifelong.streams.sources import load_dataset
from lifelong.streams.spec import StreamSpec


def stream_of(**fields):
    return build_stream(TypeAdapter(StreamSpec).validate_python(fields))


def test_split_digits_class_incremental_partitions_the_classes():
    stream = stream_of(name="s", builder="split", dataset="digits", n_tasks=5, classes_per_task=2)
    digits = load_dataset("digits")
    assert [t.classes for t in stream] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert all(t.label is None for t in stream) and stream.n_outputs == 10
    for task in stream:
        assert set(task.y_train.unique().tolist()) == set(task.classes)
        assert set(task.y_test.unique().tolist()) == set(task.classes)
    # every training example of the dataset lands in exactly one task
    assert sum(len(t.y_train) for t in stream) == len(digits.y_train) == 1347
    assert sum(len(t.y_test) for t in stream) == len(digits.y_test) == 450


def test_split_task_incremental_exposes_task_labels_and_unequal_groups():
    stream = stream_of(name="s", builder="split", dataset="digits", n_tasks=2, classes_per_task=[6, 4],
                       scenario="task-il", class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    assert [t.classes for t in stream] == [(9, 8, 7, 6, 5, 4), (3, 2, 1, 0)]
    assert [t.label for t in stream] == [0, 1]


def test_split_asking_for_more_classes_than_exist_names_the_fix():
    with pytest.raises(ValueError, match="lower n_tasks or classes_per_task"):
        stream_of(name="s", builder="split", dataset="digits", n_tasks=6, classes_per_task=2)


def test_permuted_tasks_permute_pixels_and_keep_labels():
    stream = stream_of(name="p", builder="permuted", dataset="digits", n_tasks=3, train_per_task=100,
                       test_per_task=50, first_identity=True)
    digits = load_dataset("digits")
    assert stream.scenario == "domain-il" and all(t.classes == tuple(range(10)) for t in stream)
    first, second = stream.tasks[0], stream.tasks[1]
    assert len(first.x_train) == 100 and len(first.x_test) == 50
    # task 1 is unpermuted: each of its images is an image of the dataset
    flat = digits.x_train.flatten(1)
    assert all(any(torch.equal(img, row) for row in flat[digits.y_train == label])
               for img, label in zip(first.x_train.flatten(1)[:5], first.y_train[:5]))
    # a permutation moves pixels but keeps each image's multiset of values
    assert not torch.equal(second.x_train.flatten(1), first.x_train.flatten(1))
    sorted_second = second.x_train.flatten(1).sort(1).values
    originals = {tuple(r.tolist()) for r in flat.sort(1).values}
    assert all(tuple(r.tolist()) in originals for r in sorted_second[:10])


def test_rotation_by_quarter_turn_is_exact_and_angles_follow_the_spec():
    image = torch.arange(64.0).reshape(1, 1, 8, 8)
    assert torch.allclose(rotate(image, 0.0), image, atol=1e-5)
    assert torch.allclose(rotate(rotate(image, 90.0), -90.0), image, atol=1e-4)
    assert torch.allclose(rotate(image, 90.0), torch.rot90(image, 1, (2, 3)), atol=1e-4) or \
        torch.allclose(rotate(image, 90.0), torch.rot90(image, -1, (2, 3)), atol=1e-4)
    stream = stream_of(name="r", builder="rotated", dataset="digits", n_tasks=3, angles=[0, 45, 90],
                       train_per_task=30, test_per_task=30)
    assert [t.meta["angle"] for t in stream] == [0, 45, 90]


def test_sinusoid_tasks_follow_their_amplitude_and_phase():
    stream = stream_of(name="sin", builder="sinusoid", n_tasks=4, train_per_task=20, test_per_task=30)
    assert stream.kind == "regression" and stream.input_shape == (1,) and stream.n_outputs == 1
    for task in stream:
        a, phase = task.meta["amplitude"], task.meta["phase"]
        assert 0.1 <= a <= 5.0 and 0.0 <= phase <= math.pi
        assert task.x_train.abs().max() <= 5.0
        assert torch.allclose(task.y_test, a * torch.sin(task.x_test - phase), atol=1e-5)
        assert task.x_train.shape == (20, 1) and task.x_test.shape == (30, 1)


def test_streams_are_identical_for_the_same_seed_and_differ_across_seeds():
    spec = dict(name="p", builder="permuted", dataset="digits", n_tasks=2, train_per_task=50, test_per_task=20)
    a, b, c = stream_of(**spec), stream_of(**spec), stream_of(**spec, seed=1)
    assert all(torch.equal(x.x_train, y.x_train) and torch.equal(x.y_train, y.y_train) for x, y in zip(a, b))
    assert not torch.equal(a.tasks[1].x_train, c.tasks[1].x_train)
    # task i's content does not depend on how many tasks follow it
    longer = stream_of(**{**spec, "n_tasks": 3})
    assert torch.equal(longer.tasks[1].x_train, a.tasks[1].x_train)


@pytest.mark.skipif(not __import__("os").path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="apt-get install -y dataset-fashion-mnist")
def test_split_fashion_mnist_reads_the_idx_files():
    stream = stream_of(name="f", builder="split", dataset="fashion_mnist", n_tasks=5, classes_per_task=2)
    assert stream.input_shape == (1, 28, 28)
    assert [len(t.y_train) for t in stream] == [12000] * 5 and [len(t.y_test) for t in stream] == [2000] * 5
    assert stream.tasks[0].name == "T1 (T-shirt/top/Trouser)"


@pytest.mark.parametrize("name", sorted(__import__("lifelong.config").config.stream_files()))
def test_every_shipped_stream_spec_validates(name):
    from lifelong.config import load_stream_spec, stream_files
    spec = load_stream_spec(stream_files()[name])
    assert spec.name == name and spec.n_tasks >= 1


def test_split_mnist1d_is_generated_in_code():
    stream = stream_of(name="m", builder="split", dataset="mnist1d", n_tasks=5, classes_per_task=2)
    assert stream.input_shape == (40,) and [t.classes for t in stream][4] == (8, 9)
    assert sum(len(t.y_train) for t in stream) == 4000
