"""A bound on the work one YAML or JSON text may cost before anything builds it: nesting depth and
node count, aliases expanded.

``POST /specs/parse`` takes text from anyone. Without a bound, 50,000 YAML anchors cost 5 s of CPU
per request, and text nested 256 levels deep built a tree the response could not serialise (a 500).
``check_text_cost`` reads the text's event stream once (libyaml's parser where PyYAML has it) and
stops at the first limit crossed, so a refused text costs at most ``MAX_NODES`` events. Aliases count
as the nodes they stand for (an alias to a list of 10 counts 11), so an alias bomb is refused however
few characters it has. Study specs have about 50 nodes and 4 levels (``studies/examples``); the limits
leave room for long explicit lr lists and many arms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NODES", "TextTooCostly", "check_text_cost", "yaml_loader"]

MAX_DEPTH = 32
MAX_NODES = 2_000


class TextTooCostly(ValueError):
    """The text crosses a limit: ``reason`` says which, ``line`` where (1-based)."""

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(f"{reason} (line {line})")
        self.reason = reason
        self.line = line


@dataclass
class _Open:
    """A mapping or sequence being read: its anchor and its size so far, aliases expanded."""

    anchor: str | None
    size: int = 1


def yaml_loader() -> Any:
    """PyYAML's safe loader, libyaml's C implementation where installed (about 7× faster)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_text_cost(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """``TextTooCostly`` if ``text`` nests deeper than ``max_depth`` or holds more than ``max_nodes``
    nodes with its aliases expanded. Text that is not valid YAML passes: the parser that builds it
    reports the syntax error with its line."""
    import yaml

    stack: list[_Open] = []
    sizes: dict[str, int] = {}  # anchor → the size of the node it names
    total = 0
    try:
        for event in yaml.parse(text, Loader=yaml_loader()):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append(_Open(event.anchor))
                if len(stack) > max_depth:
                    raise TextTooCostly(f"nested too deeply (more than {max_depth} levels)", _line(event))
                added = 1
            elif isinstance(event, yaml.CollectionEndEvent):
                node = stack.pop()
                if node.anchor is not None:
                    sizes[node.anchor] = node.size
                if stack:
                    stack[-1].size += node.size
                continue
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                added = sizes.get(event.anchor or "", 1) if isinstance(event, yaml.AliasEvent) else 1
                if isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
                    sizes[event.anchor] = 1
                if stack:
                    stack[-1].size += added
            else:  # stream and document boundaries
                continue
            total += added
            if total > max_nodes:
                reason = f"too many fields (more than {max_nodes} values, aliases counted as what they repeat)"
                raise TextTooCostly(reason, _line(event))
    except yaml.YAMLError as exc:  # libyaml stops at 1,000 levels before its events reach ours
        mark = getattr(exc, "problem_mark", None)
        if "nesting depth" in str(exc) and mark is not None:
            raise TextTooCostly(f"nested too deeply (more than {max_depth} levels)", mark.line + 1) from None


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1
