"""Read a YAML document and remember where every value was written.

``load_yaml`` returns the plain data plus a map from key path
(``("rbls", 2, "zone")``) to the 1-based line it was written on, so a problem
found later by validation can point at the line. Duplicate keys, which PyYAML
silently resolves to the last one, are reported as problems here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    duplicates: list[tuple[PathKey, int, int]] = field(default_factory=list)
    """(path of the repeated key, its line, the line it was first given on)."""

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(_normalise(path[:end]))
            if line is not None:
                return line
        return None


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _normalise(path: PathKey) -> PathKey:
    return tuple(part if isinstance(part, int) else str(part) for part in path)


def load_yaml(text: str) -> YamlDocument:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "invalid YAML"
        raise YamlSyntaxError(problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(str(error), None) from None
    finally:
        loader.dispose()
    document = YamlDocument(data)
    if node is not None:
        _walk(node, (), document)
    return document


def _walk(node: yaml.Node, path: PathKey, document: YamlDocument) -> None:
    document.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                document.duplicates.append(((*path, key), line, first_seen[key]))
                continue
            first_seen[key] = line
            document.lines[(*path, key)] = line
            _walk(value_node, (*path, key), document)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), document)
