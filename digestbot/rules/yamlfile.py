"""Rules stage, config files: YAML 1.2 with positions, so every problem names file:line:column."""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError


class YamlProblem(Exception):
    """A YAML syntax problem, already formatted as `file:line:column: YAML syntax: …`."""


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML 1.2 (`12:30` and `NO` stay strings; duplicate keys are errors)."""
    yaml = YAML(typ="rt")
    try:
        return yaml.load(StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise YamlProblem(f"{where}: YAML syntax: {problem}") from None
    except YAMLError as exc:
        raise YamlProblem(f"{source}: YAML syntax: {' '.join(str(exc).split())}") from None


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
