"""The sweep folder: runs/<run id>/ (normal run folders), index.csv + index.json, compare/ and sweep.yaml.

A run folder with metrics.json is finished; one with only config.yaml is unfinished (resumed on restart);
no folder means the run has not started. The index is rewritten after every run, so it is always current.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lifelong.run_folder import atomic_write
from lifelong.sweep.spec import PlannedRun, Sweep


@dataclass
class IndexEntry:
    run: PlannedRun
    folder: Path
    action: str  # what this start of the sweep does: run | resume | skip
    status: str  # done | failed | pending
    seconds: float | None = None
    error: str | None = None


class SweepFolder:
    def __init__(self, sweep: Sweep):
        self.sweep, self.path = sweep, sweep.out
        earlier = self.path / "index.json"
        self.seconds = {r["run_id"]: r["seconds"] for r in json.loads(earlier.read_text())["runs"]} \
            if earlier.is_file() else {}
        self.entries = [self._entry(run) for run in sweep.runs]

    def _entry(self, run: PlannedRun) -> IndexEntry:
        folder = self.path / "runs" / run.run_id
        if (folder / "metrics.json").is_file():
            return IndexEntry(run, folder, "skip", "done", self.seconds.get(run.run_id))
        return IndexEntry(run, folder, "resume" if (folder / "config.yaml").is_file() else "run", "pending")

    def start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path / "sweep.yaml", self.sweep.path.read_text())
        self.write_index()

    def record(self, run_id: str, status: str, seconds: float, error: str | None) -> IndexEntry:
        entry = next(e for e in self.entries if e.run.run_id == run_id)
        entry.status, entry.seconds, entry.error = status, seconds, error
        self.write_index()
        return entry

    def write_index(self) -> None:
        rows = [self._row(e) for e in self.entries]
        atomic_write(self.path / "index.json", json.dumps(
            {"sweep": self.sweep.name, "sweep_file": str(self.sweep.path), "base": str(self.sweep.base),
             "runs": rows}, indent=2, default=str) + "\n")
        names = list(dict.fromkeys(k for e in self.entries for k in e.run.parameters))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["run_id", "status", "action", "folder", "seconds", "error", *names])
        for row in rows:
            writer.writerow([row["run_id"], row["status"], row["action"], row["folder"], row["seconds"],
                             row["error"], *(_cell(row["parameters"].get(n)) for n in names)])
        atomic_write(self.path / "index.csv", text.getvalue())

    @staticmethod
    def _row(entry: IndexEntry) -> dict[str, Any]:
        return {"run_id": entry.run.run_id, "status": entry.status, "action": entry.action,
                "folder": str(entry.folder), "seconds": None if entry.seconds is None else round(entry.seconds, 3),
                "error": entry.error, "parameters": entry.run.parameters}

    def compare(self):
        """The compare view of every finished run (lifelong.report.compare), or None when none finished."""
        from lifelong.report.compare import compare_runs

        done = [e.folder for e in self.entries if e.status == "done"]
        return compare_runs(done, self.path / "compare") if done else None


def _cell(value: Any) -> str:
    if value is None or isinstance(value, (str, int, float, bool)):
        return "" if value is None else str(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
