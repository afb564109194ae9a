"""Killed and interrupted runs, resumed through the CLI, for every kind of strategy: the resumed run
trains only the tasks after its checkpoints and ends with the record of an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

BASELINES = """
name: resume_baselines
stream: {name: split3, builder: split, dataset: digits, scenario: class-il, n_tasks: 3, classes_per_task: 2}
model: {hidden: [32]}
training: {epochs: 4, batch_size: 32, lr: 0.05}
strategies:
  - {name: naive}
  - {name: ewc, params: {lambda: 10}}
  - {name: replay, params: {buffer_size: 60}}
  - {name: joint}
seeds: [0]
threads: 1
references: {enabled: false}
"""

META = """
name: resume_meta
stream: {name: fewshot3, builder: nway, dataset: digits, n_tasks: 3, ways: 2, train_per_class: 40,
         test_per_class: 20, eval_episodes: 3}
model: {hidden: [32]}
training: {epochs: 1, batch_size: 32, lr: 0.05}
evaluation: {mode: few-shot, shots: 5, steps: 2, inner_lr: 0.1}
strategies:
  - {name: maml, params: {inner_lr: 0.1, inner_steps: 1, meta_batch: 2, meta_lr: 0.003, meta_steps: 40, shots: 5,
                          queries: 5}}
  - {name: protomem, params: {meta_train: true, episodes: 40, shots: 5, queries: 5, lr: 0.003}}
seeds: [0]
threads: 1
references: {enabled: false}
"""

CONFIGS = {"baselines": (BASELINES, 5), "meta": (META, 4)}  # config, task_end events before the stop


def lifelong(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "lifelong.cli", *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def finished(*args) -> subprocess.CompletedProcess:
    process = lifelong(*args)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def task_ends(folder: Path) -> int:
    events = folder / "events.jsonl"
    return events.read_text().count('"event": "task_end"') if events.is_file() else 0


def stopped(config: Path, out: Path, after: int, sig: int) -> subprocess.CompletedProcess:
    """Start a run and send `sig` once `after` tasks have ended."""
    process = lifelong("run", config, "--out", out)
    deadline = time.monotonic() + 300
    while task_ends(out) < after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(sig)
    out_text, err_text = process.communicate(timeout=120)
    assert not (out / "report.html").exists(), "the run finished before it was stopped; make it longer"
    return subprocess.CompletedProcess([], process.returncode, out_text, err_text)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """Each config run once without a stop: the record a resumed run must equal."""
    root = tmp_path_factory.mktemp("whole")
    for name, (text, _) in CONFIGS.items():
        (root / f"{name}.yaml").write_text(text)
        finished("run", root / f"{name}.yaml", "--out", root / name)
    return root


def checkpointed(folder: Path) -> dict[str, int]:
    return {path.name.removesuffix("-seed0.pt"): torch.load(path, weights_only=True)["completed"]
            for path in (folder / "checkpoints").glob("*-seed0.pt")}


def trained_on_resume(folder: Path, events_before: int) -> tuple[dict, dict]:
    """Per strategy: the task it resumed after, and how many tasks it trained, from the new events."""
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()[events_before:]]
    resumed = {e["strategy"]: e["resumed_after"] for e in events if e["event"] == "run_start"}
    learned = {name: sum(e["event"] == "task_end" and e["strategy"] == name for e in events) for name in resumed}
    return resumed, learned


@pytest.mark.parametrize("name", CONFIGS)
def test_a_killed_run_resumes_training_only_what_its_checkpoints_lack(tmp_path, whole, name):
    text, after = CONFIGS[name]
    (tmp_path / "config.yaml").write_text(text)
    out = tmp_path / "run"
    killed = stopped(tmp_path / "config.yaml", out, after, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    saved = checkpointed(out)
    assert 0 < sum(saved.values()) < 3 * text.count("- {name:")  # stopped in the middle
    before = len((out / "events.jsonl").read_text().splitlines())

    finished("resume", out)
    resumed, learned = trained_on_resume(out, before)
    strategies = list(resumed)
    assert all(resumed[s] == saved.get(s, 0) for s in strategies), (resumed, saved)
    assert learned == {s: 3 - resumed[s] for s in strategies}  # one `learn` per task not checkpointed
    assert (out / "record.csv").read_text() == (whole / name / "record.csv").read_text()
    if name == "meta":
        assert (out / "curves.csv").read_text() == (whole / name / "curves.csv").read_text()


def test_ctrl_c_saves_says_where_and_how_to_go_on(tmp_path, whole):
    (tmp_path / "config.yaml").write_text(BASELINES)
    out = tmp_path / "run"
    stop = stopped(tmp_path / "config.yaml", out, 5, signal.SIGINT)
    assert stop.returncode == 130, stop.stderr[-3000:]
    assert "Traceback" not in stop.stderr
    assert f"go on with:  lifelong resume {out}" in stop.stderr
    where = stop.stderr.split("interrupted: ")[1].splitlines()[0]
    strategy, task = where.split("'")[1], int(where.split("in task ")[1].split()[0])
    assert checkpointed(out)[strategy] == task - 1  # the tasks before the one stopped are saved
    leftovers = [p.name for p in out.rglob(".*") if p.name != ".lock"]
    assert leftovers == []  # no half-written temp file

    finished("resume", out)
    assert (out / "record.csv").read_text() == (whole / "baselines/record.csv").read_text()


def test_resume_of_an_edited_config_is_refused_naming_the_change(tmp_path, whole):
    out = tmp_path / "run"
    subprocess.run(["cp", "-r", str(whole / "baselines"), str(out)], check=True)
    config = out / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.05", "lr: 0.07"))
    refused = lifelong("resume", out)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "training.lr: 0.05 -> 0.07" in err and "Traceback" not in err


def test_run_into_a_used_folder_is_refused_unless_forced(tmp_path, whole):
    out = tmp_path / "run"
    subprocess.run(["cp", "-r", str(whole / "baselines"), str(out)], check=True)
    refused = lifelong("run", whole / "baselines.yaml", "--out", out)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "--force" in err and f"lifelong resume {out}" in " ".join(err.split())
    file = tmp_path / "file"
    file.write_text("x")
    at_file = lifelong("run", whole / "baselines.yaml", "--out", file)
    _, err = at_file.communicate(timeout=120)
    assert at_file.returncode == 2 and "is a file" in err and "Traceback" not in err
    finished("run", whole / "baselines.yaml", "strategies=[{name: naive}]", "--out", out, "--force")
    assert sorted(__import__("pandas").read_csv(out / "record.csv").strategy.unique()) == ["naive"]
