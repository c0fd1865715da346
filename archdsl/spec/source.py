"""Strict YAML reading that remembers where every node came from.

The loader is a safe loader with YAML 1.2 core-schema scalars: ``1e-4`` is a float, only ``true``/``false``
are booleans (``no`` stays a string), integers are decimal (``032`` is 32, not octal 26), ``0o17`` or ``0x1f``
(``1:30`` and ``0b101`` are strings, as YAML 1.2 reads them), and duplicate keys are errors. One extension
to YAML 1.2: an underscore between digits groups them (``2_000_000``, as in Python and TOML).

Reading is bounded before it is done (``archdsl.limits``): only regular files are read, at most
``ARCHDSL_MAX_FILE_BYTES`` of them; a document may nest ``ARCHDSL_MAX_YAML_DEPTH`` levels and expand, aliases and
merge keys (``<<``) counted each time they are used, to ``ARCHDSL_MAX_YAML_NODES`` nodes, which is counted on the
composed node graph, where an alias is one shared node, before any of it is expanded; a recursive alias is
refused; an integer may have ``ARCHDSL_MAX_INT_DIGITS`` digits. Every node's ``(line, col)`` is recorded under
its path tuple.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archdsl.errors import Location, SpecError
from archdsl.limits import FILE_BYTES, INT_DIGITS, YAML_DEPTH, YAML_NODES
from archdsl.spec.yaml_errors import explain

__all__ = ["PathKey", "SourceDoc", "dotted", "parse_dotted", "read_yaml", "read_yaml_text"]

PathKey = tuple[str | int, ...]

_BOOL, _FLOAT, _INT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float", "tag:yaml.org,2002:int"
_MERGE = "tag:yaml.org,2002:merge"


class _TooDeep(Exception):
    """Raised by the composer past the nesting ceiling, with the mark of the node that went too deep."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__()
        self.mark = mark


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans, integers and floats, and a bounded nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.max_depth = YAML_DEPTH.value

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(node.value)
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits.startswith(("0o", "0x")):
            return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
        return sign * int(digits.replace("_", ""))


_StrictLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT, _INT)]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_StrictLoader.add_constructor(_INT, _StrictLoader.construct_yaml_int)
_StrictLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+(?:_[0-9]+)*|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
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
    """Read a YAML file strictly; problems raise :class:`SpecError` located in the file.

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a directory is refused before it is
    opened), and only if it holds at most ``ARCHDSL_MAX_FILE_BYTES``."""
    name = str(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError.at(
                "", "is not a regular file (a directory, FIFO or device); give a YAML file", Location(name)
            )
        if info.st_size > FILE_BYTES.value:
            raise SpecError.at("", f"the file has {FILE_BYTES.over(info.st_size)}", Location(name))
        with open(path, "rb") as f:  # never more than the ceiling, whatever the file grew to since stat
            raw = f.read(FILE_BYTES.value + 1)
        if len(raw) > FILE_BYTES.value:
            raise SpecError.at("", f"the file has {FILE_BYTES.over(len(raw))}", Location(name))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError.at("", "file not found", Location(name)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError.at("", f"cannot read file: {exc}", Location(name)) from None
    return read_yaml_text(text, name)


def read_yaml_text(text: str, file: str = "<string>") -> SourceDoc:
    """Read YAML text strictly (see module docstring)."""
    if len(text) > FILE_BYTES.value:
        raise SpecError.at("", f"the text has {FILE_BYTES.over(len(text))}", Location(file))
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # checks the characters: a control byte raises ReaderError here
        node = loader.get_single_node()
        if node is None:
            raise SpecError.at("", "the document is empty; a mapping was expected", Location(file, 1, 1))
        _check_expansion(node, file)
        builder = _Builder(loader, file)
        data = builder.build(node, ())
    except _TooDeep as exc:
        where = Location(file, exc.mark.line + 1, exc.mark.column + 1)
        raise SpecError.at("", f"mappings and lists nest {YAML_DEPTH.over(YAML_DEPTH.value + 1)}", where) from None
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = (
            f"invalid YAML: the control character U+{code:04X} is not allowed in YAML text (write it as an "
            "escape in a double-quoted string)"
        )
        raise SpecError.at("", message, Location(file, line, col)) from None
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
        if loader is not None:
            loader.dispose()
    return SourceDoc(data, file, builder.locations, builder.key_locations)


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse a document whose aliases and merge keys would expand past the node ceiling, or that refers to
    itself, by counting on the composed graph (an alias is one shared node there): each node's expanded size
    is computed once, bottom-up, without recursion, so the count costs the file's size, not the expansion's."""
    limit = YAML_NODES.value
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        kids = _children(node)
        if children_done:
            on_path.discard(id(node))
            size[id(node)] = total = 1 + sum(size[id(k)] for k in kids)
            if total > limit:
                mark = node.start_mark
                raise SpecError.at(
                    "",
                    "with its aliases and merge keys expanded (each counts every time it is used) "
                    f"the document has at least {YAML_NODES.over(total)}",
                    Location(file, mark.line + 1, mark.column + 1),
                )
            continue
        if id(node) in size:
            continue
        on_path.add(id(node))
        stack.append((node, True))
        for kid in kids:
            if id(kid) in on_path:
                mark = kid.start_mark
                raise SpecError.at(
                    "",
                    "a recursive alias: the node contains itself, which has no finite value",
                    Location(file, mark.line + 1, mark.column + 1),
                )
            if id(kid) not in size:
                stack.append((kid, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class _Builder:
    """Turns a composed node tree into plain data, recording locations and refusing duplicates."""

    def __init__(self, loader: _StrictLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.locations: dict[PathKey, tuple[int, int]] = {}
        self.key_locations: dict[PathKey, tuple[int, int]] = {}
        self.max_digits = INT_DIGITS.value
        self.own_keys: dict[int, set[int]] = {}
        """Per mapping node: its own key nodes (not merged in by ``<<``), taken before it is flattened."""

    def _where(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.locations.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            raise SpecError.at(dotted(path), f"YAML tag {node.tag} is not allowed", self._where(node))
        if isinstance(node, yaml.MappingNode):
            own = self.own_keys.setdefault(id(node), {id(k) for k, _ in node.value if k.tag != _MERGE})
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys: merged pairs first, then the node's own
            pairs = []
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise SpecError.at(
                        dotted(path), f"mapping keys must be strings, got {key!r}", self._where(key_node)
                    )
                pairs.append((str(key), key_node, value_node))
            last = {key: i for i, (key, _, _) in enumerate(pairs)}  # a merged key is overridden by a later one
            out: dict[str, Any] = {}
            for i, (key, key_node, value_node) in enumerate(pairs):
                if id(key_node) not in own and last[key] != i:
                    continue
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
        digits = len(str(node.value).lstrip("+-").replace("_", "")) if node.tag == _INT else 0
        if digits > self.max_digits:
            raise SpecError.at(dotted(path), f"an integer of {INT_DIGITS.over(digits)}", self._where(node))
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, bytes | set) or hasattr(value, "isoformat"):
            raise SpecError.at(
                dotted(path),
                f"only strings, numbers, booleans, null, lists and mappings are allowed, got {type(value).__name__}",
                self._where(node),
            )
        return value
