"""Strict YAML reading that remembers where every node came from.

The loader is a safe loader with YAML 1.2-style scalars: ``1e-4`` is a float, only ``true``/``false`` are
booleans (``no`` stays a string), duplicate keys are errors, and aliases are limited so a small file cannot
expand into gigabytes. Every node's ``(line, col)`` is recorded under its path tuple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archdsl.errors import Location, SpecError
from archdsl.spec.yaml_errors import explain

__all__ = ["MAX_NODES", "PathKey", "SourceDoc", "dotted", "parse_dotted", "read_yaml", "read_yaml_text"]

PathKey = tuple[str | int, ...]
MAX_NODES = 200_000
"""Nodes visited while reading one document; aliases count each time they are expanded."""


_BOOL, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans and floats."""


_StrictLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT)]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap")


def dotted(path: PathKey) -> str:
    """``("stages", 1, "blocks")`` -> ``"stages.1.blocks"``."""
    return ".".join(str(p) for p in path)


@dataclass(frozen=True)
class SourceDoc:
    """Plain data read from YAML, and the location of every node by path."""

    data: Any
    file: str
    locations: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_locations: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    """Where each mapping key itself is written (for unknown-key errors)."""
    overrides: dict[PathKey, Location] = field(default_factory=dict)
    """Paths replaced on the command line (``--set``) and where each was given."""

    def locate(self, path: PathKey | str) -> Location:
        """The location of ``path`` or of its nearest ancestor present in the file."""
        key: PathKey = parse_dotted(path) if isinstance(path, str) else tuple(path)
        for n in range(len(key), 0, -1):
            if key[:n] in self.overrides:
                return self.overrides[key[:n]]
        for given, where in self.overrides.items():  # a key that only an override introduced
            if key and given[: len(key)] == key:
                return where
        while key and key not in self.locations:
            key = key[:-1]
        line, col = self.locations.get(key, (1, 1))
        return Location(self.file, line, col)

    def locate_key(self, path: PathKey) -> Location:
        """The location of the key that ends ``path`` (falls back to :meth:`locate`)."""
        if tuple(path) in self.key_locations and not any(given[: len(path)] == tuple(path) for given in self.overrides):
            line, col = self.key_locations[tuple(path)]
            return Location(self.file, line, col)
        return self.locate(path)


def parse_dotted(path: str) -> PathKey:
    if not path:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in path.split("."))


def read_yaml(path: str | Path) -> SourceDoc:
    """Read a YAML file strictly; problems raise :class:`SpecError` located in the file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError.at("", "file not found", Location(name)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError.at("", f"cannot read file: {exc}", Location(name)) from None
    return read_yaml_text(text, name)


def read_yaml_text(text: str, file: str = "<string>") -> SourceDoc:
    """Read YAML text strictly (see module docstring)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError.at("", "the document is empty; a mapping was expected", Location(file, 1, 1))
        builder = _Builder(loader, file)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        said = explain(exc, text)
        if said is not None:
            message, line, col = said
            raise SpecError.at("", f"invalid YAML: {message}", Location(file, line, col)) from None
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise SpecError.at("", f"invalid YAML: {exc.problem or exc.context}", loc) from None
    except yaml.YAMLError as exc:
        raise SpecError.at("", f"invalid YAML: {exc}", Location(file)) from None
    finally:
        loader.dispose()
    return SourceDoc(data, file, builder.locations, builder.key_locations)


class _Builder:
    """Turns a composed node tree into plain data, recording locations and refusing duplicates."""

    def __init__(self, loader: _StrictLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.locations: dict[PathKey, tuple[int, int]] = {}
        self.key_locations: dict[PathKey, tuple[int, int]] = {}
        self.visited = 0

    def _where(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise SpecError.at(
                dotted(path),
                f"document expands to more than {MAX_NODES} nodes (alias expansion?); simplify it",
                self._where(node),
            )
        self.locations.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            raise SpecError.at(dotted(path), f"YAML tag {node.tag} is not allowed", self._where(node))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise SpecError.at(
                        dotted(path), f"mapping keys must be strings, got {key!r}", self._where(key_node)
                    )
                key = str(key)
                if key in out:
                    first = self.locations.get((*path, key), (0, 0))
                    raise SpecError.at(
                        dotted((*path, key)),
                        f"duplicate key '{key}' (first given at line {first[0]})",
                        self._where(key_node),
                    )
                mark = key_node.start_mark
                self.key_locations[(*path, key)] = (mark.line + 1, mark.column + 1)
                if not isinstance(value_node, yaml.ScalarNode):  # point at the key of a nested block
                    self.locations[(*path, key)] = (mark.line + 1, mark.column + 1)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, bytes | set) or hasattr(value, "isoformat"):
            raise SpecError.at(
                dotted(path),
                f"only strings, numbers, booleans, null, lists and mappings are allowed, got {type(value).__name__}",
                self._where(node),
            )
        return value
