"""The one way the twin reads a YAML file it is given: bounded, strict, and clear when it is not.

Every file a user hands the twin (scenarios, facilities, studies) comes through `load_yaml`,
so none of them can make it read forever, fill memory, or pass a mistake silently:

- only regular files, at most `MAX_BYTES`; UTF-8, or an error naming the byte and line;
- a key given twice in one mapping is an error naming both lines (YAML would keep the last);
- aliases may share structure, but the document as expanded has at most `MAX_NODES` nodes
  (a "billion laughs" file is refused before anything walks it), nested at most `MAX_DEPTH`;
- every problem is a `ScenarioError` with a location, so `main()` exits 2 with one message.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from twin.errors import Problem, ScenarioError

MAX_BYTES = 4 * 1024 * 1024  # a 10,000-step campaign on a 20,000-device site is ~2 MiB
MAX_NODES = 1_000_000  # scalars, sequences and mappings, counting each alias use again
MAX_DEPTH = 64  # the deepest shipped file nests 8 levels
MERGE = "tag:yaml.org,2002:merge"


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


try:  # libyaml's event parser when PyYAML was built with it: 4x faster on a large file
    from yaml._yaml import CParser

    class _Base(Composer, CParser, SafeConstructor, Resolver):
        """libyaml parses into events; PyYAML's own composer (first in the MRO, so its
        compose_node, which we bound, is the one used) and safe constructor do the rest."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # pragma: no cover - PyYAML without libyaml

    class _Base(yaml.SafeLoader):  # type: ignore[no-redef]
        """PyYAML's pure-Python safe loader."""


class _Loader(_Base):
    """A safe loader with depth and duplicate-key checks while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self.shares = False  # an anchor was set: nodes may be shared, so sizes must be summed

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    f"nested deeper than {MAX_DEPTH} levels",
                    getattr(self.peek_event(), "start_mark", None),
                )
            node = super().compose_node(parent, index)
            if self.anchors:  # the composer forgets them at the document's end
                self.shares = True
            return node
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the constructor says so
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _Refused(
                    f"key {key!r} is given twice (lines {first} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_shape(root: Node | None) -> tuple[int, int]:
    """(nodes, depth) of the document with every alias expanded, computed without expanding it.

    Sizes saturate at MAX_NODES + 1 (the bound is all we need). An alias inside its own anchor
    (a recursive document) raises `_Refused`: no validator could walk it.
    """
    if root is None:
        return 0, 0
    shape: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()  # nodes whose children are still being sized: a cycle if met again
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:  # an explicit post-order: children are sized before their parent
        node, children_done = stack.pop()
        if children_done:
            kids = _children(node)
            size = 1 + sum(shape[id(k)][0] for k in kids)
            depth = 1 + max((shape[id(k)][1] for k in kids), default=0)
            shape[id(node)] = (min(size, MAX_NODES + 1), depth)
            open_.discard(id(node))
            continue
        if id(node) in shape:
            continue
        if id(node) in open_:
            raise _Refused(
                "an alias refers to the anchor it is inside (a recursive document)", node.start_mark
            )
        open_.add(id(node))
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in open_:
                raise _Refused(
                    "an alias refers to the anchor it is inside (a recursive document)",
                    kid.start_mark,
                )
            if id(kid) not in shape:
                stack.append((kid, False))
    return shape[id(root)]


def expanded_size(root: Node | None) -> int:
    """Nodes in the document with every alias expanded (saturating at MAX_NODES + 1)."""
    return expanded_shape(root)[0]


def read_text(path: Path, what: str = "file") -> str:
    """The text of a regular UTF-8 file of at most MAX_BYTES, or a ScenarioError saying why."""
    source = str(path)

    def refuse(message: str, where: str = "") -> ScenarioError:
        return ScenarioError([Problem(where, message)], source)

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise refuse(f"no such file: {path}") from None
    except ValueError:  # an embedded NUL byte
        raise refuse(f"not a valid path: {source!r}") from None
    except OSError as exc:
        raise refuse(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise refuse(f"{path} is a directory, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise refuse(f"{path} is not a regular file (a device, pipe or socket); give a {what}")
    if info.st_size > MAX_BYTES:
        raise refuse(f"{path} is {info.st_size:,} bytes; a {what} may have at most {MAX_BYTES:,}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:  # it grew while we looked
        raise refuse(f"{path} is over {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise refuse(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); save the file as UTF-8",
            f"line {line}",
        ) from None


def parse_yaml(text: str, source: str = "") -> Any:
    """Plain Python data from YAML text, under the bounds above."""
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ScenarioError([Problem(f"line {line}", "a NUL character is not YAML text")], source)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        # without anchors the document is a tree: as big as the file, as deep as composed
        size, depth = expanded_shape(root) if loader.shares else (0, 0)
        if size > MAX_NODES:
            raise _Refused(
                f"the document expands to over {MAX_NODES:,} values through its aliases "
                "(&anchor/*alias); write the repeated parts out or share less",
                root.start_mark,
            )
        if depth > MAX_DEPTH:
            raise _Refused(
                f"through its aliases the document nests deeper than {MAX_DEPTH} levels",
                root.start_mark,
            )
        return loader.construct_document(root)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ScenarioError(
            [Problem(f"line {line}", f"character U+{code:04X} is not allowed in YAML text")],
            source,
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise ScenarioError(
            [Problem(_where(exc.problem_mark), f"YAML syntax error: {exc.problem or exc}")], source
        ) from None
    except _Refused as exc:
        raise ScenarioError([Problem(_where(exc.problem_mark), exc.problem)], source) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem("", f"YAML: {exc}")], source) from None
    except RecursionError:
        raise ScenarioError([Problem("", "nested too deeply")], source) from None
    except (TypeError, ValueError) as exc:  # e.g. an unhashable key, a date out of range
        raise ScenarioError([Problem("", f"YAML: {exc}")], source) from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """Read and parse one YAML file the user gave: see the module's docstring for the bounds."""
    path = Path(path)
    return parse_yaml(read_text(path, what), str(path))
