"""What can be checked before any training: the stream builds from its data, the model fits the
stream's inputs, every strategy sets up, the few-shot support sets exist, the output folders can be
written. `lifelong validate` runs all of it; `lifelong run` checks its folders before creating one,
and `lifelong report` the run folder it reads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from lifelong.config import ExperimentConfig
from lifelong.errors import ConfigError, FolderError, UserError
from lifelong.evaluation.fewshot import support_set
from lifelong.models import build_model
from lifelong.orchestrator import StrategyError
from lifelong.specfiles import read_yaml
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.registry import strategy_class
from lifelong.streams.builders import build_stream
from lifelong.streams.task import Stream


def check_experiment(config: ExperimentConfig) -> list[str]:
    """Every check that needs no training, in the order a run meets them; one line per check passed.
    Raises the user error of the first that fails."""
    stream = build_stream(config.stream)
    done = [f"stream {stream.name!r} builds: {len(stream)} tasks, inputs {tuple(stream.input_shape)}, "
            f"{stream.n_outputs} outputs", *check_stream_fits(config, stream)]
    if config.references.enabled:
        done.append(f"references: joint learner at tasks {config.references.joint_tasks(len(stream))}")
    check_folders(config)
    done.append(f"run folders can be written under {config.out}"
                + (f", the reference cache under {config.references.cache_dir}" if config.references.enabled else ""))
    return done


def check_folders(config: ExperimentConfig, out: Path | None = None) -> None:
    """The folders a run writes can be written: its run folder (`out`, else under config.out) and the
    reference cache when references are on."""
    if config.references.enabled:
        check_writable(Path(config.references.cache_dir), "references.cache_dir")
    check_writable(out or Path(config.out), "--out" if out else "out")


def check_stream_fits(config: ExperimentConfig, stream: Stream) -> list[str]:
    """The model builds for the stream's inputs, every strategy sets up on it, and the few-shot support
    sets can be drawn; `lifelong run` calls this before it creates the run folder."""
    model = build_model(config.model, stream.input_shape, stream.n_outputs)
    done = [f"model {config.model.type} builds for these inputs: "
            f"{sum(p.numel() for p in model.parameters()):,} parameters"]
    for index, entry in enumerate(config.strategies):
        ctx = StrategyContext(stream, config.model, config.training_for(entry), torch.device("cpu"),
                              config.seeds[0], config.evaluation)
        try:
            strategy_class(entry.name)(entry.params).setup(ctx)
        except UserError as error:  # the strategy refuses this stream or these settings; its message says why
            raise StrategyError(f"strategy {entry.display_name!r} (strategies.{index}): {error}") from error
        except Exception as error:  # the strategy's own code, as the orchestrator reports it when learning
            raise StrategyError(f"strategy {entry.display_name!r} failed while setting up: "
                                f"{type(error).__name__}: {error}") from error
    done.append(f"strategies set up: {', '.join(s.display_name for s in config.strategies)}")
    if config.evaluation.mode == "few-shot":
        for task in stream:
            support_set(task, config.evaluation.shots, config.seeds[0])
        done.append(f"few-shot support sets of {config.evaluation.shots} shots drawn for every task")
    if config.l2m:
        from lifelong.l2m import require_l2logger

        require_l2logger()
        done.append("l2m: the l2logger package is installed")
    return done


def check_writable(folder: Path, field: str) -> None:
    """Refuse, before any work, a folder that cannot be created or written: try it in the nearest
    existing folder above it (a temporary folder, removed at once), as the run would."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FolderError(f"{field} {folder}: {existing} is a file, not a folder; give {field} a folder "
                          "path (e.g. reports/my-run)")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lifelong-check-"))
    except OSError as error:
        raise FolderError(f"{field} {folder}: cannot write in {existing} ({error.strerror}); give {field} a "
                          "folder you can write (e.g. reports/my-run)") from None


def check_run_folder(path: Path) -> None:
    """A folder `lifelong report` can read: it exists, and its config.yaml, when there, is a mapping."""
    if not path.is_dir():
        raise FolderError(f"{path}: no such run folder; give a folder written by `lifelong run`")
    config = path / "config.yaml"
    if not config.exists():
        return
    fix = "restore it from the config you ran, or delete it to build the report without the config section"
    try:
        raw, _ = read_yaml(config)
    except ConfigError as error:
        raise FolderError(f"{error}; {fix}") from None
    if not isinstance(raw, dict):
        raise FolderError(f"{config}: holds {type(raw).__name__ if raw is not None else 'nothing'}, not the "
                          f"mapping of fields (name, stream, strategies, ...) that `lifelong run` writes; {fix}")
