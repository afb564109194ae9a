"""The bad-input table: malformed configs, overrides, stream specs, CLI flags, data folders and plugins.

Each case must exit with code 2, print one message naming the field or file (and no traceback), and
leave nothing behind: no new file or folder, or a run folder holding error.txt. Cases run in-process
(CliRunner) in a scratch folder; only the last few train for a moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import lifelong
from lifelong.cli import app

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: tiny
stream: split_digits
training: {epochs: 1}
strategies:
  - name: naive
references: {cache_dir: cache}
"""

# 9 levels of 9 aliases: 9**9 = 387,420,489 strings once expanded, 10 lines on disk.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))

TINY_STREAM = "{name: t, builder: split, n_tasks: 2, classes_per_task: 2, train_per_task: 60, test_per_task: 20}"

PLUGINS = {
    "noclass.py": "X = 1\n",
    "notstrategy.py": "class Thing:\n    pass\n",
    "broken.py": "def oops(:\n",
    "crashing.py": textwrap.dedent("""\
        from lifelong.strategies.base import Strategy

        class Crash(Strategy):
            def learn(self, task):
                raise RuntimeError("plugin bug on purpose")
        """),
}


def config(*edits: tuple[str, str], extra: str = "") -> str:
    text = GOOD
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text + extra


def case(id, args, expect, files=None, marks=()):
    return pytest.param(args, expect, files or {}, id=id, marks=marks)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

CASES = [
    # --- the config file itself
    case("missing-file", ["validate", "nope.yaml"], ["nope.yaml: no such file", "Shipped configs", "quickstart"]),
    case("misspelt-shipped-config", ["validate", "configs/quikstart.yaml"], ["no such file. Did you mean quickstart?"]),
    case("config-is-a-folder", ["validate", "adir"], ["adir: is a folder"], {"adir/x.txt": "x"}),
    case("binary-config", ["validate", "c.yaml"], ["c.yaml: not a text file"], {"c.yaml": b"\x89PNG\r\n\x1a\n\xff\xfe"}),
    case("control-character", ["validate", "c.yaml"], ["c.yaml: not valid YAML", "special characters"],
         {"c.yaml": "name: a\x01b\n"}),
    case("invalid-yaml", ["validate", "c.yaml"], ["c.yaml: not valid YAML"], {"c.yaml": "name: [unclosed\n"}),
    case("top-level-list", ["validate", "c.yaml"], ["c.yaml: the config must be a mapping"], {"c.yaml": "- a\n- b\n"}),
    case("empty-config", ["validate", "c.yaml"], ["c.yaml: the config must be a mapping"], {"c.yaml": ""}),
    case("python-tag", ["validate", "c.yaml"], ["c.yaml: not valid YAML", "python/object"],
         {"c.yaml": "name: !!python/object/apply:os.system [ls]\n"}),
    case("alias-bomb", ["validate", "c.yaml"], ["c.yaml:", "expand to more than 200,000 values"], {"c.yaml": BOMB}),
    case("alias-bomb-run", ["run", "c.yaml", "--out", "run"], ["expand to more than"], {"c.yaml": BOMB}),
    case("recursive-alias", ["validate", "c.yaml"], ["c.yaml:1: an alias refers to the value that contains it"],
         {"c.yaml": "a: &a [*a]\n"}),
    case("nested-too-deep", ["validate", "c.yaml"], ["c.yaml: nested too deeply"],
         {"c.yaml": "[" * 20000 + "]" * 20000}),
    case("unknown-field", ["validate", "c.yaml"], ["c.yaml:7: field 'epohcs': Extra inputs"],
         {"c.yaml": config(extra="epohcs: 3\n")}),
    # --- names that would become paths (issue 8, point 1)
    case("name-climbs-out", ["validate", "c.yaml"], ["c.yaml:1: field 'name'", "'../../N' holds '/'"],
         {"c.yaml": config(("name: tiny", "name: ../../N"))}),
    case("name-absolute", ["validate", "c.yaml"], ["field 'name'", "holds '/'"],
         {"c.yaml": config(("name: tiny", "name: /tmp/elsewhere"))}),
    case("name-hidden", ["validate", "c.yaml"], ["field 'name'", "starts with a dot"],
         {"c.yaml": config(("name: tiny", "name: .hidden"))}),
    case("name-blank", ["validate", "c.yaml"], ["field 'name'"], {"c.yaml": config(("name: tiny", "name: ''"))}),
    case("label-climbs-out", ["validate", "c.yaml"], ["c.yaml:6: field 'strategies.0.label'", "e.g. 'ewc-lambda_10'"],
         {"c.yaml": config(("- name: naive", "- name: naive\n    label: ../../x"))}),
    case("label-with-slash", ["validate", "c.yaml"], ["field 'strategies.0.label'", "holds '/'"],
         {"c.yaml": config(("- name: naive", "- name: naive\n    label: a/b"))}),
    case("label-with-backslash", ["validate", "c.yaml"], ["field 'strategies.0.label'", "holds '\\\\'"],
         {"c.yaml": config(("- name: naive", "- name: naive\n    label: a\\b"))}),
    case("strategy-name-path", ["validate", "c.yaml"], ["field 'strategies.0.name'", "neither a registered name nor 'package.module:Class'"],
         {"c.yaml": config(("- name: naive", "- name: ../../x:Y"))}),
    # --- strategies and plugins
    case("unknown-strategy", ["validate", "c.yaml"], ["c.yaml:5: field 'strategies.0.name'", "Did you mean naive"],
         {"c.yaml": config(("- name: naive", "- name: naiv"))}),
    case("plugin-module-missing", ["validate", "c.yaml"], ["field 'strategies.0.name'", "cannot import module 'nomod'"],
         {"c.yaml": config(("- name: naive", "- name: nomod:X"))}),
    case("plugin-attribute-missing", ["validate", "c.yaml"], ["module 'noclass' has no attribute 'LwF'"],
         {"c.yaml": config(("- name: naive", "- name: noclass:LwF"))}),
    case("plugin-not-a-strategy", ["validate", "c.yaml"], ["'notstrategy:Thing'", "not a subclass"],
         {"c.yaml": config(("- name: naive", "- name: notstrategy:Thing"))}),
    case("plugin-syntax-error", ["validate", "c.yaml"], ["cannot import module 'broken'", "SyntaxError"],
         {"c.yaml": config(("- name: naive", "- name: broken:X"))}),
    case("unknown-param", ["validate", "c.yaml"], ["field 'strategies.0.params.foo' (naive)"],
         {"c.yaml": config(("- name: naive", "- name: naive\n    params: {foo: 1}"))}),
    case("bad-param-value", ["validate", "c.yaml"], ["field 'strategies.0.params.buffer_size' (replay)"],
         {"c.yaml": config(("- name: naive", "- name: replay\n    params: {buffer_size: -5}"))}),
    case("repeated-labels", ["validate", "c.yaml"], ["distinct `label:`"],
         {"c.yaml": config(("- name: naive", "- name: naive\n  - name: naive"))}),
    case("no-strategies", ["validate", "c.yaml"], ["field 'strategies'"],
         {"c.yaml": config(("strategies:\n  - name: naive", "strategies: []"))}),
    case("strategy-training-bad", ["validate", "c.yaml"], ["field 'strategies.0.training.lr'"],
         {"c.yaml": config(("- name: naive", "- name: naive\n    training: {lr: -1}"))}),
    # --- seeds, model, training, evaluation, references
    case("negative-seed", ["validate", "c.yaml"], ["c.yaml:7: field 'seeds.1'", "greater than or equal to 0"],
         {"c.yaml": config(extra="seeds: [0, -3]\n")}),
    case("no-seeds", ["validate", "c.yaml"], ["field 'seeds'"], {"c.yaml": config(extra="seeds: []\n")}),
    case("seed-not-a-number", ["validate", "c.yaml"], ["field 'seeds.0'"], {"c.yaml": config(extra="seeds: [abc]\n")}),
    case("hidden-negative", ["validate", "c.yaml"], ["c.yaml:7: field 'model.hidden.0'", "greater than or equal to 1"],
         {"c.yaml": config(extra="model: {hidden: [-4]}\n")}),
    case("hidden-zero", ["validate", "c.yaml"], ["field 'model.hidden.0'", "greater than or equal to 1"],
         {"c.yaml": config(extra="model: {hidden: [0]}\n")}),
    case("channels-zero", ["validate", "c.yaml"], ["field 'model.channels.1'"],
         {"c.yaml": config(extra="model: {type: convnet, channels: [4, 0]}\n")}),
    case("model-type", ["validate", "c.yaml"], ["field 'model.type'"], {"c.yaml": config(extra="model: {type: rnn}\n")}),
    case("convnet-on-vectors", ["validate", "c.yaml"], ["model.type=convnet needs image inputs", "model.type=mlp"],
         {"c.yaml": config(("stream: split_digits", "stream: sinusoid"), extra="model: {type: convnet}\n")}),
    case("too-many-pools", ["validate", "c.yaml"], ["model.channels has 4 pooling stages", "at most 3"],
         {"c.yaml": config(extra="model: {type: convnet, channels: [4, 4, 4, 4]}\n")}),
    case("epochs-zero", ["validate", "c.yaml"], ["c.yaml:3: field 'training.epochs'"],
         {"c.yaml": config(("epochs: 1", "epochs: 0"))}),
    case("lr-negative", ["validate", "c.yaml"], ["field 'training.lr'"], {"c.yaml": config(("epochs: 1", "lr: -1"))}),
    case("optimizer", ["validate", "c.yaml"], ["field 'training.optimizer'"],
         {"c.yaml": config(("epochs: 1", "optimizer: rmsprop"))}),
    case("device", ["validate", "c.yaml"], ["field 'device'"], {"c.yaml": config(extra="device: tpu\n")}),
    case("threads", ["validate", "c.yaml"], ["field 'threads'"], {"c.yaml": config(extra="threads: 0\n")}),
    case("evaluation-mode", ["validate", "c.yaml"], ["field 'evaluation.mode'"],
         {"c.yaml": config(extra="evaluation: {mode: sometimes}\n")}),
    case("shots-do-not-fit", ["validate", "c.yaml"], ["evaluation.shots=1000", "lower evaluation.shots"],
         {"c.yaml": config(extra="evaluation: {mode: few-shot, shots: 1000}\n")}),
    case("joint-at-beyond-stream", ["validate", "c.yaml"], ["c.yaml:6: field 'references.joint_at'", "1..5"],
         {"c.yaml": config(("{cache_dir: cache}", "{cache_dir: cache, joint_at: [2, 9]}"))}),
    case("joint-at-zero", ["validate", "c.yaml"], ["field 'references.joint_at'", "lists [0]"],
         {"c.yaml": config(("{cache_dir: cache}", "{cache_dir: cache, joint_at: [0]}"))}),
    case("tolerance-negative", ["validate", "c.yaml"], ["field 'analysis.tolerance'"],
         {"c.yaml": config(extra="analysis: {tolerance: -1}\n")}),
    # --- stream specs
    case("unknown-stream", ["validate", "c.yaml"], ["field 'stream': no stream named 'split_digit'", "split_digits"],
         {"c.yaml": config(("stream: split_digits", "stream: split_digit"))}),
    case("unknown-builder", ["validate", "c.yaml"], ["c.yaml:2: field 'stream'", "'splt'"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: x, builder: splt, n_tasks: 2}"))}),
    case("classes-do-not-divide", ["validate", "c.yaml"], ["stream 's': 12 distinct classes needed", "lower n_tasks"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: s, builder: split, n_tasks: 6}"))}),
    case("classes-per-task-list", ["validate", "c.yaml"], ["field 'stream'", "list of 3 positive numbers"],
         {"c.yaml": config(("stream: split_digits",
                            "stream: {name: s, builder: split, n_tasks: 3, classes_per_task: [2, 2]}"))}),
    case("n-tasks-zero", ["validate", "c.yaml"], ["field 'stream.n_tasks'"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: s, builder: permuted, n_tasks: 0}"))}),
    case("unknown-dataset", ["validate", "c.yaml"], ["unknown dataset 'cifar'"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: s, builder: permuted, n_tasks: 2, dataset: cifar}"))}),
    case("data-folder-missing", ["validate", "c.yaml"], ["apt-get install -y dataset-fashion-mnist"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: f, builder: split, dataset: fashion_mnist, "
                                                    "n_tasks: 5, data_root: /nonexistent}"))}),
    case("data-folder-garbage", ["validate", "c.yaml"], ["data/"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: f, builder: split, dataset: idx, "
                                                    "n_tasks: 5, data_root: data}")),
          "data/train-images-idx3-ubyte": b"garbage", "data/train-labels-idx1-ubyte": b"garbage",
          "data/t10k-images-idx3-ubyte": b"garbage", "data/t10k-labels-idx1-ubyte": b"garbage"}),
    case("stream-file-invalid", ["validate", "c.yaml"], ["s.yaml: not valid YAML"],
         {"c.yaml": config(("stream: split_digits", "stream: s.yaml")), "s.yaml": "name: [\n"}),
    case("stream-file-field", ["validate", "c.yaml"], ["s.yaml:3: field 'n_tasks'"],
         {"c.yaml": config(("stream: split_digits", "stream: s.yaml")),
          "s.yaml": "name: s\nbuilder: permuted\nn_tasks: -2\n"}),
    case("stream-file-bomb", ["validate", "c.yaml"], ["s.yaml:", "expand to more than"],
         {"c.yaml": config(("stream: split_digits", "stream: s.yaml")), "s.yaml": BOMB}),
    case("stream-file-binary", ["validate", "c.yaml"], ["s.yaml: not a text file"],
         {"c.yaml": config(("stream: split_digits", "stream: s.yaml")), "s.yaml": b"\xff\xfe\x00binary"}),
    # --- overrides
    case("override-no-equals", ["validate", "c.yaml", "training.lr"], ["override 'training.lr'", "key.sub=value"],
         {"c.yaml": GOOD}),
    case("override-empty-key", ["validate", "c.yaml", "=5"], ["override '=5'"], {"c.yaml": GOOD}),
    case("override-into-a-string", ["validate", "c.yaml", "name.x=1"], ["override 'name.x=1': cannot set"],
         {"c.yaml": GOOD}),
    case("override-list-by-name", ["validate", "c.yaml", "strategies.first.name=naive"], ["list items take a number"],
         {"c.yaml": GOOD}),
    case("override-index-out", ["validate", "c.yaml", "strategies.5.name=naive"], ["override 'strategies.5.name"],
         {"c.yaml": GOOD}),
    case("override-invalid-yaml", ["validate", "c.yaml", "training.lr=["], ["override 'training.lr=[': not valid YAML"],
         {"c.yaml": GOOD}),
    case("override-bomb", ["validate", "c.yaml", "seeds=" + "[&a [1,1,1,1,1,1,1,1,1,1]," + ",".join(
        f"&{c} [{','.join(['*' + p] * 10)}]" for p, c in zip("abcdef", "bcdefg")) + "]"],
         ["override 'seeds=", "expand to more than"], {"c.yaml": GOOD}),
    case("override-negative-seed", ["validate", "c.yaml", "seeds=[-3]"], ["field 'seeds.0'"], {"c.yaml": GOOD}),
    case("override-label", ["validate", "c.yaml", "strategies.0.label=../x"], ["field 'strategies.0.label'"],
         {"c.yaml": GOOD}),
    case("override-hidden", ["validate", "c.yaml", "model.hidden=[0]"], ["field 'model.hidden.0'"], {"c.yaml": GOOD}),
    # --- command-line flags and output folders
    case("seeds-backwards", ["run", "c.yaml", "--seeds", "4-2"], ["increasing range"], {"c.yaml": GOOD}),
    case("seeds-garbage", ["run", "c.yaml", "--seeds", "x"], ["--seeds 'x'", "0-4"], {"c.yaml": GOOD}),
    case("seed-negative", ["run", "c.yaml", "--seed", "-1"], ["field 'seeds.0'"], {"c.yaml": GOOD}),
    case("device-flag", ["run", "c.yaml", "--device", "tpu"], ["field 'device'"], {"c.yaml": GOOD}),
    case("cuda-without-cuda", ["run", "c.yaml", "--device", "cuda", "--out", "run"], ["no CUDA device"],
         {"c.yaml": GOOD}, marks=NO_CUDA),
    case("out-read-only", ["run", "c.yaml", "--out", "/sys/lifelong-run"], ["--out /sys/lifelong-run", "cannot write"],
         {"c.yaml": GOOD}),
    case("out-no-root", ["run", "c.yaml", "--out", "/proc/nowhere/run"], ["--out /proc/nowhere/run", "cannot write"],
         {"c.yaml": GOOD}),
    case("out-is-a-file", ["run", "c.yaml", "--out", "afile"], ["--out afile", "is a file, not a folder"],
         {"c.yaml": GOOD, "afile": "x"}),
    case("out-under-a-file", ["run", "c.yaml", "--out", "afile/run"], ["afile is a file, not a folder"],
         {"c.yaml": GOOD, "afile": "x"}),
    case("config-out-read-only", ["run", "c.yaml"], ["out /sys/reports", "cannot write"],
         {"c.yaml": config(extra="out: /sys/reports\n")}),
    case("cache-read-only", ["run", "c.yaml", "--out", "run"], ["references.cache_dir /sys/cache", "cannot write"],
         {"c.yaml": config(("{cache_dir: cache}", "{cache_dir: /sys/cache}"))}),
    case("validate-out-read-only", ["validate", "c.yaml"], ["out /sys/reports", "cannot write"],
         {"c.yaml": config(extra="out: /sys/reports\n")}),
    case("list-what", ["list", "widgets"], ["cannot list 'widgets'"]),
    # --- run folders given to report, compare, resume
    case("report-nowhere", ["report", "nowhere"], ["nowhere: no such run folder"]),
    case("report-a-file", ["report", "afile"], ["afile: no such run folder"], {"afile": "x"}),
    case("report-config-list", ["report", "r"], ["r/config.yaml: holds list, not the mapping", "delete it"],
         {"r/config.yaml": "- a\n- b\n"}),
    case("report-config-bomb", ["report", "r"], ["r/config.yaml:", "expand to more than"], {"r/config.yaml": BOMB}),
    case("report-config-binary", ["report", "r"], ["r/config.yaml: not a text file"], {"r/config.yaml": b"\xff\x00"}),
    case("compare-nowhere", ["compare", "r", "nowhere"], ["nowhere: no such run folder"], {"r/x.txt": "x"}),
    case("resume-nowhere", ["resume", "nowhere"], ["nowhere: no such run folder"]),
    case("resume-config-list", ["resume", "r"], ["r/config.yaml: holds list"], {"r/config.yaml": "[1, 2]\n"}),
    case("resume-no-config", ["resume", "r"], ["r: no config.yaml here"], {"r/x.txt": "x"}),
    # --- failures that a run meets: before its first task (no folder), or while training (error.txt)
    case("run-classes-do-not-divide", ["run", "c.yaml", "--out", "run", "--no-references"],
         ["12 distinct classes needed"],
         {"c.yaml": config(("stream: split_digits", "stream: {name: s, builder: split, n_tasks: 6}"))}),
    case("run-convnet-on-vectors", ["run", "c.yaml", "--out", "run", "--no-references"], ["needs image inputs"],
         {"c.yaml": config(("stream: split_digits", "stream: sinusoid"), extra="model: {type: convnet}\n")}),
    case("run-shots-do-not-fit", ["run", "c.yaml", "--out", "run", "--no-references"], ["evaluation.shots=1000"],
         {"c.yaml": config(extra="evaluation: {mode: few-shot, shots: 1000}\n")}),
    case("run-plugin-crashes", ["run", "c.yaml", "--out", "run", "--no-references"],
         ["strategy 'crashing:Crash' failed while learning", "plugin bug on purpose"],
         {"c.yaml": config(("stream: split_digits", f"stream: {TINY_STREAM}"), ("- name: naive", "- name: crashing:Crash"))}),
    case("run-loss-diverges", ["run", "c.yaml", "--out", "run", "--no-references"], ["params.lambda"],
         {"c.yaml": config(("- name: naive", "- name: ewc\n    params: {lambda: 100000}"),
                           ("epochs: 1", "epochs: 5, lr: 0.05"))}),
]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in PLUGINS.items():
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def snapshot(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("args, expect, files", CASES)
def test_bad_input_exits_2_names_the_field_and_leaves_nothing_behind(scratch, args, expect, files):
    for name, content in files.items():
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    before = snapshot(scratch)
    result = CliRunner().invoke(app, args)
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output and output.count("error:") == 1, result.output
    for text in expect:
        assert text in output, f"{text!r} not in {result.output!r}"
    new = snapshot(scratch) - before
    folders = {p.parts[0] for p in new}
    assert all((scratch / f / "error.txt").is_file() for f in folders), f"left behind: {sorted(map(str, new))}"


def test_the_table_holds_at_least_60_cases():
    assert len(CASES) >= 60


def test_an_alias_bomb_is_refused_within_a_second(tmp_path):
    """A billion-laughs config used to hang `validate` and `run` for ever (the line map expanded it)."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    for command in ("validate", "run"):  # a fresh process first: today's code would never return
        done = subprocess.run([sys.executable, "-m", "lifelong.cli", command, str(bomb)], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 2 and "expand to more than" in done.stderr, done.stderr
    for command in ("validate", "run"):  # then the answer itself, imports done
        started = time.perf_counter()
        assert CliRunner().invoke(app, [command, str(bomb)]).exit_code == 2
        assert time.perf_counter() - started < 1.0


def test_a_bug_keeps_its_traceback_and_asks_to_be_reported(tmp_path, monkeypatch):
    def broken(config):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr("lifelong.preflight.check_experiment", broken)
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "this is a bug in lifelong" in result.output and "Please report" in result.output


def test_the_cli_imports_no_heavy_library_until_a_command_needs_it():
    """`lifelong --help`, `--version` and `list` answer without torch, pandas or matplotlib."""
    code = textwrap.dedent("""\
        import sys
        from typer.testing import CliRunner
        from lifelong.cli import app
        for args in (["--help"], ["--version"], ["list", "strategies"], ["list", "streams"]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        print(sorted(m for m in ("torch", "pandas", "matplotlib") if m in sys.modules))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_version_is_one_string():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lifelong {lifelong.__version__}"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = {attr = "lifelong.__version__"}' in pyproject


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_validates(name, monkeypatch, tmp_path):
    """Every file in configs/ (the long ones too): fields, stream, model and strategy set-up."""
    uses_fashion = "fmnist" in (REPO / "configs" / f"{name}.yaml").read_text()  # its name or its stream's
    if uses_fashion and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)")
    monkeypatch.chdir(tmp_path)  # a folder without configs/: the shipped config is found by its path
    result = CliRunner().invoke(app, ["validate", f"configs/{name}.yaml"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "strategies set up" in result.output and "model" in result.output


def test_a_shipped_config_is_found_by_its_name_alone(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", "quickstart"])
    assert result.exit_code == 0 and "stream 'split_digits' builds: 5 tasks" in result.output, result.output
