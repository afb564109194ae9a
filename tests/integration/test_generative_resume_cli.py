"""hnet and generative_replay through the CLI: a run killed after its first task resumes from the
checkpoint and ends with the record of an uninterrupted run, byte for byte."""

import signal

import pytest

from tests.integration.test_resume_cli import checkpointed, finished, stopped

pytestmark = pytest.mark.slow

COMMON = """
model: {hidden: [32]}
seeds: [0]
threads: 1
references: {enabled: false}
"""
CONFIGS = {
    "hnet": """
name: resume_hnet
stream: {name: split4, builder: split, dataset: digits, scenario: task-il, n_tasks: 4, classes_per_task: 2}
training: {epochs: 6, batch_size: 32}
strategies: [{name: "lifelong.strategies.hnet:HNet", label: hnet, params: {chunk_size: 1024, lr: 0.003}}]
""",
    "generative_replay": """
name: resume_dgr
stream: {name: split4, builder: split, dataset: digits, scenario: class-il, n_tasks: 4, classes_per_task: 2}
training: {epochs: 6, batch_size: 32, lr: 0.05}
strategies: [{name: "lifelong.strategies.generative_replay:GenerativeReplay", label: dgr}]
""",
}


@pytest.mark.parametrize("name", CONFIGS)
def test_a_killed_run_resumes_to_the_uninterrupted_record(tmp_path, name):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIGS[name] + COMMON)
    finished("run", config, "--out", tmp_path / "whole")
    out = tmp_path / "run"
    killed = stopped(config, out, 1, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert 1 <= sum(checkpointed(out).values()) < 4
    finished("resume", out)
    assert (out / "record.csv").read_text() == (tmp_path / "whole" / "record.csv").read_text()
