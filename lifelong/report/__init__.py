"""Run folder -> report.html (self-contained) and report.md; several run folders -> a comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lifelong.report import document
from lifelong.report.render import to_html, to_markdown
from lifelong.report.rundata import load_run
from lifelong.run_folder import atomic_write, finish_tables


@dataclass
class ReportResult:
    written: list[Path]
    notes: list[str]  # what the folder lacked (or why it is incomplete), as said in the report


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportResult:
    """Read the run folder only, and write report.html and report.md (into the folder by default)."""
    finish_tables(run_dir)  # a run stopped early has only its record log: make record.csv from it
    run = load_run(run_dir)
    blocks = document.build(run)
    out = Path(out_dir) if out_dir else run.path
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write(html_path, to_html(f"{run.name} — lifelong report", blocks))
    atomic_write(md_path, to_markdown(blocks))
    return ReportResult([html_path, md_path], run.notes)
