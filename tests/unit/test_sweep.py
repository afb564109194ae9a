"""Sweep files: grid and list expansion, run ids, parameters, and bad input refused before any run starts."""

import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.sweep import SweepError, load_sweep, run_sweep
from lifelong.sweep.driver import make_backend
from lifelong.sweep.job import RunOutcome
from lifelong.sweep.progress import SweepProgress
from lifelong.sweep.spec import override

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "configs/quickstart.yaml"


def sweep_file(tmp_path, body: dict, name="s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"base": str(BASE), **body}, sort_keys=False))
    return path


def test_grid_is_the_cartesian_product_with_stable_readable_ids(tmp_path):
    path = sweep_file(tmp_path, {"set": {"references.enabled": False},
                                 "grid": {"strategy": ["naive", {"name": "ewc", "label": "ewc100",
                                                                 "params": {"lambda": 100}}],
                                          "seed": [0, 1], "training.lr": [0.01, 0.1]}})
    sweep = load_sweep(path)
    assert len(sweep.runs) == 8 and sweep.name == "s" and sweep.out == Path("reports/sweeps/s")
    first, last = sweep.runs[0], sweep.runs[-1]
    assert first.parameters == {"strategy": "naive", "seed": 0, "training.lr": 0.01}
    assert first.run_id.startswith("naive-seed0-lr0.01-") and len(first.run_id.rsplit("-", 1)[1]) == 8
    assert last.run_id.startswith("ewc100-seed1-lr0.1-")
    config = last.config
    assert [(s.name, s.label, s.params) for s in config.strategies] == [("ewc", "ewc100", {"lambda": 100})]
    assert config.seeds == [1] and config.training.lr == 0.1 and config.references.enabled is False
    assert config.training.epochs == 5 and config.stream.name == "split_digits"  # not swept: the base's
    assert len({r.run_id for r in sweep.runs}) == 8
    assert [r.run_id for r in load_sweep(path).runs] == [r.run_id for r in sweep.runs]  # stable on restart


def test_run_ids_change_with_the_base_config(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(BASE.read_text())
    path = tmp_path / "s.yaml"
    path.write_text("base: base.yaml\ngrid: {seed: [0]}\n")  # relative to the sweep file
    before = load_sweep(path).runs[0].run_id
    base.write_text(BASE.read_text().replace("epochs: 5", "epochs: 2"))
    after = load_sweep(path).runs[0]
    assert after.config.training.epochs == 2 and after.run_id != before and after.run_id.startswith("seed0-")


def test_list_runs_name_only_what_they_change(tmp_path):
    path = sweep_file(tmp_path, {"list": [{"strategy": "replay", "strategies.0.params.buffer_size": 50},
                                          {"stream": "permuted_digits", "stream.n_tasks": 3, "seed": 4}]})
    first, second = load_sweep(path).runs
    assert first.config.strategies[0].params == {"buffer_size": 50} and first.config.seeds == [0]
    assert first.run_id.startswith("replay-buffer_size50-")
    assert second.config.stream.builder == "permuted" and second.config.stream.n_tasks == 3
    assert [s.name for s in second.config.strategies] == ["naive", "replay", "ewc", "independent"]
    assert second.config.seeds == [4] and second.run_id.startswith("permuted_digits-n_tasks3-seed4-")


def test_a_strategy_named_like_a_base_entry_is_that_entry_with_its_params(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(BASE.read_text().replace("  - name: independent\n",
                                             "  - name: replay\n    label: big\n    params: {buffer_size: 500}\n"))
    path = tmp_path / "s.yaml"
    path.write_text("base: base.yaml\ngrid: {strategy: [ewc, big, replay, lwf]}\n")
    entries = [[(s.name, s.label, s.params) for s in run.config.strategies] for run in load_sweep(path).runs]
    assert entries == [[("ewc", None, {"lambda": 100, "mode": "separate"})],  # the base's params
                       [("replay", "big", {"buffer_size": 500})],  # by label
                       [("replay", None, {"buffer_size": 200})],  # by name: the unlabelled entry
                       [("lwf", None, {})]]  # not in the base: its defaults


def test_whole_sections_are_set_before_their_fields(tmp_path):
    path = sweep_file(tmp_path, {"set": {"stream.n_tasks": 3},
                                 "list": [{"strategies.0.params.buffer_size": 50, "strategy": "replay"},
                                          {"stream": "permuted_digits"}]})
    replay, permuted = load_sweep(path).runs
    assert replay.config.strategies[0].params == {"buffer_size": 50}
    assert replay.config.stream.n_tasks == 3 and permuted.config.stream.n_tasks == 3
    assert permuted.config.stream.builder == "permuted"


def test_values_become_overrides_that_read_back_the_same():
    assert override("training.lr", 1e-05) == "training.lr=1.0e-05"
    assert yaml.safe_load(override("training.lr", 1e-05).split("=", 1)[1]) == 1e-05
    assert override("name", "0.5") == "name='0.5'"  # a string stays a string
    assert override("strategy", "naive") == "strategies=[{name: naive}]"
    assert override("seed", 3) == "seeds=[3]"


@pytest.mark.parametrize("body, message", [
    ({"grid": {"seed": []}}, "field 'grid.seed' is an empty list, so the grid expands to zero runs"),
    ({"grid": {}}, "field 'grid' is empty, so the sweep has zero runs"),
    ({"list": []}, "field 'list' is empty, so the sweep has zero runs"),
    ({"grid": {"seed": 3}}, "field 'grid.seed': give a list of values"),
    ({"grid": {"seed": [0]}, "list": [{"seed": 1}]}, "give exactly one of `grid:`"),
    ({"gird": {"seed": [0]}}, "field 'gird': Extra inputs are not permitted"),
    ({"grid": {"training.lrr": [0.1, 0.2]}}, "field 'grid.training.lrr' in runs lrr0.1-"),
    ({"set": {"modle.hidden": [8]}, "grid": {"seed": [0]}}, "field 'set.modle.hidden'"),
    ({"list": [{"seed": 0}, {"strategies.9.name": "naive"}]}, "field 'list.strategies.9.name' in runs"),
    ({"grid": {"training.lr": [0.1, -1.0]}}, "1 of 2 runs are not valid configs, so no run was started"),
    ({"list": [{"seed": 1}, {"seed": 1}]}, "runs 0 and 1 have the same parameters"),
    ({"list": [{"seed": 1, "strategy": "naive"}, {"strategy": "naive", "seed": 1}]}, "runs 0 and 1 have the same"),
])
def test_bad_sweeps_are_refused_naming_the_field_and_nothing_is_written(tmp_path, body, message):
    path = sweep_file(tmp_path, body)
    with pytest.raises(SweepError) as error:
        run_sweep(path, out=tmp_path / "out", progress=False)
    assert message in str(error.value) and str(path) in str(error.value)
    assert not (tmp_path / "out").exists()


def test_invalid_value_names_the_field_and_the_runs(tmp_path):
    path = sweep_file(tmp_path, {"grid": {"training.lr": [0.1, -1.0]}})
    with pytest.raises(SweepError) as error:
        load_sweep(path)
    text = str(error.value)
    assert "field 'grid.training.lr' in runs lr-1.0-" in text and "greater than 0" in text
    assert "lr0.1-" not in text  # the valid run is not blamed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_exits_2_with_one_message_for_a_ray_address_nobody_answers(tmp_path):
    pytest.importorskip("ray")
    path = sweep_file(tmp_path, {"grid": {"seed": [0]}})
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["sweep", str(path), "--backend", "ray", "--address",
                                      f"127.0.0.1:{free_port()}", "--out", str(tmp_path / "out")])
    assert time.perf_counter() - start < 30
    assert result.exit_code == 2 and "no Ray head answers there" in result.output
    assert "ray start --head" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_port_that_listens_but_is_no_ray_head_is_refused(monkeypatch):
    pytest.importorskip("ray")
    from lifelong.sweep import ray_backend

    monkeypatch.setattr(ray_backend, "PROBE_TIMEOUT_S", 1)
    with socket.socket() as silent:  # accepts connections (backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(SweepError, match="no Ray head answers there \\(timed out\\)"):
            make_backend("ray", address=f"127.0.0.1:{silent.getsockname()[1]}")
    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SweepError, match="it does not speak gRPC, so it is no Ray head"):
            make_backend("ray", address=f"127.0.0.1:{web.server_port}")
    finally:
        web.shutdown()


def test_cli_names_the_extra_when_ray_is_not_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(app, ["sweep", str(sweep_file(tmp_path, {"grid": {"seed": [0]}})),
                                      "--backend", "ray", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "pip install 'lifelong[ray]'" in result.output
    assert not (tmp_path / "out").exists()


def test_backend_settings_are_checked(tmp_path):
    with pytest.raises(SweepError, match="--address is for --backend ray"):
        make_backend("local", address="127.0.0.1:6379")
    with pytest.raises(SweepError, match="choose local"):
        make_backend("dask")
    with pytest.raises(SweepError, match="--jobs 0"):
        make_backend("local", jobs=0)
    with pytest.raises(SweepError, match="--jobs 2 is for --backend local"):
        make_backend("ray", jobs=2)
    with pytest.raises(SweepError, match="write it as host:port"):
        make_backend("ray", address="nohost")


def test_progress_counts_done_running_failed_in_plain_lines():
    out = io.StringIO()
    display = SweepProgress(total=5, skipped=1, slots=2, console=Console(file=out, force_terminal=False))
    display.finished(RunOutcome("a", "done", 2.0))
    display.finished(RunOutcome("b", "failed", 1.0, "NonFiniteLossError: loss is nan\nmore"))
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "1 of 5 runs already finished: skipped"
    assert lines[1].startswith("[2/5] a: done in 2.0s — 2 done, 2 running, 0 failed, ETA ")
    assert lines[2].startswith("[3/5] b: failed in 1.0s (NonFiniteLossError: loss is nan) — 2 done, 2 running, "
                               "1 failed, ETA ")


def test_only_the_ray_backend_imports_ray():
    code = ("import sys, lifelong.cli, lifelong.run, lifelong.sweep, lifelong.sweep.local; "
            "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.strip() == "False", result.stderr


def test_local_workers_share_the_cores_and_take_one_cuda_device_each(monkeypatch):
    import multiprocessing

    from lifelong.sweep.local import LocalBackend, _take_device

    cores = len(os.sched_getaffinity(0))
    pool = LocalBackend(jobs=2)
    pool.close()
    assert pool.threads == max(1, cores // 2) and LocalBackend(jobs=1).threads == cores
    counter = multiprocessing.get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(3):
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        _take_device(counter, cuda_devices=2)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["0", "1", "0"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    _take_device(counter, cuda_devices=1)  # one device: every worker keeps seeing it
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
