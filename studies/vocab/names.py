"""The one message for a name that is not in a registry: what was given, the closest names, every choice.

``unknown workload 'digits' (did you mean digits_cnn or digits_mlp?); valid choices: …`` — a prefix
of a name, or a name a few letters off (``difflib``), is suggested before the full list.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = ["suggestions", "unknown_name"]


def suggestions(name: str, choices: Sequence[str]) -> list[str]:
    """The choices ``name`` most likely meant: those it begins (sorted), else the close ones (closest first)."""
    given = name.strip().lower()
    if not given:
        return []
    starting = [c for c in choices if c.lower().startswith(given) or given.startswith(c.lower())]
    return sorted(starting) or difflib.get_close_matches(given, list(choices), n=3, cutoff=0.75)


def unknown_name(kind: str, name: object, choices: Sequence[str]) -> str:
    """``unknown <kind> <name!r>[ (did you mean …?)]; valid choices: …``."""
    close = suggestions(name, choices) if isinstance(name, str) else []
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid choices: {', '.join(choices)}"
