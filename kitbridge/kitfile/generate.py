"""Kitfile generation: which files become the model, its parts, datasets, code, docs, prompts, MCP servers.

Without facts the layer assignment is kit's (``kit init``), which looks only at names and sizes:

* Root files one by one: ``README*`` and ``LICENSE*`` are docs; names with ``.prompt`` and
  ``AGENTS.md``/``CLAUDE.md``/``SKILL.md`` are prompts; weight suffixes (``.safetensors``, ``.gguf``,
  ``.onnx``, ``*pytorch_model*.bin``, ...) are model files; ``.json``/``.yaml``/``.xml``/``.txt`` are
  metadata; ``.md``/``.adoc``/``.html``/``.pdf`` docs; ``.tar``/``.zip``/``.parquet``/``.csv``
  datasets. Any other root file makes one catch-all code entry ``.``.
* Each top-level directory is one entry: ``docs/`` is docs, ``src/``, ``pkg/``, ``lib/``, ``build/``
  are code; otherwise the kinds of its files decide (metadata does not count): all datasets -> a
  dataset entry, all docs -> docs, all prompts -> prompts, all model files -> its files join the
  model; mixed, nested or unrecognised -> code. Directory entries end in ``/``.
* Model files: one -> ``model.path`` (named after its path without the extension); several -> the
  largest is the model when it is over 1.5x their mean size (a base model with small adapters),
  else the first in path order; the rest are parts. Metadata files then become parts when there
  is a model, datasets when there is none.

What kitbridge adds (none of it changes an assignment kit makes for the names kit knows):

* Sharded weights (``model-00001-of-00003.safetensors`` ...): the first shard is ``model.path``,
  every other shard is a part of its own, in order. One entry per shard keeps each shard one
  layer (and one raw blob whose digest is the file's sha256) instead of one tar of many GiB.
* Tokenizer files (``tokenizer.json``, ``tokenizer.model``, ``vocab.txt``, ...) are parts of type
  ``tokenizer``; ``config.json``, ``generation_config.json``, weight indexes and the like are parts
  of type ``config``; neither is ever picked as the main model file. A directory holding only such
  files joins the model instead of becoming code.
* ``*.py``/``*.ipynb`` are code entries, ``*.mcpb`` files are ``mcpServers`` entries (one per file,
  named after the path without ``.mcpb``), ``NOTICE``/``COPYING`` and model cards are docs,
  ``.kitignore`` is never an entry, and a few more weight names (``*.nemo``, ``*.mlmodel``,
  ``*flax_model*.msgpack``, ``*rust_model*.ot``, ``*openvino_model*.bin``, ``*adapter_model*.bin``).
* ``GenerationFacts`` (what a profiler found) fill the package and model metadata, and their
  per-file ``roles`` override the guess from the name.

Kit's two versions disagree on two details; kitbridge follows the newest kit for both: directory
entries end in ``/`` and entries keep path order within each section (kit <= 1.7 listed
``src``/``pkg``/``lib``/``build`` before other code directories). Kit <= 1.7 made any unrecognised root
file a catch-all ``.`` code entry; newer kit lists up to five of them one by one. kitbridge keeps the
single ``.`` entry: it is what both versions write for their own test cases, and one catch-all
layer cannot miss a file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from kitbridge.errors import KitfileError
from kitbridge.kitfile.dump import dump_kitfile
from kitbridge.kitfile.model import (
    KITFILE_NAMES,
    MANIFEST_VERSION,
    Code,
    DataSet,
    Docs,
    Kitfile,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
)
from kitbridge.kitfile.validate import validate_kitfile

Role = Literal["weights", "weight-config", "tokenizer", "dataset", "doc", "code", "prompt"]
"""What a file is for, as a profiler or an importer states it."""

ROLES: tuple[Role, ...] = get_args(Role)

PART_TYPE_TOKENIZER = "tokenizer"
PART_TYPE_CONFIG = "config"


class FileLike(Protocol):
    """A file to assign: a ``SourceFile`` of an importer's tree, or anything with these fields."""

    @property
    def path(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def role(self) -> str | None: ...


@runtime_checkable
class TreeLike(Protocol):
    """A file listing to generate from (an importer's ``SourceTree``)."""

    @property
    def files(self) -> Sequence[FileLike]: ...


@dataclass(frozen=True)
class GenerationFacts:
    """What is known about a model beyond its file names; a profiler fills it, every field optional."""

    description: str = ""
    """``package.description``."""
    license: str = ""
    """``package.license`` (SPDX)."""
    authors: tuple[str, ...] = ()
    version: str = ""
    """``package.version``."""
    model_name: str = ""
    model_description: str = ""
    framework: str = ""
    """``model.framework`` (``transformers``, ``pytorch``, ``llama.cpp``, ...)."""
    format: str = ""
    """``model.format`` (``safetensors``, ``gguf``, ``onnx``, ...)."""
    parameters: Mapping[str, Any] | None = None
    """``model.parameters``: free-form facts (architecture, parameter count, quantization, ...)."""
    roles: Mapping[str, Role] = field(default_factory=dict)
    """Relative file path -> role; overrides what the file name suggests."""


# --- file kinds -----------------------------------------------------------------------------------------


class _Kind(IntEnum):
    MODEL = 0
    DATASET = 1
    CODE = 2
    DOCS = 3
    METADATA = 4
    PROMPT = 5
    MCP = 6
    UNKNOWN = 7


_WEIGHT_SUFFIXES = (
    ".safetensors",
    ".pkl",
    ".joblib",
    ".pth",
    ".pt",
    ".mar",
    ".pt2",
    ".ptl",
    ".pb",
    ".ckpt",
    ".tflite",
    ".tfrecords",
    ".npy",
    ".npz",
    ".keras",
    ".h5",
    ".caffemodel",
    ".pmml",
    ".coreml",
    ".gguf",
    ".ggml",
    ".ggmf",
    ".llamafile",
    ".onnx",
    # kitbridge's additions
    ".nemo",
    ".mlmodel",
)
_WEIGHT_PATTERNS = (
    "*pytorch_model*.bin",
    # kitbridge's additions: the other weight files Hugging Face repos carry
    "*flax_model*.msgpack",
    "*rust_model*.ot",
    "*openvino_model*.bin",
    "*adapter_model*.bin",
)
_DOCS_SUFFIXES = (".md", ".adoc", ".html", ".pdf")
_METADATA_SUFFIXES = (".json", ".yaml", ".xml", ".txt")
_DATASET_SUFFIXES = (".tar", ".zip", ".parquet", ".csv")
_CODE_SUFFIXES = (".py", ".ipynb")
_PROMPT_NAMES = frozenset({"agents.md", "skill.md", "claude.md"})
_MCP_SUFFIX = ".mcpb"

_TOKENIZER_NAMES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "chat_template.json",
        "chat_template.jinja",
    }
)
_TOKENIZER_PATTERNS = ("*.tiktoken", "tokenizer*.model", "tokenizer*.json")
_CONFIG_NAMES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "adapter_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "feature_extractor_config.json",
        "image_processor_config.json",
        "quantize_config.json",
        "quantization_config.json",
        "params.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    }
)
_CONFIG_PATTERNS = ("*.safetensors.index.json", "*.bin.index.json", "*.pth.index.json")

_DOC_DESCRIPTIONS = (
    ("readme", "Readme file"),
    ("license", "License file"),
    ("licence", "License file"),
    ("copying", "License file"),
    ("notice", "Notice file"),
    ("model_card", "Model card"),
    ("modelcard", "Model card"),
)

_DOCS_DIRS = frozenset({"docs"})
_CODE_DIRS = frozenset({"src", "pkg", "lib", "build"})
_NEVER_ENTRIES = frozenset({*KITFILE_NAMES, ".kitignore"})
"""Root names pack always ignores, so they never become an entry."""

_SHARD_RE = re.compile(r"-(\d+)-of-(\d+)(\.[^/]*)$")


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    kind: _Kind
    part_type: str = ""
    by_role: bool = False
    """The kind comes from a stated role, not from the name."""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _part_type_by_name(name: str) -> str:
    lower = name.lower()
    if lower in _TOKENIZER_NAMES or any(fnmatchcase(lower, p) for p in _TOKENIZER_PATTERNS):
        return PART_TYPE_TOKENIZER
    if lower in _CONFIG_NAMES or any(fnmatchcase(lower, p) for p in _CONFIG_PATTERNS):
        return PART_TYPE_CONFIG
    return ""


def _kind_by_name(path: str) -> tuple[_Kind, str]:
    """(kind, part type) from a file's name alone."""
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower in _PROMPT_NAMES or ".prompt" in lower:
        return _Kind.PROMPT, ""
    if name.endswith(_MCP_SUFFIX):
        return _Kind.MCP, ""
    part_type = _part_type_by_name(name)
    if part_type:
        return _Kind.METADATA, part_type
    if name.endswith(_WEIGHT_SUFFIXES) or any(fnmatchcase(name, p) for p in _WEIGHT_PATTERNS):
        return _Kind.MODEL, ""
    if name.endswith(_METADATA_SUFFIXES):
        return _Kind.METADATA, ""
    if name.endswith(_DOCS_SUFFIXES) or _doc_description(name) is not None:
        return _Kind.DOCS, ""
    if name.endswith(_DATASET_SUFFIXES):
        return _Kind.DATASET, ""
    if name.endswith(_CODE_SUFFIXES):
        return _Kind.CODE, ""
    return _Kind.UNKNOWN, ""


def _kind_by_role(role: str) -> tuple[_Kind, str] | None:
    if role == "weights":
        return _Kind.MODEL, ""
    if role == "weight-config":
        return _Kind.METADATA, PART_TYPE_CONFIG
    if role == "tokenizer":
        return _Kind.METADATA, PART_TYPE_TOKENIZER
    if role == "dataset":
        return _Kind.DATASET, ""
    if role == "doc":
        return _Kind.DOCS, ""
    if role == "code":
        return _Kind.CODE, ""
    if role == "prompt":
        return _Kind.PROMPT, ""
    return None  # an unknown role string from a plugin: fall back to the name


def _doc_description(name: str) -> str | None:
    lower = name.lower()
    for prefix, description in _DOC_DESCRIPTIONS:
        if lower.startswith(prefix):
            return description
    return None


# --- the directory listing ------------------------------------------------------------------------------


@dataclass
class _Dir:
    path: str
    files: list[_File] = field(default_factory=list)
    subdirs: dict[str, _Dir] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def entry_path(self) -> str:
        return self.path + "/"


def _check_path(path: str) -> str:
    rel = path.replace(os.sep, "/") if os.sep != "/" else path
    while rel.startswith("./"):
        rel = rel[2:]
    segments = rel.split("/")
    if not rel or rel.startswith("/") or any(s in ("", ".", "..") for s in segments):
        raise KitfileError(
            f"cannot generate a Kitfile entry for path {path!r}",
            "file paths must be relative to the context directory, '/'-separated, without '..'",
        )
    return rel


def _sort_key(path: str) -> list[bytes]:
    # Per directory by name bytes, depth first: the order of kit's os.ReadDir walk.
    return [os.fsencode(s) for s in path.split("/")]


def _listing(items: Iterable[str | FileLike], roles: Mapping[str, str]) -> _Dir:
    root = _Dir("")
    seen: set[str] = set()
    files: list[_File] = []
    for item in items:
        if isinstance(item, str):
            raw, size, hint = item, 0, None
        else:
            raw, size, hint = item.path, item.size, item.role
        path = _check_path(raw)
        if path in seen:
            continue
        seen.add(path)
        role = roles.get(path, hint)
        by_role = _kind_by_role(role) if role else None
        kind, part_type = by_role or _kind_by_name(path)
        files.append(_File(path, size, kind, part_type, by_role is not None))
    for f in sorted(files, key=lambda f: _sort_key(f.path)):
        node = root
        *dirs, _ = f.path.split("/")
        for d in dirs:
            child = node.subdirs.get(d)
            if child is None:
                child = node.subdirs[d] = _Dir(f"{node.path}/{d}" if node.path else d)
            node = child
        node.files.append(f)
    return root


# --- assignment -----------------------------------------------------------------------------------------


@dataclass
class _Sections:
    code: list[Code] = field(default_factory=list)
    datasets: list[DataSet] = field(default_factory=list)
    docs: list[Docs] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    mcp_servers: list[McpServer] = field(default_factory=list)

    def add_mcp(self, f: _File) -> None:
        self.mcp_servers.append(McpServer(name=f.path[: -len(_MCP_SUFFIX)], path=f.path))


def _add_dir(out: _Sections, d: _Dir) -> tuple[list[_File], list[_File]]:
    """One top-level directory; returns (model files, loose metadata files) for the caller to place."""
    if d.name in _DOCS_DIRS:
        out.docs.append(Docs(path=d.entry_path))
        return [], []
    if d.name in _CODE_DIRS:
        out.code.append(Code(path=d.entry_path))
        return [], []
    kinds = {f.kind for f in d.files if f.kind is not _Kind.METADATA}
    if d.subdirs:
        kinds.add(_Kind.UNKNOWN)  # nested directories are not looked into
    models = [f for f in d.files if f.kind is _Kind.MODEL]
    metadata = [f for f in d.files if f.kind is _Kind.METADATA]
    mcps = [f for f in d.files if f.kind is _Kind.MCP]
    if len(kinds) > 1:
        out.code.append(Code(path=d.entry_path))
        for f in mcps:
            out.add_mcp(f)
        return models, []
    kind = next(iter(kinds)) if kinds else _Kind.UNKNOWN
    if kind is _Kind.MODEL:
        return models + metadata, []
    if kind is _Kind.DATASET:
        out.datasets.append(DataSet(path=d.entry_path))
    elif kind is _Kind.DOCS:
        out.docs.append(Docs(path=d.entry_path))
    elif kind is _Kind.PROMPT:
        out.prompts.append(Prompt(path=d.entry_path))
    elif kind is _Kind.MCP:
        for f in mcps:
            out.add_mcp(f)
    elif kind is _Kind.UNKNOWN and metadata and all(f.part_type for f in metadata):
        return [], metadata  # only tokenizer/config files: they belong with the model
    else:
        out.code.append(Code(path=d.entry_path))
    return [], []


def _name_of(f: _File) -> str:
    stem, dot, _ = f.name.rpartition(".")
    return f.path[: len(f.path) - len(f.name)] + stem if dot and stem else f.path


def _main_model_file(files: list[_File]) -> tuple[_File, bool]:
    """The file for ``model.path`` and whether kit would name the model after it."""
    # A multimodal projector (mmproj-*.gguf) can be as big as the weights, but it is never the model.
    candidates = [f for f in files if not f.part_type and not f.name.lower().startswith("mmproj")]
    candidates = candidates or [f for f in files if not f.part_type] or files
    shards = [f for f in candidates if f.kind is _Kind.MODEL and _SHARD_RE.search(f.name)]
    if shards:
        # The first shard of the first shard set: lowest index, then path order.
        def shard_key(f: _File) -> tuple[str, str, str, int]:
            m = _SHARD_RE.search(f.name)
            assert m is not None
            prefix = f.path[: len(f.path) - len(m.group(0))]
            return (prefix, m.group(2), m.group(3), int(m.group(1)))

        first_set = shard_key(shards[0])[:3]
        return min((f for f in shards if shard_key(f)[:3] == first_set), key=shard_key), False
    if len(candidates) == 1:
        return candidates[0], True
    largest = candidates[0]
    for f in candidates:
        if f.size > largest.size:
            largest = f
    mean = sum(f.size for f in candidates) // len(candidates)
    if largest.size > mean + mean // 2:
        return largest, True
    return candidates[0], False


def _model(files: list[_File], loose_metadata: list[_File]) -> Model:
    main, named = _main_model_file(files)
    parts = [
        ModelPart(path=f.path, type=f.part_type) for f in [*files, *loose_metadata] if f.path != main.path
    ]
    return Model(name=_name_of(main) if named else "", path=main.path, parts=parts)


def _assign(root: _Dir) -> tuple[Model | None, _Sections]:
    out = _Sections()
    model_files: list[_File] = []
    metadata: list[_File] = []
    unknown = False
    for f in root.files:
        if f.name in _NEVER_ENTRIES:
            continue
        # kit: a root README*/LICENSE* is documentation whatever its extension (a stated role wins).
        description = None if f.by_role else _doc_description(f.name)
        if description is not None:
            out.docs.append(Docs(path=f.path, description=description))
            continue
        if f.kind is _Kind.MODEL:
            model_files.append(f)
        elif f.kind is _Kind.METADATA:
            metadata.append(f)
        elif f.kind is _Kind.DOCS:
            out.docs.append(Docs(path=f.path))
        elif f.kind is _Kind.DATASET:
            out.datasets.append(DataSet(path=f.path))
        elif f.kind is _Kind.PROMPT:
            out.prompts.append(Prompt(path=f.path))
        elif f.kind is _Kind.CODE:
            out.code.append(Code(path=f.path))
        elif f.kind is _Kind.MCP:
            out.add_mcp(f)
        else:
            unknown = True
    for d in root.subdirs.values():
        dir_models, dir_metadata = _add_dir(out, d)
        model_files += dir_models
        metadata += dir_metadata
    if unknown:
        out.code.append(Code(path="."))
    if model_files:
        return _model(model_files, metadata), out
    out.datasets += [DataSet(path=f.path) for f in metadata]
    return None, out


def generate_kitfile(
    tree: TreeLike | Iterable[str | FileLike],
    *,
    name: str,
    facts: GenerationFacts | None = None,
) -> Kitfile:
    """A Kitfile for the files of ``tree`` (a SourceTree, or relative file paths), validated.

    ``name`` is ``package.name``. Sizes decide which of several model files is the main one, so
    plain paths (size unknown) fall back to path order. See the module docstring for the rules.
    """
    facts = facts or GenerationFacts()
    items: Iterable[str | FileLike] = tree.files if isinstance(tree, TreeLike) else tree
    root = _listing(items, facts.roles)
    model, out = _assign(root)
    if model is not None:
        model = Model(
            name=facts.model_name or model.name,
            path=model.path,
            framework=facts.framework,
            format=facts.format,
            description=facts.model_description,
            parts=model.parts,
            parameters=dict(facts.parameters) if facts.parameters else None,
        )
    kf = Kitfile(
        manifest_version=MANIFEST_VERSION,
        package=Package(
            name=name,
            version=facts.version,
            description=facts.description,
            license=facts.license,
            authors=list(facts.authors),
        ),
        model=model,
        code=out.code,
        datasets=out.datasets,
        docs=out.docs,
        prompts=out.prompts,
        mcp_servers=out.mcp_servers,
    )
    validate_kitfile(kf)
    return kf


# --- writing --------------------------------------------------------------------------------------------


def write_kitfile(directory: str | os.PathLike[str], kitfile: Kitfile, *, force: bool = False) -> Path:
    """Write ``directory/Kitfile`` (validated, kit's YAML style); an existing one is kept unless ``force``.

    Any of ``Kitfile``, ``kitfile``, ``.kitfile`` counts as existing. The file is written to a
    temporary name and renamed, so a failure never leaves half a Kitfile behind.
    """
    d = Path(directory)
    if not d.is_dir():
        raise KitfileError(f"cannot write a Kitfile into {str(d)!r}: not a directory", "create it first")
    existing = [d / n for n in KITFILE_NAMES if (d / n).exists()]
    if existing and not force:
        raise KitfileError(
            f"{existing[0]} already exists", "keep it, or overwrite it with --force (force=True)"
        )
    validate_kitfile(kitfile)
    text = dump_kitfile(kitfile)
    target = d / KITFILE_NAMES[0]
    fd, tmp = tempfile.mkstemp(prefix=".Kitfile.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # A forced write replaces the other spellings too, so the context has exactly one Kitfile.
    for other in existing:
        if other.name != target.name and other.exists() and not os.path.samefile(other, target):
            other.unlink()
    return target


def weight_file_role(path: str) -> tuple[bool, str]:
    """(is it a weight file, its part type) for one file name, by the rules the generator uses."""
    name = PurePosixPath(path).name
    part_type = _part_type_by_name(name)
    if part_type:
        return False, part_type
    is_weight = name.endswith(_WEIGHT_SUFFIXES) or any(fnmatchcase(name, p) for p in _WEIGHT_PATTERNS)
    return is_weight, ""
