"""The run folder's bookkeeping: the append-only record log, checkpoints that point into it, resume
that checks what it resumes, the folder lock, --force, and paths that stay inside the folder."""

import dataclasses
import json
import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from lifelong.callbacks import Callback
from lifelong.config import ConfigError, ExperimentConfig
from lifelong.evaluation.record import LifetimeRecord
from lifelong.record_log import LOG_NAME, RecordLog
from lifelong.report import ReportResult, write_report
from lifelong.run import RunInterrupted, new_run_folder, resume_experiment, run_experiment
from lifelong.run_folder import RunFolder, RunFolderError
from lifelong.strategies.joint import Joint
from tests.conftest import blob_stream, context
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)

STREAM = {"name": "tiny_split", "builder": "split", "dataset": "digits", "scenario": "class-il", "n_tasks": 3,
          "classes_per_task": 2}


def config(tmp_path, strategies=("naive",), **fields) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": "tiny", "stream": STREAM, "model": {"hidden": [16]}, "device": "cpu",
        "training": {"epochs": 1, "batch_size": 32, "lr": 0.05},
        "strategies": [{"name": s} for s in strategies],
        "references": {"enabled": False, "cache_dir": str(tmp_path / "cache")}, **fields})


@pytest.fixture
def no_report(monkeypatch):
    monkeypatch.setattr("lifelong.run.write_report", lambda folder: ReportResult([], []))


class StopAt(Callback):
    """Ctrl-C at a chosen moment: after task `task` of `strategy` ends, or right after it is evaluated
    (its row logged, its checkpoint not yet written)."""

    def __init__(self, strategy: str, task: int, hook: str = "on_task_end"):
        self.strategy, self.task, self.hook = strategy, task, hook

    def on_eval(self, after_task, record) -> None:
        if self.hook == "on_eval" and record.strategy == self.strategy and after_task == self.task + 1:
            raise KeyboardInterrupt

    def on_task_end(self, task, record, strategy) -> None:
        if self.hook == "on_task_end" and record.strategy == self.strategy and task.id == self.task:
            raise KeyboardInterrupt


def interrupted(cfg, out, stop: StopAt) -> RunInterrupted:
    with pytest.raises(RunInterrupted) as caught:
        run_experiment(cfg, out=out, callbacks=[stop], progress=False)
    return caught.value


def test_the_log_rebuilds_a_record_bit_for_bit_and_ignores_a_torn_last_line(tmp_path):
    rng = np.random.default_rng(0)
    record = LifetimeRecord("naive", 3, ["T1", "T2", "T3"], "classification", curves=np.full((4, 3, 3), np.nan))
    log = RecordLog(tmp_path / LOG_NAME)
    log.start(record)
    for row in (0, 1, 3):  # row 2 never evaluated (an evaluation schedule skipped it)
        record.scores[row], record.losses[row], record.curves[row] = rng.random(3), rng.random(3), rng.random((3, 3))
        log.row(record, row)
    for task in range(3):
        record.train_seconds[task], record.peak_memory_mb[task] = rng.random(), 100.5 + task
        record.train_stats.append({"train_loss": float(rng.random())})
        record.completed = task + 1
        end = log.task(record, task)
    torn = b'{"line": "row", "strategy": "naive", "seed": 3, "after_ta'  # killed mid-line
    with open(tmp_path / LOG_NAME, "ab") as handle:
        handle.write(torn)
    (back,) = log.read()
    assert end == len((tmp_path / LOG_NAME).read_bytes()) - len(torn)  # the pointer a checkpoint keeps
    assert back.completed == 3 and back.train_stats == record.train_stats
    for name in ("scores", "losses", "curves", "train_seconds", "peak_memory_mb"):
        assert np.array_equal(getattr(back, name), getattr(record, name), equal_nan=True), name
    assert np.isnan(back.scores[2]).all() and np.isnan(back.curves[2]).all()  # never evaluated: NaN cells
    assert back.to_frame().equals(record.to_frame())


def test_completed_is_kept_not_inferred_from_the_scores():
    record = LifetimeRecord("naive", 0, ["T1", "T2"], "classification", completed=2)  # no row evaluated
    assert LifetimeRecord.from_state(record.to_state()).completed == 2


def test_each_evaluation_appends_its_row_and_checkpoints_hold_no_record(tmp_path, monkeypatch, no_report):
    writes = []
    monkeypatch.setattr(RunFolder, "write_records", lambda self, records: writes.append(len(records)))
    run_experiment(config(tmp_path, strategies=("naive", "ewc")), out=tmp_path / "run", progress=False)
    assert writes == [2]  # the tables are written once, at the end, not after every evaluation
    lines = [yaml.safe_load(line)["line"] for line in (tmp_path / "run" / LOG_NAME).read_text().splitlines()]
    assert lines.count("record") == 2 and lines.count("row") == 2 * 4 and lines.count("task") == 2 * 3
    state = torch.load(tmp_path / "run/checkpoints/ewc-seed0.pt", weights_only=True)
    assert set(state) == {"strategy", "completed", "log_offset", "config_sha256"} and state["completed"] == 3
    assert state["log_offset"] == (tmp_path / "run" / LOG_NAME).stat().st_size
    assert (tmp_path / "run/checkpoints/ewc-seed0.prev.pt").is_file()


def test_rows_logged_after_the_last_checkpoint_are_cut_and_done_again(tmp_path, no_report):
    cfg = config(tmp_path, strategies=("naive", "ewc"), seeds=[0, 1])
    run_experiment(cfg, out=tmp_path / "whole", progress=False)
    stop = interrupted(cfg, tmp_path / "cut", StopAt("ewc", 1, hook="on_eval"))  # seed 0's ewc, task 2's row logged
    assert "strategy 'ewc' seed 0, in task 2 of 3 (task 1 saved); strategy x seed 2 of 4" in stop.where
    with open(tmp_path / "cut" / LOG_NAME, "ab") as handle:
        handle.write(b'{"line": "ta')  # and a torn line, as a kill mid-write leaves
    resume_experiment(tmp_path / "cut", progress=False)
    assert (tmp_path / "cut/record.csv").read_text() == (tmp_path / "whole/record.csv").read_text()
    rows = [[_unmeasured(line) for line in (tmp_path / name / LOG_NAME).read_text().splitlines()
             if '"line": "row"' in line] for name in ("cut", "whole")]
    assert rows[0] == rows[1]  # the cut row was logged once more, not twice


def _unmeasured(line: str) -> dict:
    """A row line without its evaluation's measured time and energy (counted FLOPs stay)."""
    row = json.loads(line)
    row["cost"] = {k: v for k, v in row["cost"].items() if k == "eval_flops"}
    return row


def test_report_on_a_stopped_run_writes_the_record_from_the_log(tmp_path):
    cfg = config(tmp_path, strategies=("naive", "ewc"))
    interrupted(cfg, tmp_path / "cut", StopAt("ewc", 0))
    for table in ("record.csv", "record.parquet", "timings.csv"):
        (tmp_path / "cut" / table).unlink()  # as a killed run leaves it: the record log only
    write_report(tmp_path / "cut")
    frame = __import__("pandas").read_csv(tmp_path / "cut/record.csv")
    ewc = frame[frame.strategy == "ewc"]
    assert len(frame) == 2 * 4 * 3 and ewc[ewc.after_task <= 1].score.notna().all()
    assert ewc[ewc.after_task >= 2].score.isna().all()  # not reached: NaN, never 0


def test_resume_refuses_an_edited_config_and_names_what_changed(tmp_path, no_report):
    interrupted(config(tmp_path, strategies=("naive",)), tmp_path / "cut", StopAt("naive", 0))
    path = tmp_path / "cut/config.yaml"
    original = path.read_text()
    edited = yaml.safe_load(original)
    edited["training"]["lr"] = 0.1
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(RunFolderError, match=r"was edited since the run started(.|\n)*training\.lr: 0\.05 -> 0\.1"):
        resume_experiment(tmp_path / "cut", progress=False)
    edited["training"]["epochs"] = -3
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(ConfigError, match=r"config\.yaml(.|\n)*training\.epochs"):
        resume_experiment(tmp_path / "cut", progress=False)
    path.write_text("name: tiny\nstream: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        resume_experiment(tmp_path / "cut", progress=False)
    path.write_text(original)
    assert resume_experiment(tmp_path / "cut", progress=False).records[0].completed == 3


def test_a_damaged_checkpoint_falls_back_to_the_one_before_it(tmp_path, no_report):
    cfg = config(tmp_path, strategies=("naive", "ewc"))
    run_experiment(cfg, out=tmp_path / "whole", progress=False)
    interrupted(cfg, tmp_path / "cut", StopAt("ewc", 1))
    checkpoint = tmp_path / "cut/checkpoints/ewc-seed0.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated
    notes = []
    resume_experiment(tmp_path / "cut", progress=False, note=notes.append)
    assert "ewc-seed0.pt is damaged" in notes[0] and "ewc-seed0.prev.pt (after task 1)" in notes[0]
    assert (tmp_path / "cut/record.csv").read_text() == (tmp_path / "whole/record.csv").read_text()


def test_a_damaged_checkpoint_without_an_earlier_one_is_refused_clearly(tmp_path, no_report):
    interrupted(config(tmp_path), tmp_path / "cut", StopAt("naive", 0))
    (tmp_path / "cut/checkpoints/naive-seed0.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(RunFolderError, match="naive-seed0.pt is damaged.*delete it to train 'naive' seed 0 again"):
        resume_experiment(tmp_path / "cut", progress=False)


def test_a_folder_changed_by_hand_is_refused_and_its_log_kept(tmp_path, no_report):
    interrupted(config(tmp_path, strategies=("naive", "ewc")), tmp_path / "cut", StopAt("ewc", 0))
    (tmp_path / "cut/checkpoints/naive-seed0.pt").unlink()
    (tmp_path / "cut/checkpoints/naive-seed0.prev.pt").unlink()
    log = (tmp_path / "cut" / LOG_NAME).read_bytes()
    with pytest.raises(RunFolderError, match="'naive' seed 0 has 0 tasks checkpointed but 3 in record.rows.jsonl"):
        resume_experiment(tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / LOG_NAME).read_bytes() == log


def test_out_must_be_new_or_empty_unless_forced(tmp_path, no_report):
    cfg = config(tmp_path)
    run_experiment(cfg, out=tmp_path / "run", progress=False)
    (tmp_path / "run/stale.txt").write_text("from before")
    with pytest.raises(RunFolderError, match=r"is not empty; pass --force .* `lifelong resume .*run`"):
        run_experiment(cfg, out=tmp_path / "run", progress=False)
    run_experiment(cfg, out=tmp_path / "run", force=True, progress=False)
    assert not (tmp_path / "run/stale.txt").exists() and (tmp_path / "run/record.csv").is_file()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/cat.jpg").write_text("meow")
    with pytest.raises(RunFolderError, match="not a run folder"):
        run_experiment(cfg, out=tmp_path / "photos", force=True, progress=False)
    assert (tmp_path / "photos/cat.jpg").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a run folder"):
        run_experiment(cfg, out=tmp_path / "file", progress=False)
    with pytest.raises(RunFolderError, match="cannot make the run folder .*file/run"):
        run_experiment(cfg, out=tmp_path / "file/run", progress=False)


def test_a_second_run_or_resume_on_a_held_folder_fails_at_once(tmp_path):
    held = RunFolder(tmp_path / "run")
    with held.locked():
        other = threading.Thread(target=lambda: errors.append(_try_lock(tmp_path / "run")))
        errors = []
        other.start()
        other.join(timeout=5)
        assert "is in use by another `lifelong run` or `lifelong resume`" in errors[0]
        with pytest.raises(RunFolderError, match="in use"):
            run_experiment(config(tmp_path), out=tmp_path / "run", progress=False)
    with RunFolder(tmp_path / "run").locked():  # released after the first
        pass


def _try_lock(path) -> str:
    try:
        with RunFolder(path).locked():
            return "acquired"
    except RunFolderError as error:
        return str(error)


def test_default_run_folders_are_never_reused(tmp_path, monkeypatch):
    monkeypatch.setattr("lifelong.run.time.strftime", lambda fmt: "20260101-000000")
    cfg = SimpleNamespace(out=str(tmp_path / "reports"), name="exp")
    (tmp_path / "reports/exp-20260101-000000").mkdir(parents=True)  # empty, made by someone else
    first, second = new_run_folder(cfg, None), new_run_folder(cfg, None)
    assert first.path.name == "exp-20260101-000000-2" and second.path.name == "exp-20260101-000000-3"


def test_file_names_from_labels_and_names_stay_inside_the_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    for name in ("../x", "/etc/passwd", "checkpoints/../../x"):
        with pytest.raises(RunFolderError, match="would write outside"):
            folder.file(name)
    for label in ("../../x", "a/b", "..", ".hidden", ""):
        with pytest.raises(RunFolderError, match="strategy label"):
            folder.checkpoint_path(label, 0)
    with pytest.raises(RunFolderError, match="config name '../../N'"):
        new_run_folder(SimpleNamespace(out=str(tmp_path / "reports"), name="../../N"), None)
    os.symlink(tmp_path, tmp_path / "run/out")
    with pytest.raises(RunFolderError, match="would write outside"):
        folder.file("out/x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_run_whose_stream_cannot_be_built_leaves_no_folder(tmp_path):
    cfg = config(tmp_path)
    cfg.stream.data_root = str(tmp_path / "nowhere")
    cfg.stream.dataset = "fashion_mnist"
    with pytest.raises(Exception, match="nowhere"):
        run_experiment(cfg, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_failing_before_its_first_task_leaves_no_folder_and_one_failing_in_it_leaves_error_txt(
        tmp_path, monkeypatch):
    def broken(self, *args):
        raise RuntimeError("strategy broke")
    monkeypatch.setattr("lifelong.strategies.naive.Naive.setup", broken)
    with pytest.raises(RuntimeError):
        run_experiment(config(tmp_path), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # the preflight sets every strategy up before the folder is made
    monkeypatch.undo()
    monkeypatch.setattr("lifelong.strategies.naive.Naive.learn", broken)
    with pytest.raises(Exception):
        run_experiment(config(tmp_path), out=tmp_path / "run", progress=False)
    assert "strategy broke" in (tmp_path / "run/error.txt").read_text()


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
@pytest.mark.parametrize("device", ["meta", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_joint_resumes_with_its_past_tasks_on_the_run_device(device):
    """Joint keeps the tasks it saw; after a resume they must sit where `learn` gets the new ones (the
    meta device stands in for a GPU where there is none: it shows where tensors are, not their values)."""
    stream = blob_stream()
    first = Joint()
    first.setup(context(stream))
    first.learn(stream.tasks[0])
    resumed = Joint()
    resumed.setup(dataclasses.replace(context(stream), device=torch.device(device)))
    resumed.load_state_dict(first.state_dict())
    assert [t.x_train.device.type for t in resumed.seen] == [device]
    if device == "cuda":
        assert resumed.learn(stream.tasks[1].to(device))["train_loss"] >= 0


def test_the_tables_written_block_by_block_equal_the_whole_long_form(tmp_path, monkeypatch):
    """record.csv and record.parquet are written a few rows of R at a time (a T = 1,000 record is a
    million rows); the files hold exactly the long form of every record, in order."""
    import pandas as pd

    monkeypatch.setattr("lifelong.run_folder.RECORD_BLOCK_ROWS", 7)  # 2 rows of R per block with T = 3
    rng = np.random.default_rng(0)
    records = [LifetimeRecord(label, seed, ["T1", "T2 (a/b)", "T3"], "classification", rng.random((4, 3)),
                              rng.random((4, 3)), np.zeros(3), np.zeros(3)) for label, seed in (("a", 0), ("b", 1))]
    records[1].scores[2, 1] = np.nan  # a cell a schedule skipped stays empty
    folder = RunFolder(tmp_path / "run")
    folder.write_records(records)
    whole = pd.concat([r.to_frame() for r in records], ignore_index=True)
    assert (tmp_path / "run/record.csv").read_text() == whole.to_csv(index=False)
    assert len(whole) == 2 * 4 * 3
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run/record.parquet"), whole)
