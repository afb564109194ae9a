"""Experiment configs: YAML -> validated objects, with errors that name the file, line and field."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.models import ModelSpec
from lifelong.strategies.registry import UnknownStrategyError, strategy_class
from lifelong.streams.memory import check_fits
from lifelong.streams.spec import StreamSpec
from lifelong.training import TrainingSpec

REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A config or stream spec is wrong; the message says where and how to fix it."""


class StrategyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registered name (see `lifelong list strategies`) or 'package.module:Class'")
    label: str | None = Field(default=None, description="name in reports; default: `name`")
    params: dict[str, Any] = Field(default_factory=dict)
    training: TrainingSpec | None = Field(default=None, description="overrides the experiment's training budget")

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
            raise ValueError(f"references.joint_at lists {wrong}, outside the stream's tasks 1..{n_tasks}")
        return sorted(set(self.joint_at))


class AnalysisSpec(BaseModel):
    """The `analysis:` section: how the metrics are judged."""

    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(default=0.02, ge=0, description="with one seed, a gap (e.g. negative transfer) is "
                                                             "flagged only when larger than this")


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    stream: StreamSpec
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    strategies: list[StrategyEntry] = Field(min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(default=None, ge=1, le=1024,
                                description="torch intra-op CPU threads; default: torch's choice. "
                                            "1 is fastest for small models on a shared machine")
    out: str = "reports"
    references: ReferencesSpec = ReferencesSpec()
    analysis: AnalysisSpec = AnalysisSpec()
    tensorboard: bool = Field(default=False, description="log scalars and the score matrix for TensorBoard "
                                                         "(needs the `tensorboard` extra)")

    @model_validator(mode="after")
    def _labels_unique(self):
        labels = [s.display_name for s in self.strategies]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ValueError(f"strategies repeat the label(s) {repeated}; give each a distinct `label:`")
        return self

    @model_validator(mode="after")
    def _stream_fits(self):
        """The schedule's tasks exist, and what the stream keeps resident fits in memory."""
        self.evaluation.check_stream(self.stream.n_tasks)
        check_fits(self.stream, self.evaluation.sample_size)
        return self

    def training_for(self, entry: StrategyEntry) -> TrainingSpec:
        return entry.training or self.training


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read, override (`key.sub=value`), resolve the stream and validate, or raise ConfigError."""
    path = Path(path)
    raw, lines = _read_yaml(path)
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
        raise ConfigError(_describe(error, path, lines, stream_file, stream_lines)) from None
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


def load_stream_spec(path: str | Path) -> StreamSpec:
    """A stream spec file on its own (used by `lifelong list streams` and tests)."""
    raw, lines = _read_yaml(Path(path))
    try:
        return TypeAdapter(StreamSpec).validate_python(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, Path(path), lines, prefix=())) from None


def stream_files() -> dict[str, Path]:
    """Ready stream specs shipped in `streams/` (and any in ./streams of the working folder)."""
    found = {}
    for folder in (REPO_ROOT / "streams", Path.cwd() / "streams"):
        found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return found


def _read_yaml(path: Path) -> tuple[Any, dict]:
    """The data and a map from field path to line number (for error messages)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    text = path.read_text()
    try:
        return yaml.safe_load(text), _line_map(yaml.compose(text))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None


def _line_map(node, prefix: tuple = ()) -> dict[tuple, int]:
    lines = {prefix: node.start_mark.line + 1} if node is not None else {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_line_map(value, prefix + (key.value,)))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines.update(_line_map(value, prefix + (i,)))
    return lines


def _apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: write it as key.sub=value (e.g. training.lr=0.05)")
    *path, last = key.split(".")
    try:
        node = raw
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(last) if isinstance(node, list) else last] = yaml.safe_load(value)
    except (TypeError, ValueError, IndexError, AttributeError, yaml.YAMLError) as error:
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
            raw, lines = _read_yaml(candidate)
            return raw, candidate, lines
    if value in shipped:
        raw, lines = _read_yaml(shipped[value])
        return raw, shipped[value], lines
    close = difflib.get_close_matches(value, list(shipped), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{config_path}: field 'stream': no stream named {value!r}.{hint} "
                      f"Shipped streams: {', '.join(sorted(shipped))}; or give a path to a stream YAML file.")


def _describe(error: ValidationError, path: Path, lines: dict, stream_file: Path | None = None,
              stream_lines: dict | None = None, prefix: tuple = ()) -> str:
    """One line per problem: file:line, the dotted field, pydantic's message."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where_file, where_lines, field = path, lines, loc
        if loc[:1] == ("stream",) and stream_file is not None:
            where_file, where_lines, field = stream_file, stream_lines, _drop_union_tag(loc[1:])
        elif loc[:1] == ("stream",):
            field = ("stream", *_drop_union_tag(loc[1:]))
        else:
            field = _drop_union_tag(loc) if not prefix else loc
        line = _nearest_line(where_lines, field)
        dotted = ".".join(map(str, field)) or "(top level)"
        problems.append(f"{where_file}:{line}: field '{dotted}': {item['msg']}")
    return "invalid config:\n  " + "\n  ".join(problems)


# Every `builder:` value of the StreamSpec union, read off the union so new builders need no edit here.
_BUILDER_NAMES = {name for spec in get_args(get_args(StreamSpec)[0])
                  for name in get_args(spec.model_fields["builder"].annotation)}


def _drop_union_tag(loc: tuple) -> tuple:
    """pydantic puts the discriminator value (e.g. 'split') first in the location of union errors."""
    return loc[1:] if loc and loc[0] in _BUILDER_NAMES else loc


def _nearest_line(lines: dict, field: tuple) -> str:
    for end in range(len(field), -1, -1):
        if field[:end] in lines:
            return str(lines[field[:end]])
    return "?"


def _check_strategy(entry: StrategyEntry, index: int, path: Path, lines: dict) -> None:
    """Resolve the strategy name and validate its params against the strategy's own schema."""
    where = ("strategies", index)
    try:
        cls = strategy_class(entry.name)
    except UnknownStrategyError as error:
        raise ConfigError(f"{path}:{_nearest_line(lines, where + ('name',))}: field "
                          f"'strategies.{index}.name': {error}") from None
    try:
        cls.Params.model_validate(entry.params)
    except ValidationError as error:
        problems = [f"{path}:{_nearest_line(lines, where + ('params', *e['loc']))}: field "
                    f"'strategies.{index}.params.{'.'.join(map(str, e['loc']))}' ({entry.name}): {e['msg']}"
                    for e in error.errors()]
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None
