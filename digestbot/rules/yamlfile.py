"""Rules stage, config files: YAML 1.2 with positions, so every problem names file:line:column."""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO
from typing import Any

from pydantic import BaseModel, ConfigDict
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError


class Strict(BaseModel):
    """A section of the file: an unknown key is an error (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# A subscriptions file of ten thousand subscribers is well under a megabyte.
MAX_YAML_BYTES = 16 * 1024 * 1024
# Nodes and characters that aliases may add on top of the file's own: enough to reuse a few
# lists many times, far below what a "billion laughs" document expands to.
MAX_ALIAS_EXPANSION = 1_000_000


class YamlProblem(Exception):
    """A YAML syntax problem, already formatted as `file:line:column: YAML syntax: …`."""


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML 1.2 (`12:30` and `NO` stay strings; duplicate keys are errors).

    Text over MAX_YAML_BYTES, and aliases that would expand by more than MAX_ALIAS_EXPANSION
    nodes and characters, are refused before anything copies the document.
    """
    if len(text) > MAX_YAML_BYTES:
        raise YamlProblem(f"{source}: larger than {MAX_YAML_BYTES // 2**20} MB")
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise YamlProblem(f"{where}: YAML syntax: {problem}") from None
    except YAMLError as exc:
        raise YamlProblem(f"{source}: YAML syntax: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise YamlProblem(f"{source}: YAML syntax: nested too deeply") from None
    _check_aliases(document, source)
    return document


def _check_aliases(document: Any, source: str) -> None:
    """Raise YamlProblem at the alias whose reuse makes the document too big to copy."""
    sizes: dict[int, int] = {}
    seen: set[int] = set()
    extra = 0
    pending: list[tuple[Any, Any, Any]] = [(None, None, document)]
    while pending:
        parent, key, node = pending.pop()
        # Short strings may be shared by Python itself; a long one twice is an alias.
        if not isinstance(node, (dict, list)) and not (isinstance(node, str) and len(node) > 64):
            continue
        if id(node) in seen:  # an alias: the same object reached a second time
            extra += _size(node, sizes)
            if extra > MAX_ALIAS_EXPANSION:
                line, column = _position_in(parent, key)
                raise YamlProblem(
                    f"{source}:{line}:{column}: aliases expand to over "
                    f"{MAX_ALIAS_EXPANSION:,} nodes and characters: write the values out"
                )
            continue
        seen.add(id(node))
        if isinstance(node, (dict, list)):
            children = node.items() if isinstance(node, dict) else enumerate(node)
            pending.extend((node, k, v) for k, v in reversed(list(children)))


def _size(node: Any, sizes: dict[int, int]) -> int:
    """Nodes and characters `node` has once every alias in it is copied out (memoised)."""
    if isinstance(node, str):
        return 1 + len(node)
    if not isinstance(node, (dict, list)):
        return 1
    if id(node) not in sizes:
        sizes[id(node)] = 1  # a node inside itself counts once, not forever
        children = node.values() if isinstance(node, dict) else node
        sizes[id(node)] = 1 + sum(_size(child, sizes) for child in children)
    return sizes[id(node)]


def _position_in(parent: Any, key: Any) -> tuple[int, int]:
    """1-based line and column of the alias `parent[key]`: its key in a mapping, the list
    holding it in a list (ruamel gives an alias in a list the anchor's position)."""
    try:
        if isinstance(parent, CommentedMap):
            line, column = parent.lc.key(key)
        else:
            line, column = parent.lc.line, parent.lc.col
    except (AttributeError, KeyError, TypeError):
        return 1, 1
    return line + 1, column + 1


def plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalars as plain Python values."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def format_path(loc: tuple[Any, ...]) -> str:
    """A location as `subscribers[2].rules[0].any`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def position(document: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    """1-based line and column of the deepest node of `loc` present in the document."""
    node, line, column = document, 0, 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, column = node.lc.key(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, column = node.lc.item(part)
        else:
            break
        node = node[part]
    return line + 1, column + 1


def problem_line(source: str, document: Any, loc: tuple[Any, ...], message: str) -> str:
    """`file:line:column: path: message` for a location in the document."""
    line, column = position(document, loc)
    return f"{source}:{line}:{column}: {format_path(loc) or '(top level)'}: {message}"


def validation_problem(source: str, document: Any, error: Mapping[str, Any]) -> str:
    """One of pydantic's validation errors as a problem line, in plain words."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    return problem_line(source, document, tuple(error["loc"]), message)


def line_order(problem: str) -> tuple[int, int]:
    """Sort key putting problem lines in file order (those without a position first)."""
    parts = problem.split(":")
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return 0, 0
