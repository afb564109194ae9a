"""Lifelong without Avalanche: the core works, and every Avalanche entry point stops with one line naming the extra.

Avalanche is blocked in a subprocess (`sys.modules['avalanche'] = None`), so these hold in a venv that has it too.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HINT = "pip install 'lifelong[avalanche]' torch==2.14.1 torchvision==0.29.1"
BLOCK = "import sys; sys.modules['avalanche'] = None\n"

ENTRY_POINTS = textwrap.dedent("""
    import importlib.util
    import json
    from lifelong.errors import UserError
    from lifelong.interop.avalanche import from_avalanche, to_avalanche
    from lifelong.streams.builders import build_stream
    from lifelong.streams.spec import SplitSpec

    stream = build_stream(SplitSpec(builder="split", name="s", n_tasks=2, train_per_task=10, test_per_task=10))
    calls = {"from_avalanche": lambda: from_avalanche(object()), "to_avalanche": lambda: to_avalanche(stream)}
    if importlib.util.find_spec("lifelong.interop.avalanche.strategies"):  # the `avalanche.*` strategy names
        from lifelong.strategies.registry import strategy_class
        calls["avalanche.Naive"] = lambda: strategy_class("avalanche.Naive")
    for name, call in calls.items():
        try:
            call()
            print(json.dumps([name, None, ""]))
        except UserError as error:
            print(json.dumps([name, type(error).__name__, str(error)]))
""")


def python(code: str, *args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return python("import runpy; sys.argv = ['lifelong', *sys.argv[1:]]; "
                  "runpy.run_module('lifelong.cli', run_name='__main__')", *args, cwd=cwd)


def test_import_lifelong_and_a_quickstart_run_need_no_avalanche(tmp_path):
    imported = python("import lifelong, lifelong.interop.avalanche, lifelong.streams.spec\n"
                      "assert sys.modules['avalanche'] is None; print('imported')")
    assert imported.returncode == 0 and "imported" in imported.stdout, imported.stderr
    result = cli("run", "configs/quickstart.yaml", "training.epochs=1", "strategies=[{name: naive}]",
                 "--no-references", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "run" / "record.csv").read_text().splitlines()) == 1 + 6 * 5


@pytest.fixture(scope="module")
def entry_points() -> dict[str, tuple]:
    result = python(ENTRY_POINTS)
    assert result.returncode == 0, result.stderr
    return {name: (kind, message) for name, kind, message in map(json.loads, result.stdout.splitlines())}


@pytest.mark.parametrize("name", ["from_avalanche", "to_avalanche", "avalanche.Naive"])
def test_each_python_entry_point_names_the_extra_in_one_line(entry_points, name):
    if name == "avalanche.Naive" and importlib.util.find_spec("lifelong.interop.avalanche.strategies") is None:
        pytest.skip("the avalanche.* strategy names are not in this checkout")
    kind, message = entry_points[name]
    # a strategy name is a config error (the config reader adds the file and line), the functions' own
    expected = "UnknownStrategyError" if name.startswith("avalanche.") else "AvalancheMissing"
    assert kind == expected and HINT in message and "\n" not in message


def test_the_avalanche_stream_builder_exits_2_with_one_line_before_anything_is_written(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: av\nstream: {builder: avalanche, name: a, factory: 'mine:make'}\n"
                      "strategies: [{name: naive}]\n")
    result = cli("run", config, "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the 'avalanche' stream builder needs Avalanche" in lines[0] and HINT in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
