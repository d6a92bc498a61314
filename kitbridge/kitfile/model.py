"""The Kitfile as typed data: kit's ``KitFile`` struct, read strictly from YAML like ``KnownFields(true)``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from yaml.nodes import MappingNode, Node, SequenceNode

from kitbridge.errors import KitfileError
from kitbridge.kitfile import yaml12

KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
"""File names kit looks for in a context directory, in order."""

MANIFEST_VERSION = "1.0.0"


@dataclass(frozen=True)
class Package:
    """``package``: what the ModelKit is."""

    name: str = ""
    version: str = ""
    description: str = ""
    license: str = ""
    authors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelPart:
    """``model.parts[]``: a file or directory that belongs to the model (adapter, tokenizer, ...)."""

    name: str = ""
    path: str = ""
    license: str = ""
    type: str = ""
    digest: str = ""
    diff_id: str = ""


@dataclass(frozen=True)
class Model:
    """``model``: the model itself; ``path`` may also be a ModelKit reference."""

    name: str = ""
    path: str = ""
    license: str = ""
    framework: str = ""
    format: str = ""
    version: str = ""
    description: str = ""
    parts: list[ModelPart] = field(default_factory=list)
    parameters: Any = None
    digest: str = ""
    diff_id: str = ""


@dataclass(frozen=True)
class Code:
    """``code[]``: source code."""

    path: str = ""
    description: str = ""
    license: str = ""
    digest: str = ""
    diff_id: str = ""


@dataclass(frozen=True)
class DataSet:
    """``datasets[]``: data; with ``remote_path`` the data lives elsewhere and gets no layer."""

    name: str = ""
    path: str = ""
    remote_path: str = ""
    remote_hash: str = ""
    description: str = ""
    license: str = ""
    parameters: Any = None
    digest: str = ""
    diff_id: str = ""


@dataclass(frozen=True)
class Docs:
    """``docs[]``: documentation."""

    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""


@dataclass(frozen=True)
class Prompt:
    """``prompts[]``: prompt files for LLMs (packed as code layers with a prompt subtype)."""

    name: str = ""
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""


@dataclass(frozen=True)
class McpServer:
    """``mcpServers[]``: one MCP Bundle (``.mcpb``) file."""

    name: str = ""
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""


LAYER_KINDS = ("model", "modelpart", "code", "dataset", "docs", "prompt", "mcpserver")


_LAYER_INFO = ("digest", "diff_id")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def kit_fields(struct: Any) -> list[tuple[str, Any]]:
    """(YAML/JSON key, value) of a Kitfile struct in kit's Go field order; layer info left out.

    The dataclasses above declare their fields in kit's order, so the config JSON and the YAML
    dump are both written from this one list and cannot drift apart.
    """
    assert is_dataclass(struct)
    return [(_camel(f.name), getattr(struct, f.name)) for f in fields(struct) if f.name not in _LAYER_INFO]


@dataclass(frozen=True)
class LayerEntry:
    """A Kitfile entry that becomes a layer: its kind, raw path, position in its list and name."""

    kind: str
    path: str
    index: int
    name: str = ""

    @property
    def cleaned_path(self) -> str:
        """The path as ``org.cncf.model.filepath`` and the tar walk use it."""
        return clean_path(self.path)

    @property
    def location(self) -> str:
        """Where the entry sits in the Kitfile, e.g. ``model.parts[1]`` or ``datasets[0]``."""
        return {
            "model": "model",
            "modelpart": f"model.parts[{self.index}]",
            "code": f"code[{self.index}]",
            "dataset": f"datasets[{self.index}]",
            "docs": f"docs[{self.index}]",
            "prompt": f"prompts[{self.index}]",
            "mcpserver": f"mcpServers[{self.index}]",
        }[self.kind]


@dataclass(frozen=True)
class Kitfile:
    """A whole Kitfile (kit's ``KitFile``)."""

    manifest_version: str = ""
    package: Package = field(default_factory=Package)
    model: Model | None = None
    code: list[Code] = field(default_factory=list)
    datasets: list[DataSet] = field(default_factory=list)
    docs: list[Docs] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    mcp_servers: list[McpServer] = field(default_factory=list)

    def layer_entries(self) -> list[LayerEntry]:
        """Entries that become layers, in kit's manifest order.

        Order: model (when its path is local), parts, code, datasets (not remote ones), docs,
        prompts, mcpServers.
        """
        out: list[LayerEntry] = []
        m = self.model
        if m is not None:
            if m.path and not is_modelkit_reference(m.path):
                out.append(LayerEntry("model", m.path, 0, m.name))
            out += [LayerEntry("modelpart", p.path, i, p.name) for i, p in enumerate(m.parts)]
        out += [LayerEntry("code", c.path, i) for i, c in enumerate(self.code)]
        out += [
            LayerEntry("dataset", d.path, i, d.name) for i, d in enumerate(self.datasets) if not d.remote_path
        ]
        out += [LayerEntry("docs", d.path, i) for i, d in enumerate(self.docs)]
        out += [LayerEntry("prompt", p.path, i, p.name) for i, p in enumerate(self.prompts)]
        out += [LayerEntry("mcpserver", s.path, i, s.name) for i, s in enumerate(self.mcp_servers)]
        return out

    def layer_info(self) -> list[tuple[str, str]]:
        """(digest, diffId) of each entry of :meth:`layer_entries`, in the same order ("" when unset)."""
        return [(e.digest, e.diff_id) for e in self._entry_objects()]

    def with_layer_info(self, info: Sequence[tuple[str, str]]) -> Kitfile:
        """A copy with (digest, diffId) set on each :meth:`layer_entries` entry, in that order."""
        entries = self.layer_entries()
        if len(info) != len(entries):
            raise ValueError(f"{len(entries)} layer entries but {len(info)} (digest, diffId) pairs")
        by_entry = {(e.kind, e.index): pair for e, pair in zip(entries, info, strict=True)}

        def upd(kind: str, items: Sequence[_E]) -> list[_E]:
            out: list[_E] = []
            for i, item in enumerate(items):
                pair = by_entry.get((kind, i))
                out.append(item if pair is None else replace(item, digest=pair[0], diff_id=pair[1]))
            return out

        model = self.model
        if model is not None:
            model = upd("model", [model])[0]
            model = replace(model, parts=upd("modelpart", model.parts))
        return replace(
            self,
            model=model,
            code=upd("code", self.code),
            datasets=upd("dataset", self.datasets),
            docs=upd("docs", self.docs),
            prompts=upd("prompt", self.prompts),
            mcp_servers=upd("mcpserver", self.mcp_servers),
        )

    def _entry_objects(self) -> list[Model | ModelPart | Code | DataSet | Docs | Prompt | McpServer]:
        lists: dict[str, Sequence[Any]] = {
            "model": [self.model],
            "modelpart": self.model.parts if self.model else [],
            "code": self.code,
            "dataset": self.datasets,
            "docs": self.docs,
            "prompt": self.prompts,
            "mcpserver": self.mcp_servers,
        }
        return [lists[e.kind][e.index] for e in self.layer_entries()]


_E = TypeVar("_E", Model, ModelPart, Code, DataSet, Docs, Prompt, McpServer)


# --- paths and references ---------------------------------------------------------------------------------


def clean_path(p: str) -> str:
    """Go ``filepath.Clean`` on ``/``-separated paths; ``""`` becomes ``"."``."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(seg)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


_REPO_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_HOST_SAFE = frozenset("-_.~!$&'()*+,;=:[]<>\"")


def _is_digest(s: str) -> bool:
    # go-digest Parse: a known algorithm and its exact-length lowercase hex.
    algo, sep, hexpart = s.partition(":")
    size = _DIGEST_HEX.get(algo)
    return (
        bool(sep)
        and size is not None
        and len(hexpart) == size
        and re.fullmatch("[a-f0-9]+", hexpart) is not None
    )


def _valid_port(s: str) -> bool:
    return s == "" or (s.startswith(":") and all("0" <= c <= "9" for c in s[1:]))


def _is_valid_registry(reg: str) -> bool:
    # oras ValidateRegistry: url.ParseRequestURI("dummy://"+reg) must give back exactly reg as its host.
    if not reg or any(c < " " or c == "\x7f" for c in reg) or any(c in reg for c in "@/?%#"):
        return False
    if reg.startswith("["):
        close = reg.rfind("]")
        if close < 0 or not _valid_port(reg[close + 1 :]):
            return False
    elif ":" in reg and not _valid_port(reg[reg.rfind(":") :]):
        return False
    return all(not c.isascii() or c.isalnum() or c in _HOST_SAFE for c in reg)


def is_modelkit_reference(s: str) -> bool:
    """kit's ``IsModelKitReference``: contains ``:`` or ``@`` and parses as an OCI reference."""
    if ":" not in s and "@" not in s:
        return False
    if _is_digest(s):
        return True
    unprocessed = s.split(",")[0]
    registry = "localhost"
    first, slash, rest = unprocessed.partition("/")
    if slash and ("." in first or ":" in first):
        registry, unprocessed = first, rest
    tag: str | None = None
    digest: str | None = None
    if "@" in unprocessed:
        repo, _, digest = unprocessed.partition("@")
        repo = repo.partition(":")[0]
    elif ":" in unprocessed:
        repo, _, tag = unprocessed.partition(":")
    else:
        repo = unprocessed
    if repo.lower() != repo or re.search("[a-z0-9]", repo) is None:
        return False
    if not _is_valid_registry(registry) or _REPO_RE.fullmatch(repo) is None:
        return False
    if tag is not None:
        return _TAG_RE.fullmatch(tag) is not None
    if digest is not None:
        return _is_digest(digest)
    return True


# --- YAML -> model ----------------------------------------------------------------------------------------

_T = TypeVar("_T")
_Conv = Callable[[Node, str, str], Any]


def _str(node: Node, source: str, where: str) -> str:
    return yaml12.string_value(node, source, f"'{where}'")


def _any(node: Node, source: str, where: str) -> Any:
    return yaml12.build_value(node, source)


def _str_list(node: Node, source: str, where: str) -> list[str]:
    if yaml12.is_null(node):
        return []
    if not isinstance(node, SequenceNode):
        raise KitfileError(
            f"{source} line {yaml12.line_of(node)}: '{where}' must be a list of strings, "
            f"got {yaml12.kind_name(node)}",
            f"write it as a list, e.g. {where.rsplit('.', 1)[-1]}: [a, b]",
        )
    return [_str(item, source, f"{where}[{i}]") for i, item in enumerate(node.value)]


def _struct(node: Node, source: str, where: str, spec: dict[str, tuple[str, _Conv]]) -> dict[str, Any]:
    """Check a mapping against a struct's YAML keys and convert each value."""
    if yaml12.is_null(node):
        return {}
    if not isinstance(node, MappingNode):
        raise KitfileError(
            f"{source} line {yaml12.line_of(node)}: '{where}' must be a mapping, got {yaml12.kind_name(node)}"
        )
    yaml12.check_unique_keys(node, source)
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = yaml12.mapping_key(key_node, source)
        if key not in spec:
            place = f"in {where}" if where else "at the top level"
            raise KitfileError(
                f"{source} line {yaml12.line_of(key_node)}: unknown key {key!r} {place} "
                f"(known: {', '.join(spec)})",
                "check the spelling; keys are case-sensitive",
            )
        attr, conv = spec[key]
        out[attr] = conv(value_node, source, f"{where}.{key}" if where else key)
    return out


def _list_of(conv: Callable[[Node, str, str], _T]) -> Callable[[Node, str, str], list[_T]]:
    def parse(node: Node, source: str, where: str) -> list[_T]:
        if yaml12.is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            raise KitfileError(
                f"{source} line {yaml12.line_of(node)}: '{where}' must be a list, "
                f"got {yaml12.kind_name(node)}",
                f"write each entry as '- path: ...' under {where}:",
            )
        return [conv(item, source, f"{where}[{i}]") for i, item in enumerate(node.value)]

    return parse


def _record(cls: type[_T], spec: dict[str, tuple[str, _Conv]]) -> Callable[[Node, str, str], _T]:
    def parse(node: Node, source: str, where: str) -> _T:
        return cls(**_struct(node, source, where, spec))

    return parse


_part = _record(
    ModelPart,
    {"name": ("name", _str), "path": ("path", _str), "license": ("license", _str), "type": ("type", _str)},
)
_model = _record(
    Model,
    {
        "name": ("name", _str),
        "path": ("path", _str),
        "license": ("license", _str),
        "framework": ("framework", _str),
        "format": ("format", _str),
        "version": ("version", _str),
        "description": ("description", _str),
        "parts": ("parts", _list_of(_part)),
        "parameters": ("parameters", _any),
    },
)


def _optional_model(node: Node, source: str, where: str) -> Model | None:
    return None if yaml12.is_null(node) else _model(node, source, where)


_TOP_SPEC: dict[str, tuple[str, _Conv]] = {
    "manifestVersion": ("manifest_version", _str),
    "package": (
        "package",
        _record(
            Package,
            {
                "name": ("name", _str),
                "version": ("version", _str),
                "description": ("description", _str),
                "license": ("license", _str),
                "authors": ("authors", _str_list),
            },
        ),
    ),
    "model": ("model", _optional_model),
    "code": (
        "code",
        _list_of(
            _record(
                Code,
                {"path": ("path", _str), "description": ("description", _str), "license": ("license", _str)},
            )
        ),
    ),
    "datasets": (
        "datasets",
        _list_of(
            _record(
                DataSet,
                {
                    "name": ("name", _str),
                    "path": ("path", _str),
                    "remotePath": ("remote_path", _str),
                    "remoteHash": ("remote_hash", _str),
                    "description": ("description", _str),
                    "license": ("license", _str),
                    "parameters": ("parameters", _any),
                },
            )
        ),
    ),
    "docs": ("docs", _list_of(_record(Docs, {"path": ("path", _str), "description": ("description", _str)}))),
    "prompts": (
        "prompts",
        _list_of(
            _record(
                Prompt, {"name": ("name", _str), "path": ("path", _str), "description": ("description", _str)}
            )
        ),
    ),
    "mcpServers": (
        "mcp_servers",
        _list_of(
            _record(
                McpServer,
                {"name": ("name", _str), "path": ("path", _str), "description": ("description", _str)},
            )
        ),
    ),
}


def load_kitfile(text: str | bytes, source: str = "Kitfile") -> Kitfile:
    """Parse Kitfile YAML strictly (unknown keys and wrong types are errors); kit's rules are not checked."""
    node = yaml12.compose(text, source)
    if node is None:
        raise KitfileError(f"{source} is empty", "a Kitfile needs at least 'manifestVersion: 1.0.0'")
    return Kitfile(**_struct(node, source, "", _TOP_SPEC))


def find_kitfile(directory: str | os.PathLike[str]) -> Path:
    """The Kitfile of a context directory (``Kitfile``, ``kitfile`` or ``.kitfile``, in that order)."""
    d = Path(directory)
    for name in KITFILE_NAMES:
        candidate = d / name
        if candidate.is_file():
            return candidate
    raise KitfileError(
        f"no Kitfile in {d} (looked for {', '.join(KITFILE_NAMES)})",
        "create one, or point at the file with -f",
    )


def read_kitfile(path: str | os.PathLike[str]) -> Kitfile:
    """Read a Kitfile from a file, or from a context directory (see :func:`find_kitfile`)."""
    p = Path(path)
    if p.is_dir():
        p = find_kitfile(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise KitfileError(f"Kitfile {p} does not exist", "check the path") from None
    except OSError as e:
        raise KitfileError(f"cannot read Kitfile {p}: {e.strerror}") from None
    return load_kitfile(data, str(p))
