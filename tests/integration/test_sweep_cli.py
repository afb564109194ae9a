"""End to end: `lifelong sweep` on the local process pool and on a Ray head started by the test, reading
back the sweep folder; a restart skips finished runs and resumes an interrupted one."""

import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from lifelong.callbacks import Callback
from lifelong.cli import app
from lifelong.run import run_experiment
from lifelong.sweep import load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs/sweeps/quick.yaml"
pytestmark = pytest.mark.slow


def lifelong(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "lifelong.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def index(folder: Path) -> list[dict]:
    with (folder / "index.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """configs/sweeps/quick.yaml (naive and replay x seeds 0, 1) with two worker processes."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    result = lifelong("sweep", QUICK, "--jobs", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_local_pool_writes_a_run_folder_per_run_an_index_and_the_compare_view(local_sweep):
    out, result = local_sweep
    rows = index(out)
    assert [(r["strategy"], r["seed"], r["status"], r["action"]) for r in rows] == [
        ("naive", "0", "done", "run"), ("naive", "1", "done", "run"),
        ("replay", "0", "done", "run"), ("replay", "1", "done", "run")]
    for row in rows:
        record = pd.read_csv(Path(row["folder"]) / "record.csv")
        assert set(record["strategy"]) == {row["strategy"]} and set(record["seed"]) == {int(row["seed"])}
        assert len(record) == 4 * 3 and record["score"].notna().all()  # (T+1) rows x T tasks, T = 3
        assert Path(row["folder"]).parent == out / "runs" and float(row["seconds"]) > 0
        environment = json.loads((Path(row["folder"]) / "environment.json").read_text())
        assert environment["torch_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # cores / jobs
    compare = pd.read_csv(out / "compare/compare.csv")
    # the two seeds of a strategy differ in nothing else: one row each, their seeds pooled
    pooled = {f"{r['run_id']} (+1 runs, seeds pooled)" for r in rows if r["seed"] == "0"}
    assert set(compare["run"]) == pooled and set(compare["strategy"]) == {"naive", "replay"}
    assert set(compare[compare["metric"] == "acc"]["n"]) == {2}
    assert f"index:   {out / 'index.csv'}" in result.stdout
    assert "[4/4]" in result.stderr and "4 done, 0 running, 0 failed" in result.stderr  # plain progress lines


def test_starting_the_sweep_again_skips_finished_runs(local_sweep):
    out, _ = local_sweep
    records = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("runs/*/record.csv")}
    again = lifelong("sweep", QUICK, "--jobs", 2, "--out", out)
    assert again.returncode == 0, again.stderr
    assert "4 of 4 runs already finished: skipped" in again.stderr
    rows = index(out)
    assert {(r["status"], r["action"]) for r in rows} == {("done", "skip")}
    assert all(float(r["seconds"]) > 0 for r in rows)  # kept from the start that ran them
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("runs/*/record.csv")} == records


class StopAfterFirstTask(Callback):
    def on_task_end(self, task, record, strategy) -> None:
        raise RuntimeError("stopped by the test")


def test_an_interrupted_run_is_resumed_and_ends_with_the_same_record(local_sweep, tmp_path):
    quick = yaml.safe_load(QUICK.read_text())
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"base": str((QUICK.parent / quick["base"]).resolve()), "set": quick["set"],
                                    "list": [{"strategy": "replay", "seed": 1}]}, sort_keys=False))
    run = load_sweep(path, tmp_path / "sweep").runs[0]
    folder = tmp_path / "sweep/runs" / run.run_id
    with pytest.raises(RuntimeError, match="stopped by the test"):
        run_experiment(run.config, out=folder, callbacks=[StopAfterFirstTask()], progress=False)
    assert not (folder / "metrics.json").exists()
    result = run_sweep(path, out=tmp_path / "sweep", progress=False)
    (entry,) = result.index.entries
    assert (entry.action, entry.status) == ("resume", "done")
    same_run = local_sweep[0] / "runs" / run.run_id  # same parameters, base and settings: same id
    assert (folder / "record.csv").read_bytes() == (same_run / "record.csv").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_ray_auth() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on a free port with token authentication (Ray's default), and the environment a driver
    needs to join it. Stopped at teardown by signalling the process the fixture started (`ray stop` would
    stop every Ray process of the user on the machine)."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'lifelong[ray]')")
    port = free_port()
    env = {**without_ray_auth(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    temp_dir = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit in 107 characters
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp_dir}", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start in 60 s"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGINT)  # `ray start --block` stops its Ray processes on SIGINT (about 2 s)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def test_ray_cluster_gives_the_same_records_as_the_local_pool(ray_head, local_sweep, tmp_path):
    address, env = ray_head
    out = tmp_path / "sweep"
    result = lifelong("sweep", QUICK, "--backend", "ray", "--address", address, "--out", out, env=env)
    assert result.returncode == 0, result.stderr
    rows, local_rows = index(out), index(local_sweep[0])
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in local_rows]
    assert {r["status"] for r in rows} == {"done"}
    for row in rows:
        ray_record = (Path(row["folder"]) / "record.csv").read_bytes()
        assert ray_record == (local_sweep[0] / "runs" / row["run_id"] / "record.csv").read_bytes()


def test_a_head_that_refuses_the_driver_is_a_clear_error_within_30_s(ray_head, tmp_path):
    address, _ = ray_head
    started = time.perf_counter()
    result = lifelong("sweep", QUICK, "--backend", "ray", "--address", address, "--out", tmp_path / "sweep",
                      env=without_ray_auth())  # the head wants a token this driver does not send
    assert time.perf_counter() - started < 30 + 10  # + the CLI's own start-up on a loaded machine
    assert result.returncode == 2 and "did not accept this driver" in result.stderr
    assert "RAY_AUTH_MODE=token" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path):
    quick = yaml.safe_load(QUICK.read_text())
    path = tmp_path / "partly.yaml"
    missing = {"name": "f", "builder": "split", "dataset": "fashion_mnist", "n_tasks": 2,
               "data_root": str(tmp_path / "nowhere")}
    runs = [{"strategy": "naive", "seed": 0}, {"strategy": "naive", "stream": missing}]
    path.write_text(yaml.safe_dump({"base": str((QUICK.parent / quick["base"]).resolve()), "set": quick["set"],
                                    "list": runs}, sort_keys=False))
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 1 and "1 of 2 runs failed (naive-f-" in result.output
    done, failed = index(tmp_path / "sweep")
    assert (done["status"], failed["status"]) == ("done", "failed") and "DataError" in failed["error"]
    assert (Path(failed["folder"]) / "error.txt").is_file() and (tmp_path / "sweep/compare/compare.csv").is_file()


def _states() -> dict[int, tuple[int, str]]:
    """Every process's (parent pid, state letter), from Linux /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return found


def _live_children(pid: int) -> set[int]:
    return {child for child, (parent, state) in _states().items() if parent == pid and state != "Z"}


def _alive(pids: set[int]) -> set[int]:
    states = _states()
    return {pid for pid in pids if pid in states and states[pid][1] != "Z"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers end with the driver through prctl")
def test_workers_end_when_the_driver_is_killed(tmp_path):
    """A driver killed with SIGKILL must not leave its workers playing queued runs into untracked folders."""
    driver = subprocess.Popen([sys.executable, "-m", "lifelong.cli", "sweep", QUICK, "--jobs", "2", "--out",
                               tmp_path / "sweep"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = _live_children(driver.pid) - {driver.pid}
        assert len(workers) >= 2, "the pool's workers never started"
        time.sleep(2)  # let them import and take runs
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 30
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(workers), f"workers {sorted(_alive(workers))} outlived the killed driver"


def test_a_killed_worker_fails_its_runs_clearly_and_the_next_start_finishes_them(tmp_path):
    out = tmp_path / "sweep"
    driver = subprocess.Popen([sys.executable, "-m", "lifelong.cli", "sweep", QUICK, "--jobs", "2", "--out", out],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    workers = set()
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = _live_children(driver.pid)
    os.kill(max(workers), signal.SIGKILL)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 1, output
    failed = [row for row in index(out) if row["status"] == "failed"]
    assert failed and all("worker process of the pool died" in row["error"] for row in failed), output
    again = lifelong("sweep", QUICK, "--jobs", 2, "--out", out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {row["status"] for row in index(out)} == {"done"}
