"""kit's unpack filter grammar: ``type1,type2[:name-or-path,…]``, repeatable, OR'ed together."""

from __future__ import annotations

from dataclasses import dataclass

from kitbridge.errors import UsageError
from kitbridge.kitfile import LayerEntry, clean_path

# Filter type word -> the Kitfile entry kinds it selects ("model" covers model parts).
_TYPES: dict[str, frozenset[str]] = {
    "kitfile": frozenset({"kitfile"}),
    "model": frozenset({"model", "modelpart"}),
    "datasets": frozenset({"dataset"}),
    "code": frozenset({"code"}),
    "docs": frozenset({"docs"}),
    "prompts": frozenset({"prompt"}),
    "mcpservers": frozenset({"mcpserver"}),
}
_ALIASES = {"dataset": "datasets", "doc": "docs", "prompt": "prompts", "mcpserver": "mcpservers"}


@dataclass(frozen=True)
class Filter:
    """One ``--filter``: a set of entry kinds, optionally narrowed to names or paths."""

    kinds: frozenset[str]
    names: frozenset[str] = frozenset()

    def selects(self, kind: str, name: str = "", path: str = "") -> bool:
        """True when an entry of ``kind`` with this name/path is selected by this filter."""
        if kind not in self.kinds:
            return False
        if not self.names or kind == "kitfile":
            return True
        return name in self.names or path in self.names or clean_path(path) in self.names


def parse_filter(spec: str) -> Filter:
    """Parse one filter; UsageError naming the bad part."""
    types_part, _, names_part = spec.partition(":")
    kinds: set[str] = set()
    for word in (w.strip().lower() for w in types_part.split(",")):
        word = _ALIASES.get(word, word)
        if word not in _TYPES:
            raise UsageError(
                f"invalid filter {spec!r}: unknown type {word!r}",
                f"types are {', '.join(_TYPES)}; e.g. --filter model,docs or --filter datasets:train",
            )
        kinds |= _TYPES[word]
    names = frozenset(n.strip() for n in names_part.split(",") if n.strip()) if names_part else frozenset()
    if names_part and not names:
        raise UsageError(f"invalid filter {spec!r}: no names after ':'", "e.g. --filter datasets:train")
    return Filter(frozenset(kinds), names)


class Selection:
    """The union of several filters; no filters selects everything (Kitfile included)."""

    def __init__(self, specs: list[str] | None = None) -> None:
        self.filters = [parse_filter(s) for s in specs or []]

    def wants_kitfile(self) -> bool:
        return not self.filters or any("kitfile" in f.kinds for f in self.filters)

    def wants(self, entry: LayerEntry) -> bool:
        return not self.filters or any(f.selects(entry.kind, entry.name, entry.path) for f in self.filters)
