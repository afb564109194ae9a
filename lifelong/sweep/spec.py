"""The sweep file: read it, expand its grid or list into runs, and validate every run's config up front.

A run's parameters become the same `key=value` overrides `lifelong run` takes, so a sweep can vary
anything a config holds; `strategy` and `seed` are shorthands for a one-strategy, one-seed run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifelong.config import ConfigError, ExperimentConfig, load_config
from lifelong.specfiles import read_yaml


class SweepError(ConfigError):
    """The sweep file or its backend settings are wrong; the message names the field and the fix."""


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    base: str = Field(description="the experiment config every run starts from (path relative to the sweep file)")
    name: str | None = Field(default=None, description="the sweep's name; default: the sweep file's stem")
    out: str = Field(default="reports/sweeps", description="parent of the sweep folder (<out>/<name>)")
    set: dict[str, Any] = Field(default_factory=dict, description="parameters every run gets")
    grid: dict[str, Any] | None = Field(default=None, description="parameter -> list of values; runs are the "
                                                                  "cartesian product")
    runs: list[dict[str, Any]] | None = Field(default=None, alias="list",
                                              description="explicit runs, each a mapping parameter -> value")


@dataclass(frozen=True)
class PlannedRun:
    run_id: str  # slug of the parameters + a hash of them and the base config: stable across restarts
    parameters: dict[str, Any]
    config: ExperimentConfig


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    base: Path
    out: Path
    runs: list[PlannedRun]


def load_sweep(path: str | Path, out: str | Path | None = None) -> Sweep:
    """Read the sweep file, expand it and validate every run; raise SweepError before anything runs."""
    path = Path(path)
    spec = _read(path)
    base = _base_path(spec.base, path)
    runs = _expand(spec, path)
    base_data, _ = read_yaml(base)
    planned, invalid = [], {}
    for parameters in runs:
        run_id = _run_id(parameters, base_data, spec.set)
        try:
            config = load_config(base, overrides([*spec.set.items(), *_with_base_entries(parameters, base_data)]))
        except ConfigError as error:
            field = _blame(str(error), [f"{'grid' if spec.grid is not None else 'list'}.{k}" for k in parameters]
                           + [f"set.{k}" for k in spec.set])
            invalid.setdefault((field, str(error)), []).append(run_id)
            continue
        planned.append(PlannedRun(run_id, parameters, config))
    if invalid:
        problems = "\n".join(f"  {f'field {field!r}' if field else 'the base config'} in runs "
                             f"{', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''}: "
                             + message.replace("\n", "\n    ") for (field, message), ids in invalid.items())
        raise SweepError(f"{path}: {sum(map(len, invalid.values()))} of {len(runs)} runs are not valid configs, "
                         f"so no run was started; fix the name or value of each field below (a parameter is a "
                         f"dotted config path, as in `lifelong run` overrides, e.g. training.lr):\n{problems}")
    _check_unique(planned, path)
    return Sweep(spec.name or path.stem, path, base, Path(out) if out else Path(spec.out) / (spec.name or path.stem),
                 planned)


def _with_base_entries(parameters: dict[str, Any], base_data: Any) -> list[tuple[str, Any]]:
    """`strategy: er` names the base config's strategy labelled (or else named) `er`, with its params, when
    the base has one; any other name is a strategy of that name with its defaults."""
    entries = base_data.get("strategies") if isinstance(base_data, dict) else None
    items = list(parameters.items())
    if not isinstance(entries, list) or not isinstance(parameters.get("strategy"), str):
        return items
    wanted = parameters["strategy"]
    dicts = [entry for entry in entries if isinstance(entry, dict)]
    found = ([entry for entry in dicts if entry.get("label") == wanted]
             or [entry for entry in dicts if entry.get("name") == wanted and not entry.get("label")])
    return [(key, found[0] if key == "strategy" and found else value) for key, value in items]


def overrides(items: list[tuple[str, Any]]) -> list[str]:
    """Coarse before fine (`stream` before `stream.n_tasks`, `strategy` before `strategies.0.params.x`), so a
    setting is never lost under a parameter that replaces its whole section; among equals, later wins."""
    texts = [override(key, value) for key, value in items]
    return sorted(texts, key=lambda text: text.partition("=")[0].count("."))


def override(key: str, value: Any) -> str:
    """One parameter as a `key=value` override; `strategy` and `seed` stand for one-item lists."""
    if key == "strategy":
        key, value = "strategies", [value if isinstance(value, dict) else {"name": value}]
    elif key == "seed":
        key, value = "seeds", [value]
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def _read(path: Path) -> SweepFile:
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    raw, _ = read_yaml(path)  # alias-safe, as configs are
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a sweep file is a mapping with `base:` and `grid:` or `list:`")
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as error:
        raise SweepError(f"{path}: " + "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}"
                                                 for e in error.errors())
                         + " (fields: base, name, out, set, grid, list)") from None
    if (spec.grid is None) == (spec.runs is None):
        raise SweepError(f"{path}: give exactly one of `grid:` (every combination of the values) or `list:` "
                         "(one mapping per run)")
    return spec


def _base_path(base: str, sweep_path: Path) -> Path:
    for candidate in (sweep_path.parent / base, Path(base)):
        if candidate.is_file():
            return candidate
    raise SweepError(f"{sweep_path}: field 'base': no config {base!r} next to the sweep file or in the working "
                     "folder; give the path of an experiment config")


def _expand(spec: SweepFile, path: Path) -> list[dict[str, Any]]:
    if spec.runs is not None:
        if not spec.runs:
            raise SweepError(f"{path}: field 'list' is empty, so the sweep has zero runs; add one mapping "
                             "(parameter: value) per run")
        return [dict(run) for run in spec.runs]
    if not spec.grid:
        raise SweepError(f"{path}: field 'grid' is empty, so the sweep has zero runs; give at least one "
                         "parameter with a list of values (e.g. seed: [0, 1, 2])")
    axes = {}
    for key, values in spec.grid.items():
        if not isinstance(values, list):
            raise SweepError(f"{path}: field 'grid.{key}': give a list of values, e.g. {key}: [{values!r}]")
        if not values:
            raise SweepError(f"{path}: field 'grid.{key}' is an empty list, so the grid expands to zero runs; "
                             "give it at least one value or remove it")
        axes[key] = values
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def _blame(message: str, fields: list[str]) -> str | None:
    """The sweep field ('grid.training.lr') whose config path the config error is about, if any."""
    paths = re.findall(r"field '([^']+)'", message) + re.findall(r"override '([^'=]+)=", message)
    for field in fields:
        key = field.split(".", 1)[1]
        key = {"strategy": "strategies", "seed": "seeds"}.get(key, key)
        if any(p == key or p.startswith(key + ".") or key.startswith(p + ".") for p in paths):
            return field
    return None


def _run_id(parameters: dict[str, Any], base_data: Any, fixed: dict[str, Any]) -> str:
    content = json.dumps({"base": base_data, "set": fixed, "parameters": parameters}, sort_keys=True, default=str)
    digest = hashlib.sha256(content.encode()).hexdigest()[:8]
    slug = "-".join(_slug_part(key, value) for key, value in parameters.items())
    slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", slug)[:60].strip("-_")
    return f"{slug}-{digest}" if slug else digest


def _slug_part(key: str, value: Any) -> str:
    if key == "strategy":
        return str(value.get("label") or value.get("name")) if isinstance(value, dict) else str(value)
    if key == "stream":
        return str(value.get("name", "stream")) if isinstance(value, dict) else Path(str(value)).stem
    if key == "seed":
        return f"seed{value}"
    shown = value if isinstance(value, (str, int, float, bool)) else "x"
    return f"{key.rsplit('.', 1)[-1]}{shown}"


def _check_unique(planned: list[PlannedRun], path: Path) -> None:
    seen: dict[str, int] = {}
    for i, run in enumerate(planned):
        digest = run.run_id[-8:]  # the hash of the parameters, whatever their order
        if digest in seen:
            raise SweepError(f"{path}: runs {seen[digest]} and {i} have the same parameters "
                             f"({run.parameters}); remove one of them")
        seen[digest] = i
