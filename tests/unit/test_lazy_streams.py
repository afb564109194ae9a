"""Lazy streams: tasks built when asked for and released after, builders found in a registry,
and a memory estimate that refuses at validation what cannot fit."""

import gc
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Literal

import pytest
import torch
from pydantic import TypeAdapter

from lifelong.config import ConfigError, load_config
from lifelong.streams import builders, memory, registry
from lifelong.streams.builders import build_stream
from lifelong.streams.builtin import domain
from lifelong.streams.registry import Recipe, StreamSpecBase, stream_builder
from lifelong.streams.spec import StreamSpec
from lifelong.streams.task import Task, Tasks


def stream_of(**fields):
    return build_stream(TypeAdapter(StreamSpec).validate_python(fields))


def permuted(n_tasks: int, **fields):
    return stream_of(name="p", builder="permuted", dataset="digits", n_tasks=n_tasks, **fields)


def test_building_a_stream_builds_no_task_yet_names_them_all(monkeypatch):
    built = []
    monkeypatch.setattr(domain, "Task", lambda *args, **kwargs: built.append(args[0]) or Task(*args, **kwargs))
    stream = permuted(500, test_per_task=20)
    assert built == [] and len(stream.tasks) == 500 and isinstance(stream.tasks, Tasks)
    assert stream.tasks[499].name == stream.tasks.names[499] and stream.tasks.names[499].startswith("T500 (perm ")
    assert built == [499]


def test_a_task_built_again_is_the_same_task_and_old_tasks_are_released(monkeypatch):
    monkeypatch.setattr(builders, "KEEP_ALL_BYTES", 60 * 2**20)  # 200 tasks of 1367 images: 72 MB
    stream = permuted(200, test_per_task=20)
    first = stream.tasks[3]
    alive = [weakref.ref(task) for task in stream.tasks]  # the whole stream, held weakly
    gc.collect()
    assert sum(ref() is not None for ref in alive) == 2  # the last two built, kept by `Tasks`
    again = stream.tasks[3]
    assert again is not first
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(again, name), getattr(first, name))
    assert (again.name, again.meta, again.classes) == (first.name, first.meta, first.classes)
    assert [t.id for t in stream.tasks[5:8]] == [5, 6, 7] and stream.tasks[-1].id == 199
    with pytest.raises(IndexError, match="task index 200 out of range for 200 tasks"):
        stream.tasks[200]


def test_a_small_stream_keeps_every_task_it_built_so_strategies_and_seeds_share_them(monkeypatch):
    monkeypatch.setattr(builders, "KEEP_ALL_BYTES", 80 * 2**20)
    stream = permuted(200, test_per_task=20)
    first = [task for task in stream.tasks]
    assert all(a is b for a, b in zip(first, stream.tasks))


@pytest.mark.parametrize("fields,message", [
    (dict(builder="nway", ways=2, train_per_class=10**6), "fewer than the 1000000 needed; lower train_per_class"),
    (dict(builder="nway_conflict", ways=3, test_per_class=500), "fewer than the 500 needed; lower test_per_class"),
    (dict(builder="split", classes_per_task=3, n_tasks=4), "lower n_tasks or classes_per_task"),
])
def test_builder_checks_fail_when_the_stream_is_built_before_any_task(fields, message):
    with pytest.raises(ValueError, match=message):
        stream_of(**{"name": "s", "dataset": "digits", "n_tasks": 2, **fields})


class CountdownSpec(StreamSpecBase):
    builder: Literal["countdown"]
    scenario: Literal["domain-il"] = "domain-il"


@pytest.fixture
def countdown_builder():
    @stream_builder(CountdownSpec)
    def countdown(spec: CountdownSpec) -> Recipe:
        def make(i: int) -> Task:
            x = torch.full((4, 1), float(spec.n_tasks - i))
            return Task(i, f"T{i + 1}", "regression", x, x, x, x)
        return Recipe([f"T{i + 1}" for i in range(spec.n_tasks)], make, (1,), 1, {"what": "countdown"})
    yield countdown
    del registry._BUILDERS["countdown"]


def test_a_builder_is_one_registered_function_beside_its_spec(countdown_builder):
    stream = build_stream(CountdownSpec(name="c", builder="countdown", n_tasks=3))
    assert [float(t.x_test[0, 0]) for t in stream] == [3.0, 2.0, 1.0]
    assert stream.meta == {"what": "countdown", "builder": "countdown"} and stream.kind == "regression"
    with pytest.raises(ValueError, match="two stream builders are called 'countdown'"):
        stream_builder(CountdownSpec)(countdown_builder)
    shipped = {spec.model_fields["builder"].annotation.__args__[0]
               for spec in StreamSpec.__origin__.__args__}
    assert shipped == set(registry.builders()) - {"countdown"} == {
        "split", "permuted", "rotated", "sinusoid", "sinusoid_family", "nway", "nway_conflict", "repeat", "unrelated",
        "avalanche"}


def test_memory_estimate_counts_the_dataset_the_evaluated_test_sets_and_the_tasks_at_work():
    spec = TypeAdapter(StreamSpec).validate_python(dict(name="p", builder="permuted", dataset="digits",
                                                        n_tasks=1000, test_per_task=100))
    row = 64 * 4 + 8  # a float32 8x8 image and an int64 label
    dataset = (1347 + 450) * row
    assert memory.estimate_bytes(spec) == dataset + 1000 * 100 * row + 3 * (1347 + 100) * row == 28_020_432
    assert memory.estimate_bytes(spec, evaluated_tasks=10) == dataset + 10 * 100 * row + 3 * (1347 + 100) * row
    split = TypeAdapter(StreamSpec).validate_python(dict(name="s", builder="split", dataset="fashion_mnist",
                                                         n_tasks=5, test_per_task=300))
    fmnist_row = 784 * 4 + 8
    assert memory.estimate_bytes(split) == (70_000 + 5 * 300 + 3 * (12_000 + 300)) * fmnist_row


def write_config(tmp_path, stream: str, evaluation: str = "") -> str:
    path = tmp_path / "c.yaml"
    path.write_text(f"name: big\nstream: {{{stream}}}\nstrategies: [{{name: naive}}]\n{evaluation}")
    return path


def test_a_stream_too_large_for_memory_is_refused_at_validation_with_the_numbers_and_the_fix(tmp_path,
                                                                                            monkeypatch):
    huge = write_config(tmp_path, "name: p, builder: permuted, dataset: fashion_mnist, n_tasks: 100000")
    with pytest.raises(ConfigError, match=r"needs about 3\d{3}\.\d GB resident \(100000 evaluated tasks x 10000 "
                                          r"test examples.*GB available; lower n_tasks \(now 100000\) or "
                                          r"test_per_task, or .*evaluation.tasks: sample\(n\)"):
        load_config(huge)
    monkeypatch.setattr(memory, "available_bytes", lambda: 100_000_000)  # 100 MB
    stream = "name: p, builder: permuted, dataset: digits, n_tasks: 10000, test_per_task: 100"
    with pytest.raises(ConfigError, match="needs about 0.3 GB resident"):
        load_config(write_config(tmp_path, stream))
    config = load_config(write_config(tmp_path, stream, "evaluation: {tasks: sample(50)}"))
    assert config.evaluation.sample_size == 50


def test_an_idx_folder_is_sized_from_its_file_headers_without_loading_it(tmp_path):
    from lifelong.streams.sources import IDX_FILES, write_idx

    shapes = {"x_train": (30, 5, 4), "y_train": (30,), "x_test": (12, 5, 4), "y_test": (12,)}
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / (stem + (".gz" if key.startswith("x") else "")), torch.zeros(shapes[key], dtype=torch.uint8))
    spec = TypeAdapter(StreamSpec).validate_python(dict(name="i", builder="permuted", dataset="idx",
                                                        data_root=str(tmp_path), n_tasks=4, test_per_task=5))
    assert memory.source_size(spec) == memory.SourceSize(30, 12, 1, 20 * 4 + 8)
    assert memory.estimate_bytes(spec) == (42 + 4 * 5 + 3 * (30 + 5)) * 88
    missing = spec.model_copy(update={"data_root": str(tmp_path / "nowhere")})
    assert memory.source_size(missing) is None and memory.estimate_bytes(missing) == 0


def test_stream_specs_are_read_validated_and_sized_without_torch_which_comes_when_the_stream_is_built():
    """Config validation reads stream specs and sizes them before anything needs a tensor."""
    code = textwrap.dedent("""\
        import sys
        from lifelong.specfiles import load_stream_spec, stream_files
        from lifelong.streams.memory import estimate_bytes
        specs = [load_stream_spec(path) for path in stream_files().values()]
        print(sorted({m for m in ("torch", "pandas", "matplotlib") if m in sys.modules}),
              sum(estimate_bytes(spec) > 0 for spec in specs) == len(specs))
        from lifelong.streams.builders import build_stream
        task = build_stream(next(spec for spec in specs if spec.name == "split_digits")).tasks[0]
        print(type(task.x_train).__module__, "torch" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[] True", "torch True"]
