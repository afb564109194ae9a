"""`lifelong run | resume | validate | list`: a thin shell over lifelong.run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from lifelong.config import ConfigError, load_config, load_stream_spec, stream_files
from lifelong.report.summary import METRIC_COLUMNS
from lifelong.run import RunResult, resume_experiment, run_experiment
from lifelong.strategies.registry import available
from lifelong.streams.sources import DataError
from lifelong.training import NonFiniteLossError
from lifelong.orchestrator import StrategyError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
errors = Console(stderr=True)

# What a user can fix gets one clear message and exit code 2; anything else is a bug: traceback.
USER_ERRORS = (ConfigError, DataError, NonFiniteLossError, StrategyError, FileNotFoundError, ValueError)


def _fail(error: Exception) -> None:
    errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
    raise typer.Exit(2)


@app.command()
def run(config: Path = typer.Argument(..., help="experiment config (YAML)"),
        overrides: Optional[list[str]] = typer.Argument(None, help="key.sub=value, e.g. training.lr=0.05"),
        seed: Optional[int] = typer.Option(None, help="run this seed only (overrides `seeds:`)"),
        device: Optional[str] = typer.Option(None, help="auto | cpu | cuda"),
        out: Optional[Path] = typer.Option(None, help="run folder (default: reports/<name>-<time>)")):
    """Play the config's stream through its strategies; write the run folder."""
    extra = list(overrides or [])
    if seed is not None:
        extra.append(f"seeds=[{seed}]")
    if device is not None:
        extra.append(f"device={device}")
    try:
        result = run_experiment(load_config(config, extra), out=out)
    except USER_ERRORS as error:
        _fail(error)
    _print_result(result)


@app.command()
def resume(run_dir: Path = typer.Argument(..., help="folder of an interrupted run")):
    """Go on with an interrupted run from its last completed task."""
    try:
        result = resume_experiment(run_dir)
    except USER_ERRORS as error:
        _fail(error)
    _print_result(result)


@app.command()
def validate(config: Path, overrides: Optional[list[str]] = typer.Argument(None)):
    """Check a config (and its stream and strategy settings) without running it."""
    try:
        parsed = load_config(config, list(overrides or []))
    except ConfigError as error:
        _fail(error)
    names = ", ".join(s.display_name for s in parsed.strategies)
    console.print(f"{config}: ok — stream {parsed.stream.name!r} ({parsed.stream.builder}, "
                  f"{parsed.stream.n_tasks} tasks), strategies: {names}, seeds {parsed.seeds}", highlight=False)


@app.command("list")
def list_(what: str = typer.Argument(..., help="strategies | streams")):
    """List registered strategies or shipped stream specs."""
    if what == "strategies":
        for name, target in sorted(available().items()):
            console.print(f"{name:14s} {target}", highlight=False)
    elif what == "streams":
        for name, path in stream_files().items():
            try:
                spec = load_stream_spec(path)
                console.print(f"{name:24s} {spec.builder:9s} {spec.scenario:9s} {spec.n_tasks:3d} tasks", highlight=False)
            except ConfigError as error:
                console.print(f"{name:24s} INVALID: {error}", highlight=False)
    else:
        _fail(ValueError(f"cannot list {what!r}; choose strategies or streams"))


def _print_result(result: RunResult) -> None:
    table = Table(title=f"{result.metrics['score']} — mean over seeds")
    table.add_column("strategy")
    for name in METRIC_COLUMNS:
        table.add_column(name, justify="right")
    for label, metrics in result.metrics["summary"].items():
        table.add_row(label, *(f"{metrics[name]['mean']:.4f}" for name in METRIC_COLUMNS))
    console.print(table)
    console.print(f"record:  {result.folder / 'record.csv'}", highlight=False)
    console.print(f"report:  {result.folder / 'summary.md'}", highlight=False)
