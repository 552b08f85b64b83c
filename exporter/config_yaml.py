"""Read a YAML document and remember where every value was written.

``load_yaml`` returns the plain data plus a map from key path
(``("rbls", 2, "zone")``) to the 1-based line it was written on, so a problem
found later by validation can point at the line. Duplicate keys, which PyYAML
silently resolves to the last one, are reported; merge keys (``<<: *defaults``)
are not duplicates. Recursive aliases and alias bombs are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

PathKey = tuple[str | int, ...]

MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_NODE_VISITS = 100_000
"""More node visits than this (aliases expanding) is refused, not validated."""


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
    return tuple(
        part if isinstance(part, int) and not isinstance(part, bool) else str(part) for part in path
    )


def load_yaml(text: str) -> YamlDocument:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = YamlDocument(None)
        if node is not None:
            # Before constructing: construction rewrites merge keys in place.
            _Walk(document, loader).walk(node, (), ())
            document = YamlDocument(
                loader.construct_document(node), document.lines, document.duplicates
            )
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "invalid YAML"
        raise YamlSyntaxError(problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(str(error), None) from None
    finally:
        loader.dispose()
    return document


class _Walk:
    def __init__(self, document: YamlDocument, loader: yaml.SafeLoader) -> None:
        self.document = document
        self.loader = loader
        self.visits = 0

    def key_of(self, node: yaml.Node) -> str:
        """A mapping key as validation will name it: ``no`` is ``False``, ``1`` is ``1``."""
        if isinstance(node, yaml.ScalarNode):
            return str(self.loader.construct_object(node))
        return str(node.value)

    def walk(self, node: yaml.Node, path: PathKey, ancestors: tuple[int, ...]) -> None:
        line = node.start_mark.line + 1
        if id(node) in ancestors:
            raise YamlSyntaxError("a YAML alias refers to a node that contains it", line)
        self.visits += 1
        if self.visits > MAX_NODE_VISITS:
            raise YamlSyntaxError("too many YAML aliases: the document expands too much", line)
        self.document.lines.setdefault(path, line)
        inside = (*ancestors, id(node))
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.key_of(key_node)
                key_line = key_node.start_mark.line + 1
                if key in first_seen:
                    self.document.duplicates.append(((*path, key), key_line, first_seen[key]))
                    continue
                first_seen[key] = key_line
                self.document.lines[(*path, key)] = key_line
                self.walk(value_node, (*path, key), inside)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index), inside)
