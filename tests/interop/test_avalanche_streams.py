"""Avalanche benchmarks as Lifelong streams and back (needs the `avalanche` extra; .ci/run's second venv)."""

import gzip
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from lifelong.config import load_config
from lifelong.errors import ConfigError, StreamError
from lifelong.interop.avalanche import from_avalanche, to_avalanche
from lifelong.streams.builders import build_stream
from lifelong.streams.spec import (NWayConflictSpec, NWaySpec, PermutedSpec, RepeatSpec, RotatedSpec, SinusoidSpec,
                                   SplitSpec, UnrelatedSpec)

pytest.importorskip("avalanche", reason="the `avalanche` extra is not installed")
pytestmark = pytest.mark.avalanche

from avalanche.benchmarks import (benchmark_from_datasets, class_incremental_benchmark, nc_benchmark,  # noqa: E402
                                  ni_benchmark, tensors_benchmark)
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset as tensor_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def labelled(n_classes=4, per_class=6, shape=(1, 3, 3), seed=0):
    """Examples of `n_classes` classes, each input filled with a value that says which example it is."""
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = torch.arange(len(y), dtype=torch.float32).view(-1, *[1] * len(shape)).expand(-1, *shape).clone()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return x[order], y[order]


def assert_same_tasks(stream, back):
    assert len(back) == len(stream) and back.n_outputs == stream.n_outputs
    for task, again in zip(stream.tasks, back.tasks):
        for split in ("x_train", "y_train", "x_test", "y_test"):
            assert torch.equal(getattr(task, split), getattr(again, split)), (task.name, split)
        assert sorted(task.classes) == list(again.classes) and task.label == again.label


def test_class_incremental_benchmark_gives_class_il_tasks_with_the_datasets_examples():
    x, y = labelled()
    bench = class_incremental_benchmark({"train": TensorDataset(x, y), "test": TensorDataset(x + 0.5, y)},
                                        class_order=[2, 0, 3, 1], num_experiences=2)
    stream = from_avalanche(bench)
    assert (stream.scenario, len(stream), stream.n_outputs, stream.input_shape) == ("class-il", 2, 4, (1, 3, 3))
    first = stream.tasks[0]
    assert first.classes == (0, 2) and first.label is None
    assert sorted(first.x_train[:, 0, 0, 0].tolist()) == sorted(x[(y == 0) | (y == 2)][:, 0, 0, 0].tolist())
    assert torch.equal(first.x_test, first.x_train + 0.5)  # same order in both splits: the class order
    assert set(first.y_train.tolist()) == {0, 2}


@pytest.mark.parametrize("task_labels, scenario, labels", [(True, "task-il", [0, 1]), (False, "class-il", [None] * 2)])
def test_nc_benchmark_task_labels_decide_task_or_class_incremental(task_labels, scenario, labels):
    x, y = labelled()
    bench = nc_benchmark(TensorDataset(x, y), TensorDataset(x, y), 2, task_labels=task_labels,
                         fixed_class_order=[0, 1, 2, 3])
    stream = from_avalanche(bench)
    assert stream.scenario == scenario and [t.label for t in stream.tasks] == labels
    assert [t.classes for t in stream.tasks] == [(0, 1), (2, 3)]


def test_ni_benchmark_is_domain_incremental_each_task_tested_on_the_shared_test_experience():
    x, y = labelled(per_class=9)
    bench = ni_benchmark(TensorDataset(x, y), TensorDataset(x[:12], y[:12]), 3, seed=0)
    stream = from_avalanche(bench)
    assert stream.scenario == "domain-il" and len(stream) == 3
    assert sum(len(t.x_train) for t in stream.tasks) == 36
    for task in stream.tasks:  # ni_benchmark has one test experience: every task is scored on its classes of it
        assert task.classes == (0, 1, 2, 3) and torch.equal(task.x_test, x[:12])
    assert stream.meta["avalanche"]["shared_test_experience"]


def test_tensors_benchmark_with_task_labels_and_benchmark_from_datasets_with_a_stated_scenario():
    x, y = labelled()
    halves = [(x[:12], y[:12]), (x[12:], y[12:])]
    stream = from_avalanche(tensors_benchmark(halves, halves, task_labels=[5, 7]))
    assert stream.scenario == "task-il" and [t.label for t in stream.tasks] == [5, 7]
    assert torch.equal(stream.tasks[1].x_train, x[12:]) and torch.equal(stream.tasks[1].y_train, y[12:])

    datasets = [tensor_dataset(a, b) for a, b in halves]
    bench = benchmark_from_datasets(train=datasets, test=datasets)
    assert from_avalanche(bench).scenario == "domain-il"  # both halves hold every class, no task labels
    stated = from_avalanche(bench, scenario="task-il")
    assert stated.scenario == "task-il" and [t.label for t in stated.tasks] == [0, 1]  # the experience index


class CountingDataset(Dataset):
    """A dataset that counts the examples read from it."""

    def __init__(self, x, y):
        self.x, self.y, self.targets, self.reads = x, y, y.tolist(), 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], int(self.y[i])


class ArrayDataset(CountingDataset):
    """Examples whose inputs are numpy arrays and whose labels are shifted from `targets` by `shift`."""

    def __init__(self, x, y, shift=0):
        super().__init__(x, y)
        self.shift = shift

    def __getitem__(self, i):
        return self.x[i].numpy() if not self.shift else self.x[i], int(self.y[i]) + self.shift


def mixed_labels():
    x, y = labelled()
    data = [tensor_dataset(x, y, task_labels=[0] * 12 + [1] * 12)]
    return benchmark_from_datasets(train=data, test=data)


def uneven_streams():
    x, y = labelled()
    return benchmark_from_datasets(train=[tensor_dataset(x, y)] * 2, test=[tensor_dataset(x, y)] * 3)


def from_dataset(dataset):
    return class_incremental_benchmark({"train": dataset, "test": dataset}, class_order=[0, 1, 2, 3],
                                       num_experiences=2)


@pytest.mark.parametrize("make, keywords, message", [
    (mixed_labels, {}, "train experience 0 mixes task labels [0, 1]; a Lifelong task has one task label"),
    (uneven_streams, {}, "2 train experiences and 3 test experiences; Lifelong needs one test experience per"),
    (lambda: from_dataset(ArrayDataset(*labelled())), {}, "gives inputs of type ndarray, not tensors"),
    (lambda: from_dataset(ArrayDataset(*labelled(), shift=4)), {}, "experience 0 gives labels [4, 5] that its"),
    (lambda: from_dataset(TensorDataset(*labelled())), {"n_outputs": 3}, "n_outputs 3 is too few"),
    (lambda: from_dataset(TensorDataset(*labelled())), {"scenario": "few-shot"}, "scenario 'few-shot' is not one"),
])
def test_benchmarks_lifelong_cannot_take_are_refused_with_the_reason(make, keywords, message):
    with pytest.raises(StreamError, match=re.escape(message)):
        stream = from_avalanche(make(), **keywords)
        stream.tasks[0]  # some are found when the task is built


def test_tasks_are_built_when_asked_for():
    x, y = labelled(n_classes=6)
    train, test = CountingDataset(x, y), CountingDataset(x, y)
    stream = from_avalanche(class_incremental_benchmark({"train": train, "test": test}, class_order=list(range(6)),
                                                        num_experiences=3))
    assert train.reads == 1 and test.reads == 0  # one example read for the input shape
    assert stream.tasks[2].classes == (4, 5)
    assert (train.reads, test.reads) == (1 + 12, 12)  # only task 3's examples


@pytest.mark.parametrize("spec", [
    SplitSpec(builder="split", name="s", n_tasks=3, train_per_task=40, test_per_task=20),
    SplitSpec(builder="split", name="s", n_tasks=2, scenario="task-il", class_order="shuffled", seed=3,
              train_per_task=40, test_per_task=20),
    PermutedSpec(builder="permuted", name="p", n_tasks=2, train_per_task=30, test_per_task=20),
    RotatedSpec(builder="rotated", name="r", n_tasks=2, train_per_task=30, test_per_task=20),
    RepeatSpec(builder="repeat", name="k", n_tasks=2, labels="permuted", classes=[0, 1, 2], train_per_task=30,
               test_per_task=20),
    UnrelatedSpec(builder="unrelated", name="u", n_tasks=2, train_per_task=30, test_per_task=20),
    NWaySpec(builder="nway", name="n", n_tasks=2, ways=3, train_per_class=5, test_per_class=4),
    NWayConflictSpec(builder="nway_conflict", name="c", n_tasks=2, ways=3, train_per_class=5, test_per_class=4),
], ids=lambda spec: f"{spec.builder}-{spec.scenario}")
def test_a_lifelong_stream_goes_to_avalanche_and_back_unchanged(spec):
    stream = build_stream(spec)
    bench = to_avalanche(stream)
    assert len(bench.train_stream) == len(bench.test_stream) == len(stream)
    for i, (exp, task) in enumerate(zip(bench.train_stream, stream.tasks)):
        assert exp.current_experience == i and exp.task_label == (task.label or 0)
        assert set(exp.classes_in_this_experience) == set(task.classes)
    scenario = stream.scenario if stream.scenario != "few-shot" else None  # few-shot comes back detected
    assert_same_tasks(stream, from_avalanche(bench, scenario=scenario, n_outputs=bench.n_classes))
    detected = from_avalanche(bench)  # the scenario is detected, too
    assert detected.scenario == (scenario or "domain-il")
    assert detected.n_outputs == 1 + max(c for task in stream.tasks for c in task.classes)


@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_avalanche_naive_learns_an_experience_of_a_lifelong_stream():
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin

    stream = build_stream(SplitSpec(builder="split", name="s", n_tasks=2, classes_per_task=2))
    bench = to_avalanche(stream)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    task = stream.tasks[0]

    def accuracy():
        with torch.no_grad():
            return (model(task.x_test).argmax(1) == task.y_test).float().mean().item()

    before = accuracy()
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=3, device="cpu",
                     evaluator=EvaluationPlugin(loggers=[]))
    strategy.train(bench.train_stream[0])
    assert before < 0.6 and accuracy() > 0.95  # digits 0 vs 1, learned by Avalanche's own loop


def test_a_regression_stream_is_refused_with_the_reason():
    stream = build_stream(SinusoidSpec(builder="sinusoid", name="sin", n_tasks=2))
    with pytest.raises(StreamError, match="regression: Avalanche benchmarks are streams of classification"):
        to_avalanche(stream)


@pytest.fixture(scope="module")
def torchvision_folder(tmp_path_factory) -> Path:
    """Fashion-MNIST's files, uncompressed, where torchvision's FashionMNIST and MNIST look for them."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("torchvision")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (root / "MNIST").mkdir()
    (root / "MNIST" / "raw").symlink_to(raw)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        with gzip.open(FASHION / f"{name}.gz") as packed, open(raw / name, "wb") as out:
            shutil.copyfileobj(packed, out)
    return root


@pytest.mark.slow  # reading 14,000 images example by example through Avalanche's dataset: about 10 s
def test_split_fmnist_from_files_on_disk(torchvision_folder):
    """Avalanche's classic SplitFMNIST reads torchvision's folder layout; given the files there, nothing downloads."""
    from avalanche.benchmarks.classic import SplitFMNIST

    stream = from_avalanche(SplitFMNIST(5, fixed_class_order=list(range(10)), dataset_root=torchvision_folder))
    assert (stream.scenario, len(stream), stream.input_shape, stream.n_outputs) == ("class-il", 5, (1, 28, 28), 10)
    task = stream.tasks[4]
    assert task.classes == (8, 9) and len(task.x_train) == 12_000 and len(task.x_test) == 2000
    raw = torchvision_folder / "FashionMNIST" / "raw"
    images = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    order = np.concatenate([np.flatnonzero(labels == 8), np.flatnonzero(labels == 9)])  # class after class
    expected = (torch.from_numpy(images[order].copy()).float() / 255 - 0.2860) / 0.3530
    assert torch.allclose(task.x_test[:, 0], expected, atol=1e-5)  # the eval transform: ToTensor, Normalize
    assert torch.equal(task.y_test, torch.from_numpy(labels[order].astype(np.int64)))


@pytest.mark.slow
def test_permuted_mnist_is_domain_incremental_with_ten_outputs(torchvision_folder):
    """PermutedMNIST's code path, on Fashion-MNIST's files in MNIST's place (the content does not matter here).
    Avalanche's own `n_classes` says 30 for three permutations; the model needs 10 outputs."""
    from avalanche.benchmarks.classic import PermutedMNIST

    bench = PermutedMNIST(3, seed=0, dataset_root=torchvision_folder)
    stream = from_avalanche(bench)
    assert (stream.scenario, len(stream), stream.n_outputs, bench.n_classes) == ("domain-il", 3, 10, 30)
    assert stream.tasks.names[0] == "T1 (classes 0..9 (10))"


FACTORY = textwrap.dedent("""
    import torch
    from torch.utils.data import TensorDataset
    from avalanche.benchmarks import class_incremental_benchmark

    def make_benchmark(n_experiences, seed=0):
        g = torch.Generator().manual_seed(seed)
        centres = 4 * torch.randn(6, 8, generator=g)
        y = torch.arange(6).repeat_interleave(30)
        data = {split: TensorDataset(centres[y] + torch.randn(len(y), 8, generator=g), y)
                for split in ("train", "test")}
        return class_incremental_benchmark(data, num_experiences=n_experiences, class_order=list(range(6)))

    def unseeded(n_experiences):
        y = torch.arange(6).repeat_interleave(2)
        data = TensorDataset(torch.randn(len(y), 2), y)
        return class_incremental_benchmark({"train": data, "test": data}, num_experiences=n_experiences)

    def not_a_benchmark(**args):
        return {"train_stream": "no"}

    def without_targets():
        from avalanche.benchmarks import benchmark_from_datasets
        from avalanche.benchmarks.utils import AvalancheDataset
        data = [AvalancheDataset([TensorDataset(torch.zeros(4, 2))])]
        return benchmark_from_datasets(train=data, test=data)
""")


def write_config(folder: Path, stream: str, module: str = "benchmarks_here") -> Path:
    (folder / f"{module}.py").write_text(FACTORY)
    config = folder / "c.yaml"
    config.write_text(f"name: av\nstream: {stream}\nmodel: {{type: mlp, hidden: [16]}}\n"
                      "training: {epochs: 2, batch_size: 16, lr: 0.1}\nstrategies: [{name: naive}]\n")
    return config


@pytest.mark.parametrize("stream, message", [
    ("{builder: avalanche, name: a, factory: 'nowhere:make'}", "cannot import module 'nowhere' for stream factory"),
    ("{builder: avalanche, name: a, factory: 'benchmarks_here'}", "must name a function as 'package.module:function'"),
    ("{builder: avalanche, name: a, factory: 'benchmarks_here:make_benchmark', args: {n_experiences: 3, colour: 1}}",
     "called with args {'n_experiences': 3, 'colour': 1} failed: TypeError"),
    ("{builder: avalanche, name: a, factory: 'benchmarks_here:not_a_benchmark'}",
     "dict is not an Avalanche benchmark: it has no train_stream"),
    ("{builder: avalanche, name: a, factory: 'benchmarks_here:without_targets'}",
     "train experience 0 has no targets"),
    ("{builder: avalanche, name: a, n_tasks: 2, factory: 'benchmarks_here:make_benchmark', args: {n_experiences: 3}}",
     "n_tasks is 2 but the benchmark of 'benchmarks_here:make_benchmark' has 3 train experiences"),
])
def test_bad_factories_are_refused_naming_the_field_and_the_fix(tmp_path, monkeypatch, stream, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, stream))
    assert "field 'stream" in str(error.value) and message in str(error.value)


def test_an_unseeded_factory_makes_the_same_benchmark_for_a_stream_seed_and_leaves_global_rngs_alone(
        tmp_path, monkeypatch):
    from lifelong.streams.builtin import avalanche as builder

    monkeypatch.chdir(tmp_path)
    orders = {}
    for seed in (0, 0, 1, 2):
        if seed == 0:
            builder._LAYOUTS.clear()  # as in a new process (a resumed run, a sweep worker)
        state = torch.random.get_rng_state()
        stream_spec = f"{{builder: avalanche, name: a, factory: 'benchmarks_here:unseeded', seed: {seed}, " \
                      "args: {n_experiences: 3}}"
        config = load_config(write_config(tmp_path, stream_spec))
        assert torch.equal(torch.random.get_rng_state(), state)
        stream = build_stream(config.stream)
        orders.setdefault(seed, []).append([t.classes for t in stream.tasks])
    assert orders[0][0] == orders[0][1] and orders[1] != orders[2]  # the class order follows the stream seed


def test_editing_the_factory_module_changes_the_reference_key(tmp_path, monkeypatch):
    from lifelong.references import reference_key

    monkeypatch.chdir(tmp_path)
    stream_spec = "{builder: avalanche, name: a, factory: 'edited_here:make_benchmark', args: {n_experiences: 2}}"
    config = load_config(write_config(tmp_path, stream_spec, "edited_here"))
    key = reference_key(config, config.training, 0, torch.device("cpu"))[0]
    assert reference_key(config, config.training, 0, torch.device("cpu"))[0] == key
    (tmp_path / "edited_here.py").write_text(FACTORY.replace("4 * torch.randn", "5 * torch.randn"))
    assert reference_key(config, config.training, 0, torch.device("cpu"))[0] != key


@pytest.mark.slow
def test_a_config_with_an_avalanche_stream_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, "{builder: avalanche, name: blobs, factory: 'benchmarks_here:make_benchmark', "
                                    "args: {n_experiences: 3}}")
    result = subprocess.run([sys.executable, "-P", "-m", "lifelong.cli", "run", config, "--out", tmp_path / "run",
                             f"references.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    record = pd.read_csv(tmp_path / "run" / "record.csv")
    assert len(record) == 4 * 3 and record["after_task"].max() == 3
    learned = record[record["after_task"] == record["eval_task"] + 1]["score"]
    assert (learned > 0.9).all()  # each task of well-separated blobs, right after learning it
    written = load_config(tmp_path / "run" / "config.yaml")  # n_tasks and the scenario were read from the benchmark
    assert (written.stream.n_tasks, written.stream.scenario) == (3, "class-il")
