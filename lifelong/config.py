"""Experiment configs: YAML -> validated objects, with errors that name the file, line and field."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from lifelong.errors import ConfigError
from lifelong.file_names import safe_file_name
from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.models import ModelSpec
from lifelong.specfiles import (describe, find_config, load_stream_spec, nearest_line, parse_yaml, read_yaml,
                                stream_files)
from lifelong.strategies.registry import UnknownStrategyError, strategy_class
from lifelong.streams.memory import check_fits
from lifelong.streams.spec import StreamSpec
from lifelong.training import TrainingSpec

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "load_stream_spec", "parse_seeds", "safe_file_name",
           "stream_files"]

REPO_ROOT = Path(__file__).resolve().parents[1]

_STRATEGY_NAME = re.compile(r"\w[\w.+-]*(:[A-Za-z_][\w.]*)?")


class StrategyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registered name (see `lifelong list strategies`) or 'package.module:Class'")
    label: str | None = Field(default=None, description="name in reports and checkpoint files; default: `name`")
    params: dict[str, Any] = Field(default_factory=dict)
    training: TrainingSpec | None = Field(default=None, description="overrides the experiment's training budget")

    @field_validator("name")
    @classmethod
    def _name_is_a_reference(cls, value: str) -> str:
        if not _STRATEGY_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is neither a registered name nor 'package.module:Class'; write e.g. "
                             "naive, or my_strategies:LwF for a class in my_strategies.py")
        return value

    @field_validator("label")
    @classmethod
    def _label_names_files(cls, value: str | None) -> str | None:
        return value if value is None else safe_file_name(value)

    @property
    def display_name(self) -> str:
        return self.label or self.name


class ReferencesSpec(BaseModel):
    """The `references:` section: the learners that negative transfer and intransigence compare with."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="train (or load from the cache) the independent and joint "
                                                    "references; `lifelong run --no-references` turns it off")
    cache_dir: str = Field(default="reports/.cache", description="where references are cached across runs")
    joint_at: Literal["all", "auto"] | list[int] = Field(
        default="auto", description="tasks k whose joint model on 1..k is trained (one training each): all, a "
                                    "list, or auto = all for streams up to 10 tasks, else 5 spread over the stream")

    def joint_tasks(self, n_tasks: int) -> list[int]:
        """The 1-based k at which a*_k is computed; always includes T (RWalk reports I_T)."""
        if self.joint_at == "all" or (self.joint_at == "auto" and n_tasks <= 10):
            return list(range(1, n_tasks + 1))
        if self.joint_at == "auto":
            return sorted({round(n_tasks * q) for q in (0.2, 0.4, 0.6, 0.8)} | {1, n_tasks})
        wrong = [k for k in self.joint_at if not 1 <= k <= n_tasks]
        if wrong:
            raise ConfigError(f"references.joint_at lists {wrong}, outside the stream's tasks 1..{n_tasks}")
        return sorted(set(self.joint_at))


class AnalysisSpec(BaseModel):
    """The `analysis:` section: how the metrics are judged."""

    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(default=0.02, ge=0, description="with one seed, a gap (e.g. negative transfer) is "
                                                             "flagged only when larger than this")


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="names the run folder: reports/<name>-<time>")
    stream: StreamSpec
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    strategies: list[StrategyEntry] = Field(min_length=1)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default=[0], min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(default=None, ge=1, le=1024,
                                description="torch intra-op CPU threads; default: torch's choice. "
                                            "1 is fastest for small models on a shared machine")
    out: str = "reports"
    references: ReferencesSpec = ReferencesSpec()
    analysis: AnalysisSpec = AnalysisSpec()
    cost: Literal["off", "basic", "full"] = Field(
        default="basic", description="cost accounting per task: basic (FLOPs counted once per step shape, "
                                     "energy, memory, counters), full (FLOPs of every step: slower), off")
    tensorboard: bool = Field(default=False, description="log scalars and the score matrix for TensorBoard "
                                                         "(needs the `tensorboard` extra)")
    l2m: bool = Field(default=False, description="write each lifetime as an l2logger log and its L2M metrics "
                                                 "into <run>/l2m/ (needs the `l2m` extra)")

    _name_is_a_file_name = field_validator("name")(safe_file_name)

    @field_validator("cost", mode="before")
    @classmethod
    def _cost_off(cls, value):
        """YAML reads a bare `off` as false: `cost: off` means off."""
        return "off" if value is False else value

    @model_validator(mode="after")
    def _labels_unique(self):
        labels = [s.display_name for s in self.strategies]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ValueError(f"strategies repeat the label(s) {repeated}; give each a distinct `label:`")
        return self

    @model_validator(mode="after")
    def _joint_at_in_stream(self):
        joint_at, n_tasks = self.references.joint_at, self.stream.n_tasks
        wrong = [k for k in joint_at if not 1 <= k <= n_tasks] if isinstance(joint_at, list) else []
        if wrong:
            raise _field_error(("references", "joint_at"), joint_at,
                               f"lists {wrong}, outside the stream's tasks 1..{n_tasks}; give task numbers "
                               f"from 1 to {n_tasks}, or `all` or `auto`")
        return self

    @model_validator(mode="after")
    def _stream_fits(self):
        """The schedule's tasks exist, and what the stream keeps resident fits in memory."""
        try:
            self.evaluation.check_stream(self.stream.n_tasks)
        except ValueError as error:
            raise _field_error(("evaluation", "tasks"), self.evaluation.tasks, str(error)) from None
        try:
            check_fits(self.stream, self.evaluation.sample_size)
        except ValueError as error:
            raise _field_error(("stream", "n_tasks"), self.stream.n_tasks, str(error)) from None
        return self

    def training_for(self, entry: StrategyEntry) -> TrainingSpec:
        return entry.training or self.training


def _field_error(loc: tuple, value, message: str) -> ValidationError:
    """A validation error placed on `loc`, so the message names that field and its line."""
    error = PydanticCustomError("config", message.replace("{", "{{").replace("}", "}}"))
    return ValidationError.from_exception_data("ExperimentConfig", [InitErrorDetails(type=error, loc=loc,
                                                                                     input=value)])


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read, override (`key.sub=value`), resolve the stream and validate, or raise ConfigError.

    `path` may also name a shipped config (`quickstart`, or `configs/quickstart.yaml` from a folder
    without one), so the README's commands work wherever the package is installed."""
    path = find_config(Path(path))
    raw, lines = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of fields (name, stream, strategies, ...)")
    for item in overrides:
        if item.startswith("stream.") and isinstance(raw.get("stream"), str):
            raw["stream"] = _resolve_stream(raw["stream"], path)[0]  # a shipped stream, then its fields
        _apply_override(raw, item)
    raw["stream"], stream_file, stream_lines = _resolve_stream(raw.get("stream"), path)
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe(error, path, lines, stream_file, stream_lines)) from None
    for i, entry in enumerate(config.strategies):
        _check_strategy(entry, i, path, lines)
    return config


def parse_seeds(text: str) -> list[int]:
    """`0-4` -> [0, 1, 2, 3, 4]; `0,2,5` -> [0, 2, 5]; ranges and lists mix (`0-2,7`)."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: write a range (0-4), a list (0,2,5) or both (0-2,7)") from None
        if first < 0 or last < first:
            raise ConfigError(f"--seeds {text!r}: {part.strip()!r} is not an increasing range of seeds >= 0")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def _apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: write it as key.sub=value (e.g. training.lr=0.05)")
    *path, last = key.split(".")
    try:
        node = raw
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(last) if isinstance(node, list) else last] = parse_yaml(value, f"override {item!r}")[0]
    except ConfigError:
        raise
    except (TypeError, ValueError, IndexError, AttributeError) as error:
        raise ConfigError(f"override {item!r}: cannot set {key!r} ({type(error).__name__}: {error}); "
                          "list items take a number (strategies.0.params.lambda=5)") from None


def _resolve_stream(value, config_path: Path) -> tuple[Any, Path | None, dict]:
    """`stream:` may be a mapping (inline spec), a path to a YAML file, or a shipped stream name."""
    if not isinstance(value, str):
        return value, None, {}
    candidates = [Path(value), config_path.parent / value, config_path.parent.parent / "streams" / f"{value}.yaml"]
    shipped = stream_files()
    for candidate in candidates:
        if candidate.is_file():
            raw, lines = read_yaml(candidate)
            return raw, candidate, lines
    if value in shipped:
        raw, lines = read_yaml(shipped[value])
        return raw, shipped[value], lines
    close = difflib.get_close_matches(value, list(shipped), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{config_path}: field 'stream': no stream named {value!r}.{hint} "
                      f"Shipped streams: {', '.join(sorted(shipped))}; or give a path to a stream YAML file.")


def _check_strategy(entry: StrategyEntry, index: int, path: Path, lines: dict) -> None:
    """Resolve the strategy name and validate its params against the strategy's own schema."""
    where = ("strategies", index)
    try:
        cls = strategy_class(entry.name)
    except UnknownStrategyError as error:
        raise ConfigError(f"{path}:{nearest_line(lines, where + ('name',))}: field "
                          f"'strategies.{index}.name': {error}") from None
    try:
        cls.Params.model_validate(entry.params)
    except ValidationError as error:
        problems = [f"{path}:{nearest_line(lines, where + ('params', *e['loc']))}: field "
                    f"'strategies.{index}.params.{'.'.join(map(str, e['loc']))}' ({entry.name}): {e['msg']}"
                    for e in error.errors()]
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None
