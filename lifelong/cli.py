"""`lifelong run | resume | report | compare | sweep | validate | list`: a thin shell over lifelong.run and
lifelong.report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lifelong.config import ConfigError, load_config, load_stream_spec, parse_seeds, stream_files
from lifelong.report import write_report
from lifelong.report.compare import compare_runs
from lifelong.report.glossary import GROUPS
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
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def run(config: Path = typer.Argument(..., help="experiment config (YAML)"),
        overrides: Optional[list[str]] = typer.Argument(None, help="key.sub=value, e.g. training.lr=0.05"),
        seed: Optional[int] = typer.Option(None, help="run this seed only (overrides `seeds:`)"),
        seeds: Optional[str] = typer.Option(None, help="run these seeds: a range 0-4, a list 0,2,5, or both"),
        device: Optional[str] = typer.Option(None, help="auto | cpu | cuda"),
        out: Optional[Path] = typer.Option(None, help="run folder (default: reports/<name>-<time>)"),
        references: bool = typer.Option(True, help="train (or reuse from the cache) the independent and joint "
                                                   "references for negative transfer and intransigence"),
        tensorboard: bool = typer.Option(False, help="also log to <run folder>/tensorboard (needs the extra)")):
    """Play the config's stream through its strategies over every seed; write the run folder and report."""
    extra = list(overrides or [])
    try:
        if seed is not None or seeds is not None:
            extra.append(f"seeds={[seed] if seeds is None else parse_seeds(seeds)}")
        if device is not None:
            extra.append(f"device={device}")
        if not references:
            extra.append("references.enabled=false")
        if tensorboard:
            extra.append("tensorboard=true")
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
def report(run_dir: Path = typer.Argument(..., help="run folder written by `lifelong run`"),
           out: Optional[Path] = typer.Option(None, help="where to write report.html and report.md "
                                                         "(default: the run folder)")):
    """Rebuild report.html and report.md from a run folder's files alone."""
    try:
        result = write_report(run_dir, out)
    except USER_ERRORS as error:
        _fail(error)
    _print_written(result, "report: ")


@app.command()
def compare(run_dirs: list[Path] = typer.Argument(..., help="run folders to put side by side"),
            out: Optional[Path] = typer.Option(None, help="folder for compare.csv/.md/.html "
                                                          "(default: reports/compare-<time>)")):
    """Strategies side by side across runs, grouped by stream: mean ± 95% CI, best per metric in bold."""
    try:
        result = compare_runs(run_dirs, out)
    except USER_ERRORS as error:
        _fail(error)
    _print_written(result, "compare:")


@app.command()
def sweep(sweep_file: Path = typer.Argument(..., help="sweep file (YAML): base config plus grid: or list:"),
          backend: str = typer.Option("local", help="local (a process pool on this machine) | ray"),
          jobs: int = typer.Option(1, help="local backend: runs at once (each gets cores/jobs torch threads)"),
          address: Optional[str] = typer.Option(None, help="ray backend: an existing cluster, host:port (or "
                                                           "ray://host:port); default: start a local Ray"),
          cpus_per_run: int = typer.Option(1, help="ray backend: CPUs (and torch threads) per run"),
          out: Optional[Path] = typer.Option(None, help="sweep folder (default: <out>/<name> of the sweep "
                                                        "file); starting it again skips finished runs")):
    """Run every run of a sweep (grid or list over strategies, streams, seeds and key=value parameters)."""
    from lifelong.sweep import SweepError, run_sweep  # the sweep backends load only for this command

    try:
        result = run_sweep(sweep_file, backend=backend, jobs=jobs, address=address, cpus_per_run=cpus_per_run,
                           out=out)
    except (SweepError, *USER_ERRORS) as error:
        _fail(error)
    console.print(f"index:   {result.folder / 'index.csv'}", highlight=False, soft_wrap=True)
    for path in result.compare:
        console.print(f"compare: {path}", highlight=False, soft_wrap=True)
    if result.failed:
        errors.print(f"[bold red]error:[/] {len(result.failed)} of {len(result.index.entries)} runs failed "
                     f"({', '.join(result.failed)}); each run folder's error.txt says why; after a fix, start "
                     "the same sweep again to run only those", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _print_written(result, label: str) -> None:
    """Notes (what was missing or unusual) on stderr, then the files written."""
    for note in result.notes:
        errors.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    for path in result.written:
        console.print(f"{label} {path}", highlight=False, soft_wrap=True)


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
                console.print(f"{name:24s} {spec.builder:15s} {spec.scenario:9s} {spec.n_tasks:5d} tasks", highlight=False)
            except ConfigError as error:
                console.print(f"{name:24s} INVALID: {error}", highlight=False)
    else:
        _fail(ValueError(f"cannot list {what!r}; choose strategies or streams"))


def _print_result(result: RunResult) -> None:
    table = Table(title=f"{result.metrics['score']} — mean over seeds")
    table.add_column("strategy")
    columns = GROUPS["Core metrics"] + (("ntg_learn",) if result.references else ())
    for name in columns:
        table.add_column(name, justify="right")
    for label, metrics in result.metrics["summary"].items():
        table.add_row(label, *(f"{metrics[name]['mean']:.4f}" if name in metrics else "n/a" for name in columns))
    console.print(table)
    if result.references:
        refs = result.references
        console.print(f"references: {refs['cache_hits']} trainings reused from {refs['cache_dir']}, "
                      f"{refs['cache_misses']} run", highlight=False, soft_wrap=True)
    console.print(f"record:  {result.folder / 'record.csv'}", highlight=False, soft_wrap=True)
    for path in result.report:
        console.print(f"report:  {path}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()
