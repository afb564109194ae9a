"""`lifelong run | resume | report | compare | sweep | validate | list`: a thin shell over lifelong.run and
lifelong.report."""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from lifelong import __version__
from lifelong.errors import UserError

# Each command imports what it uses when it runs: `lifelong --help` and `lifelong list` never load
# torch, pandas or matplotlib (tests/unit/test_bad_input.py checks it).

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
errors = Console(stderr=True)


# What a user can fix: one clear message and exit code 2. Every such error subclasses
# lifelong.errors.UserError (ConfigError, StreamError, FolderError, DataError, NonFiniteLossError,
# StrategyError, ...); a new kind joins by subclassing it. Anything else is a bug: traceback.
USER_ERRORS = (UserError,)


@contextmanager
def handled():
    """Around a command's body: a user error prints its message and exits with code 2; anything else is
    a bug in lifelong, which says so and keeps its traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except USER_ERRORS as error:
        _fail(error)
    except KeyboardInterrupt as stop:
        _interrupted(stop)
    except Exception:
        errors.print("[bold red]internal error:[/] this is a bug in lifelong, not in your input. Please report "
                     "it with the command you ran and the traceback below.", highlight=False, soft_wrap=True)
        raise


def _fail(error: Exception) -> None:
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"lifelong {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                          help="print the version and exit")) -> None:
    pass


@app.command()
def run(config: Path = typer.Argument(..., help="experiment config (YAML), or a shipped config's name"),
        overrides: Optional[list[str]] = typer.Argument(None, help="key.sub=value, e.g. training.lr=0.05"),
        seed: Optional[int] = typer.Option(None, help="run this seed only (overrides `seeds:`)"),
        seeds: Optional[str] = typer.Option(None, help="run these seeds: a range 0-4, a list 0,2,5, or both"),
        device: Optional[str] = typer.Option(None, help="auto | cpu | cuda"),
        out: Optional[Path] = typer.Option(None, help="run folder (default: reports/<name>-<time>)"),
        references: bool = typer.Option(True, help="train (or reuse from the cache) the independent and joint "
                                                   "references for negative transfer and intransigence"),
        tensorboard: bool = typer.Option(False, help="also log to <run folder>/tensorboard (needs the extra)"),
        force: bool = typer.Option(False, "--force", help="empty the --out run folder first if it holds a run")):
    """Play the config's stream through its strategies over every seed; write the run folder and report.

    Ctrl-C stops after the files being written are whole and prints the `lifelong resume` command."""
    from lifelong.config import load_config, parse_seeds
    from lifelong.preflight import check_folders
    from lifelong.run import run_experiment

    extra = list(overrides or [])
    with handled():
        if seed is not None or seeds is not None:
            extra.append(f"seeds={[seed] if seeds is None else parse_seeds(seeds)}")
        if device is not None:
            extra.append(f"device={device}")
        if not references:
            extra.append("references.enabled=false")
        if tensorboard:
            extra.append("tensorboard=true")
        parsed = load_config(config, extra)
        check_folders(parsed, out)
        result = run_experiment(parsed, out=out, force=force)
    _print_result(result)


@app.command()
def resume(run_dir: Path = typer.Argument(..., help="folder of an interrupted run")):
    """Go on with an interrupted run from its last completed task.

    Refused when config.yaml was edited since the run started. A damaged checkpoint is replaced by
    the one saved a task earlier (<name>.prev.pt), with a note."""
    from lifelong.preflight import check_run_folder
    from lifelong.run import resume_experiment

    with handled():
        check_run_folder(run_dir)
        result = resume_experiment(run_dir, note=lambda line: errors.print(f"[yellow]note:[/] {escape(line)}",
                                                                           highlight=False, soft_wrap=True))
    _print_result(result)


def _interrupted(stop: KeyboardInterrupt) -> None:
    """Ctrl-C: say where the run stopped and how to go on; exit 130 as shells expect."""
    from lifelong.run import RunInterrupted

    if isinstance(stop, RunInterrupted):
        errors.print(f"interrupted: {stop.where}\ngo on with:  lifelong resume {shlex.quote(str(stop.folder))}",
                     highlight=False, markup=False, soft_wrap=True)
    else:
        errors.print("interrupted before the run started; nothing was written", highlight=False, markup=False)
    raise typer.Exit(130)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="run folder written by `lifelong run`"),
           out: Optional[Path] = typer.Option(None, help="where to write report.html and report.md "
                                                         "(default: the run folder)")):
    """Rebuild report.html and report.md from a run folder's files alone."""
    from lifelong.preflight import check_run_folder, check_writable
    from lifelong.report import write_report

    with handled():
        check_run_folder(run_dir)
        check_writable(out or run_dir, "--out" if out else "run folder")
        result = write_report(run_dir, out)
    _print_written(result, "report: ")


@app.command()
def compare(run_dirs: list[Path] = typer.Argument(..., help="run folders to put side by side"),
            out: Optional[Path] = typer.Option(None, help="folder for compare.csv/.md/.html "
                                                          "(default: reports/compare-<time>)")):
    """Strategies side by side across runs, grouped by stream: mean ± 95% CI, best per metric in bold."""
    from lifelong.preflight import check_run_folder, check_writable
    from lifelong.report.compare import compare_runs

    with handled():
        for run_dir in run_dirs:
            check_run_folder(run_dir)
        check_writable(out or Path("reports"), "--out")
        result = compare_runs(run_dirs, out)
    _print_written(result, "compare:")


@app.command()
def l2m(path: Path = typer.Argument(..., help="a run folder (writes <run>/l2m/ and refreshes its report), or an "
                                             "l2logger log folder"),
        ste: Optional[Path] = typer.Option(None, help="with a log folder: a folder of single-task expert logs, one "
                                                      "folder per task named after it"),
        out: Optional[Path] = typer.Option(None, help="with a log folder: where to write metrics.json and "
                                                      "preprocessed.tsv (default: print only)")):
    """The DARPA L2M metrics (l2metrics' definitions and preprocessing) of a run or of any l2logger log."""
    from lifelong.l2m.export import compute_log, export_run, is_run_folder, read_results, refresh_metrics

    with handled():
        if is_run_folder(path):
            from lifelong.preflight import check_run_folder
            from lifelong.report import write_report
            from lifelong.run_folder import RunFolder

            check_run_folder(path)
            with RunFolder(path).locked() as folder:  # not while a run or resume is writing the folder
                written = [export_run(path), refresh_metrics(folder)]
            lifetimes = {f"{label} seed {seed}": r["lifetime"] for label, seeds in read_results(path).items()
                         for seed, r in seeds.items()}
            written += write_report(path).written
        else:
            result, written = compute_log(path, ste, out)
            lifetimes = {path.name: result.lifetime}
    for name, values in lifetimes.items():
        console.print(f"{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()), highlight=False,
                      soft_wrap=True)
    for file in written:
        console.print(f"l2m:     {file}", highlight=False, soft_wrap=True)


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
    from lifelong.sweep import run_sweep  # the sweep backends load only for this command

    with handled():
        result = run_sweep(sweep_file, backend=backend, jobs=jobs, address=address, cpus_per_run=cpus_per_run,
                           out=out)
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
        errors.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for path in result.written:
        console.print(f"{label} {path}", highlight=False, soft_wrap=True)


@app.command()
def validate(config: Path = typer.Argument(..., help="experiment config (YAML), or a shipped config's name"),
             overrides: Optional[list[str]] = typer.Argument(None, help="key.sub=value, as for `run`")):
    """Check a config without training: fields, stream, model, strategy set-up, folders.

    The stream is built (data present, classes and shots fit), the model is built for the stream's
    inputs, every strategy is set up, and the folders a run writes are tried."""
    from lifelong.config import load_config
    from lifelong.preflight import check_experiment

    with handled():
        parsed = load_config(config, list(overrides or []))
        checked = check_experiment(parsed)
    console.print(f"{config}: ok — strategies {', '.join(s.display_name for s in parsed.strategies)}, seeds "
                  f"{parsed.seeds}; checked:", highlight=False, soft_wrap=True)
    for line in checked:
        console.print(f"  {line}", highlight=False, soft_wrap=True)


@app.command("list")
def list_(what: str = typer.Argument(..., help="strategies | streams")):
    """List registered strategies or shipped stream specs."""
    from lifelong.errors import ConfigError
    from lifelong.specfiles import load_stream_spec, stream_files
    from lifelong.strategies.registry import available

    if what == "strategies":
        for name, target in sorted(available().items()):
            console.print(f"{name:16s} {target}", highlight=False)
    elif what == "streams":
        for name, path in stream_files().items():
            try:
                spec = load_stream_spec(path)
                console.print(f"{name:24s} {spec.builder:15s} {spec.scenario:9s} {spec.n_tasks:5d} tasks",
                              highlight=False)
            except ConfigError as error:
                console.print(f"{name:24s} INVALID: {error}", highlight=False, markup=False)
    else:
        _fail(ConfigError(f"cannot list {what!r}; choose strategies or streams"))


def _print_result(result) -> None:
    from rich.table import Table

    from lifelong.report.glossary import GROUPS

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
