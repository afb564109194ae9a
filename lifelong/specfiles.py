"""YAML files -> data with the line of every field, read safely; the stream specs and configs shipped
inside the package. Imports neither torch nor pandas, so `lifelong list` answers at once."""

from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import TypeAdapter, ValidationError

from lifelong.errors import ConfigError
from lifelong.streams.spec import StreamSpec

# `lifelong/shipped/streams` and `lifelong/shipped/configs` hold the repository's `streams/` and
# `configs/` (as links in a checkout, as files in a wheel), so an installed package has them too.
SHIPPED = Path(str(files("lifelong") / "shipped"))

# Aliases (*name) may repeat a value, but a document may not expand beyond this many values: a
# "billion laughs" document is tiny on disk and exponential once its aliases are followed.
MAX_VALUES = 200_000


def read_yaml(path: Path) -> tuple[Any, dict]:
    """The data of a YAML file and a map from field path (a tuple) to line number."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the path of a YAML file inside it")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a text file ({error.reason} at byte {error.start}); a config is UTF-8 "
                          "YAML, e.g. configs/quickstart.yaml") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> tuple[Any, dict]:
    """Parse `text` (named `source` in errors): its data and its line map, aliases checked, never expanded."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            lines: dict[tuple, int] = {}
            if node is not None:
                _check_size(node, source)
                _map_lines(node, (), lines, set())
            return loader.construct_document(node) if node is not None else None, lines
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None


def _check_size(root: yaml.Node, source: str) -> None:
    """Count the values the document holds once aliases are followed, without following them twice."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to the value that "
                                  "contains it (a recursive alias); write the value out")
            return sizes[key]
        sizes[key] = -1
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) else [])
        total = 1 + sum(size(child) for child in children)
        if total > MAX_VALUES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: its aliases (*name) expand to more than "
                              f"{MAX_VALUES:,} values; a config needs far fewer: write the values out or "
                              "remove the aliases")
        sizes[key] = total
        return total

    size(root)


def _map_lines(node: yaml.Node, prefix: tuple, lines: dict, seen: set[int]) -> None:
    """Each field's line; a value reached again through an alias is not walked again."""
    lines[prefix] = node.start_mark.line + 1
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _map_lines(value, prefix + (key.value,), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _map_lines(value, prefix + (i,), lines, seen)


def stream_files() -> dict[str, Path]:
    """Ready stream specs shipped with the package (and any in ./streams of the working folder)."""
    return _yaml_files("streams")


def config_files() -> dict[str, Path]:
    """Ready configs shipped with the package (and any in ./configs of the working folder)."""
    return _yaml_files("configs")


def _yaml_files(kind: str) -> dict[str, Path]:
    found = {}
    for folder in (SHIPPED / kind, Path.cwd() / kind):
        found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return found


def find_config(path: Path) -> Path:
    """`path` itself when it exists; else the shipped config it names (`quickstart` or
    `configs/quickstart.yaml`), so the README's commands work from any folder once installed."""
    if path.exists():
        return path
    shipped = config_files()
    if path.parent in (Path("."), Path("configs")) and path.suffix in ("", ".yaml") and path.stem in shipped:
        return shipped[path.stem]
    close = difflib.get_close_matches(path.stem, list(shipped), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{path}: no such file.{hint} Shipped configs (run them by name): {', '.join(shipped)}")


def load_stream_spec(path: str | Path) -> StreamSpec:
    """A stream spec file on its own (used by `lifelong list streams` and tests)."""
    raw, lines = read_yaml(Path(path))
    try:
        return TypeAdapter(StreamSpec).validate_python(raw)
    except ValidationError as error:
        raise ConfigError(describe(error, Path(path), lines)) from None


def describe(error: ValidationError, path: Path, lines: dict, stream_file: Path | None = None,
             stream_lines: dict | None = None) -> str:
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
            field = _drop_union_tag(loc)
        line = nearest_line(where_lines, field)
        dotted = ".".join(map(str, field)) or "(top level)"
        problems.append(f"{where_file}:{line}: field '{dotted}': {item['msg']}")
    return "invalid config:\n  " + "\n  ".join(problems)


# Every `builder:` value of the StreamSpec union, read off the union so new builders need no edit here.
_BUILDER_NAMES = {name for spec in get_args(get_args(StreamSpec)[0])
                  for name in get_args(spec.model_fields["builder"].annotation)}


def _drop_union_tag(loc: tuple) -> tuple:
    """pydantic puts the discriminator value (e.g. 'split') first in the location of union errors."""
    return loc[1:] if loc and loc[0] in _BUILDER_NAMES else loc


def nearest_line(lines: dict, field: tuple) -> str:
    for end in range(len(field), -1, -1):
        if field[:end] in lines:
            return str(lines[field[:end]])
    return "?"
