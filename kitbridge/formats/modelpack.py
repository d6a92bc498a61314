"""CNCF ModelPack (model-spec v1): media types, config blob, manifest, and reading one back as a Kitfile.

Writing follows kit's mapping (model -> weight, parts -> weight.config, datasets -> dataset, code and
prompts -> code, docs -> doc) and keeps the Kitfile JSON in the ``ml.kitops.modelkit.kitfile`` manifest
annotation. Reading also accepts what older tools wrote: ``vnd.cnai``/``org.cnai`` names, snake_case
config keys, ``{}`` configs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from kitbridge.errors import FormatError, KitbridgeError
from kitbridge.formats import mediatypes as mt
from kitbridge.formats.kitops import Manifest
from kitbridge.formats.modelpack_schema import is_date_time, validate_config
from kitbridge.kitfile import (
    Code,
    DataSet,
    Docs,
    Kitfile,
    Model,
    ModelPart,
    Package,
    clean_path,
    kitfile_from_config_json,
)
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.gojson import Struct, dumps, format_time

if TYPE_CHECKING:
    from kitbridge.profile.profiler import ModelProfile

# --- names ------------------------------------------------------------------------------------------------

MANIFEST_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
CONFIG = "application/vnd.cncf.model.config.v1+json"
LAYER_PREFIX = "application/vnd.cncf.model."
LEGACY_MANIFEST_ARTIFACT = "application/vnd.cnai.model.manifest.v1+json"
LEGACY_CONFIG = "application/vnd.cnai.model.config.v1+json"
LEGACY_LAYER_PREFIX = "application/vnd.cnai.model."

ANN_FILEPATH = mt.ANN_FILEPATH
ANN_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANN_MEDIATYPE_UNTESTED = "org.cncf.model.file.mediatype.untested"
LEGACY_ANN_FILEPATH = "org.cnai.model.filepath"
LEGACY_ANN_FILE_METADATA = "org.cnai.model.file.metadata+json"
LEGACY_ANN_MEDIATYPE_UNTESTED = "org.cnai.model.file.mediatype.untested"
ANN_TITLE = "org.opencontainers.image.title"
ANN_KITFILE = "ml.kitops.modelkit.kitfile"
ANN_MODCTL_MODELFILE = "org.cncf.modctl.modelfile"

LAYER_KINDS = ("weight", "weight.config", "doc", "code", "dataset")
ENCODINGS = ("raw", "tar", "tar+gzip", "tar+zstd")
MODALITIES = ("text", "image", "audio", "video", "embedding", "other")

# Current and legacy spellings differ only in these prefixes (model-spec renamed cnai -> cncf in v0.0.7).
_RENAMES = (
    ("application/vnd.cncf.model.", "application/vnd.cnai.model."),
    ("org.cncf.model.", "org.cnai.model."),
    ("org.cncf.modctl.", "org.cnai.modctl."),
)


def to_legacy(name: str) -> str:
    """The ``vnd.cnai``/``org.cnai`` spelling of a current ModelPack media type or annotation key.

    Other names (and names already legacy) come back unchanged.
    """
    for current, legacy in _RENAMES:
        if name.startswith(current):
            return legacy + name[len(current) :]
    return name


def to_current(name: str) -> str:
    """The ``vnd.cncf``/``org.cncf`` spelling of a legacy ModelPack media type or annotation key."""
    for current, legacy in _RENAMES:
        if name.startswith(legacy):
            return current + name[len(legacy) :]
    return name


# Kitfile entry kind -> ModelPack layer kind (kit's mapping; prompts have no ModelPack kind of their own).
_ENTRY_TO_KIND = {
    "model": "weight",
    "modelpart": "weight.config",
    "dataset": "dataset",
    "code": "code",
    "prompt": "code",
    "docs": "doc",
    "mcpserver": "code",
}


def layer_media_type(entry_kind: str, encoding: str, legacy: bool = False) -> str:
    """The layer media type for a Kitfile entry kind (``model``, ``modelpart``, ``code``, …) and encoding.

    ``encoding`` is ``raw``, ``tar``, ``tar+gzip`` or ``tar+zstd``. MCP bundles are always ``code``
    ``raw`` so their digest covers the exact archive bytes.
    """
    kind = _ENTRY_TO_KIND.get(entry_kind)
    if kind is None:
        raise ValueError(f"unknown Kitfile entry kind {entry_kind!r}")
    if entry_kind == "mcpserver":
        encoding = "raw"
    if encoding not in ENCODINGS:
        raise FormatError(
            f"ModelPack has no layer encoding {encoding!r}",
            f"use one of {', '.join(ENCODINGS)} (raw layers cannot be compressed)",
        )
    prefix = LEGACY_LAYER_PREFIX if legacy else LAYER_PREFIX
    return f"{prefix}{kind}.v1.{encoding}"


def parse_layer_media_type(media_type: str) -> tuple[str, str]:
    """``(kind, encoding)`` of a current or legacy ModelPack layer media type; FormatError otherwise."""
    name = to_current(media_type)
    if name.startswith(LAYER_PREFIX):
        kind, sep, encoding = name[len(LAYER_PREFIX) :].partition(".v1.")
        if sep and kind in LAYER_KINDS and encoding in ENCODINGS:
            return kind, encoding
    raise FormatError(
        f"failed to parse media type {media_type!r}: not a ModelPack layer type",
        f"expected application/vnd.cncf.model.<{'|'.join(LAYER_KINDS)}>.v1.<{'|'.join(ENCODINGS)}>",
    )


def is_legacy_name(name: str) -> bool:
    """True for a ``vnd.cnai``/``org.cnai`` name (what Harbor <= 2.15 and CRI-O 1.33 understand)."""
    return to_current(name) != name


# --- per-file metadata annotation -------------------------------------------------------------------------

TYPEFLAG_REGULAR = 0
TYPEFLAG_DIR = 5


@dataclass(frozen=True)
class FileMetadata:
    """model-spec ``FileMetadata``: what ``org.cncf.model.file.metadata+json`` says about a layer's file."""

    name: str
    mode: int  # permission bits
    uid: int
    gid: int
    size: int
    mtime: str  # RFC 3339
    typeflag: int  # TYPEFLAG_REGULAR or TYPEFLAG_DIR (tar's '0'/'5' are read as these)

    def to_json(self) -> str:
        """Compact JSON in Go's field order: name, mode, uid, gid, size, mtime, typeflag."""
        doc = Struct(
            name=self.name,
            mode=self.mode,
            uid=self.uid,
            gid=self.gid,
            size=self.size,
            mtime=self.mtime,
            typeflag=self.typeflag,
        )
        return dumps(doc).decode("utf-8")


def _rfc3339(value: str | datetime | float, what: str) -> str:
    if isinstance(value, datetime):
        return format_time(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_time(datetime.fromtimestamp(value, tz=timezone.utc))
    if isinstance(value, str) and is_date_time(value):
        return value
    raise ValueError(f"{what} must be an RFC 3339 date-time, a datetime or Unix seconds, got {value!r}")


def file_metadata_json(
    name: str, mode: int, uid: int, gid: int, size: int, mtime: str | datetime | float, typeflag: int
) -> str:
    """The annotation value, compact JSON as Go marshals model-spec's ``FileMetadata``.

    ``mode`` keeps only the permission bits (Go ``FileMode.Perm``); ``mtime`` may be an RFC 3339
    string (written as given), a ``datetime`` or Unix seconds (both written in UTC like Go's ``time``).
    """
    if typeflag not in (TYPEFLAG_REGULAR, TYPEFLAG_DIR):
        raise ValueError(f"typeflag must be {TYPEFLAG_REGULAR} (file) or {TYPEFLAG_DIR} (directory)")
    return FileMetadata(
        name=name,
        mode=mode & 0o777,
        uid=uid,
        gid=gid,
        size=size,
        mtime=_rfc3339(mtime, "mtime"),
        typeflag=typeflag,
    ).to_json()


# Go's archive/tar spells these as bytes: '0' (48) and '\x00' are regular files, '5' (53) directories.
_TYPEFLAGS = {0: TYPEFLAG_REGULAR, 48: TYPEFLAG_REGULAR, 5: TYPEFLAG_DIR, 53: TYPEFLAG_DIR}


def parse_file_metadata(value: str) -> FileMetadata:
    """Read the annotation back (typeflag ``48`` — ASCII ``'0'`` — means a regular file too)."""
    try:
        obj = json.loads(value)
    except ValueError as e:
        raise FormatError(f"invalid {ANN_FILE_METADATA} annotation: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise FormatError(f"invalid {ANN_FILE_METADATA} annotation: not a JSON object")

    def num(key: str) -> int:
        v = obj.get(key, 0)
        if v is None:
            return 0
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise FormatError(
                f"invalid {ANN_FILE_METADATA} annotation: '{key}' must be a non-negative integer"
            )
        return v

    name, mtime = obj.get("name") or "", obj.get("mtime") or ""
    if not isinstance(name, str) or not isinstance(mtime, str):
        raise FormatError(f"invalid {ANN_FILE_METADATA} annotation: 'name' and 'mtime' must be strings")
    flag = num("typeflag")
    if flag not in _TYPEFLAGS:
        raise FormatError(
            f"invalid {ANN_FILE_METADATA} annotation: typeflag {flag} is neither a file nor a directory"
        )
    return FileMetadata(
        name=name,
        mode=num("mode"),
        uid=num("uid"),
        gid=num("gid"),
        size=num("size"),
        mtime=mtime,
        typeflag=_TYPEFLAGS[flag],
    )


# --- config -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDescriptor:
    """``descriptor``: who made the model and what it is."""

    created_at: str = ""
    authors: list[str] = field(default_factory=list)
    family: str = ""
    name: str = ""
    doc_url: str = ""
    source_url: str = ""
    datasets_url: list[str] = field(default_factory=list)
    version: str = ""
    revision: str = ""
    vendor: str = ""
    licenses: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class ModelCapabilities:
    """``config.capabilities``; ``None`` booleans are left out (Go ``*bool``)."""

    input_types: list[str] = field(default_factory=list)
    output_types: list[str] = field(default_factory=list)
    knowledge_cutoff: str = ""
    reasoning: bool | None = None
    tool_usage: bool | None = None
    reward: bool | None = None
    languages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelConfig:
    """``config``: how to run the model."""

    architecture: str = ""
    format: str = ""
    param_size: str = ""
    precision: str = ""
    quantization: str = ""
    capabilities: ModelCapabilities | None = None


# (JSON key, attribute) in model-spec's Go field order; every field there is omitempty.
_DESCRIPTOR_KEYS = (
    ("createdAt", "created_at"),
    ("authors", "authors"),
    ("family", "family"),
    ("name", "name"),
    ("docURL", "doc_url"),
    ("sourceURL", "source_url"),
    ("datasetsURL", "datasets_url"),
    ("version", "version"),
    ("revision", "revision"),
    ("vendor", "vendor"),
    ("licenses", "licenses"),
    ("title", "title"),
    ("description", "description"),
)
_CONFIG_KEYS = (
    ("architecture", "architecture"),
    ("format", "format"),
    ("paramSize", "param_size"),
    ("precision", "precision"),
    ("quantization", "quantization"),
)
_CAPABILITY_KEYS = (
    ("inputTypes", "input_types"),
    ("outputTypes", "output_types"),
    ("knowledgeCutoff", "knowledge_cutoff"),
    ("reasoning", "reasoning"),
    ("toolUsage", "tool_usage"),
    ("reward", "reward"),
    ("languages", "languages"),
)
# What model-spec <= v0.0.6 (and modctl of that time) called some keys.
_SNAKE_CASE = {
    "diffIds": "diff_ids",
    "inputTypes": "input_types",
    "outputTypes": "output_types",
    "knowledgeCutoff": "knowledge_cutoff",
    "toolUsage": "tool_usage",
}


def _omitempty(obj: Any, keys: Sequence[tuple[str, str]]) -> Struct:
    out = Struct()
    for key, attr in keys:
        value = getattr(obj, attr)
        if value is not None and value != "" and value != []:
            out[key] = value
    return out


@dataclass(frozen=True)
class ModelPackConfig:
    """The whole config blob (model-spec ``Model``)."""

    descriptor: ModelDescriptor = field(default_factory=ModelDescriptor)
    diff_ids: list[str] = field(default_factory=list)
    config: ModelConfig = field(default_factory=ModelConfig)
    fs_type: str = "layers"

    def to_struct(self) -> Struct:
        """Ordered JSON-ready data: ``descriptor, modelfs, config`` with Go's omitempty applied."""
        cfg = _omitempty(self.config, _CONFIG_KEYS)
        if self.config.capabilities is not None:
            cfg["capabilities"] = _omitempty(self.config.capabilities, _CAPABILITY_KEYS)
        return Struct(
            descriptor=_omitempty(self.descriptor, _DESCRIPTOR_KEYS),
            # diffIds has no omitempty: a nil slice is written as null.
            modelfs=Struct(type=self.fs_type, diffIds=list(self.diff_ids) or None),
            config=cfg,
        )

    def to_json(self) -> bytes:
        """Go ``json.Marshal`` of model-spec's ``Model`` (field order, omitempty)."""
        return dumps(self.to_struct())


# Hugging Face pipeline tag -> (inputTypes, outputTypes).
_TASK_MODALITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **dict.fromkeys(
        (
            "text-generation",
            "text2text-generation",
            "summarization",
            "translation",
            "question-answering",
            "table-question-answering",
            "fill-mask",
            "text-classification",
            "token-classification",
            "zero-shot-classification",
            "conversational",
        ),
        (("text",), ("text",)),
    ),
    **dict.fromkeys(("feature-extraction", "sentence-similarity"), (("text",), ("embedding",))),
    **dict.fromkeys(
        (
            "image-classification",
            "object-detection",
            "image-segmentation",
            "zero-shot-image-classification",
            "zero-shot-object-detection",
            "image-to-text",
            "depth-estimation",
        ),
        (("image",), ("text",)),
    ),
    **dict.fromkeys(
        ("image-text-to-text", "visual-question-answering", "document-question-answering"),
        (("text", "image"), ("text",)),
    ),
    "image-feature-extraction": (("image",), ("embedding",)),
    "text-to-image": (("text",), ("image",)),
    "image-to-image": (("image",), ("image",)),
    "automatic-speech-recognition": (("audio",), ("text",)),
    "audio-classification": (("audio",), ("text",)),
    "text-to-speech": (("text",), ("audio",)),
    "text-to-audio": (("text",), ("audio",)),
    "audio-to-audio": (("audio",), ("audio",)),
    "text-to-video": (("text",), ("video",)),
    "video-classification": (("video",), ("text",)),
}


def task_modalities(task: str) -> tuple[list[str], list[str]]:
    """``(inputTypes, outputTypes)`` for a Hugging Face pipeline tag; empty lists when unknown."""
    ins, outs = _TASK_MODALITIES.get(task.strip().lower(), ((), ()))
    return list(ins), list(outs)


_LANGUAGE = re.compile("[a-z]{2}")


def collect_licenses(kitfile: Kitfile) -> list[str]:
    """kit's ``collectLicenses``: package, model, parts, datasets and code licenses, sorted and unique."""
    found = [kitfile.package.license]
    if kitfile.model is not None:
        found.append(kitfile.model.license)
        found += [p.license for p in kitfile.model.parts]
    found += [d.license for d in kitfile.datasets]
    found += [c.license for c in kitfile.code]
    return sorted({x for x in found if x}, key=lambda s: s.encode())


def build_config(
    kitfile: Kitfile,
    diff_ids: list[str],
    *,
    profile: ModelProfile | None,
    created: str,
    source_url: str | None = None,
    revision: str | None = None,
) -> bytes:
    """The config blob for a Kitfile packed as ModelPack: kit's fields plus what the profile knows.

    The Kitfile wins where both say something; the profile fills the gaps. ``diff_ids`` are in
    manifest layer order. FormatError when the result would not pass the config schema.
    """
    pkg, model = kitfile.package, kitfile.model
    prof = profile
    licenses = collect_licenses(kitfile)
    if prof is not None and prof.license:
        licenses = sorted({*licenses, prof.license}, key=lambda s: s.encode())
    name = pkg.name or (model.name if model else "")
    descriptor = ModelDescriptor(
        created_at=created,
        authors=list(pkg.authors),
        family=prof.family if prof else "",
        name=name,
        source_url=source_url or "",
        # Remote datasets are exactly "URLs of datasets the model was trained upon".
        datasets_url=[d.remote_path for d in kitfile.datasets if d.remote_path],
        version=pkg.version or (model.version if model else ""),
        revision=revision or "",
        licenses=licenses,
        title=name or (prof.title if prof else ""),
        description=pkg.description
        or (model.description if model else "")
        or (prof.description if prof else ""),
    )
    capabilities = None
    if prof is not None:
        ins, outs = task_modalities(prof.task)
        langs: list[str] = []
        for lang in prof.languages:
            code = lang.strip().lower()
            if _LANGUAGE.fullmatch(code) and code not in langs:
                langs.append(code)
        if ins or outs or langs:
            capabilities = ModelCapabilities(input_types=ins, output_types=outs, languages=langs)
    config = ModelConfig(
        architecture=prof.architecture if prof else "",
        format=(model.format if model else "") or (prof.format if prof else ""),
        param_size=prof.param_size if prof else "",
        precision=prof.precision if prof else "",
        quantization=prof.quantization if prof else "",
        capabilities=capabilities,
    )
    if not diff_ids:
        raise FormatError(
            "a ModelPack needs at least one layer (modelfs.diffIds must not be empty)",
            "add a model, code, dataset or docs entry to the Kitfile",
        )
    data = ModelPackConfig(descriptor=descriptor, diff_ids=list(diff_ids), config=config).to_json()
    problems = validate_config(data)
    if problems:
        raise FormatError(f"the ModelPack config would be invalid: {'; '.join(problems)}")
    return data


# --- reading the config -----------------------------------------------------------------------------------

_T = TypeVar("_T")


def _bad(where: str, want: str, got: Any) -> FormatError:
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(got), "a number"
    )
    return FormatError(f"invalid ModelPack config: '{where}' must be {want}, got {kind}")


def _fields(obj: Any, where: str, keys: Sequence[str]) -> dict[str, Any]:
    """Go ``json.Unmarshal`` key matching: exact, else case-insensitive, else the legacy snake_case name."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise _bad(where or "config", "an object", obj)
    out: dict[str, Any] = {}
    for key in keys:
        if key in obj:
            out[key] = obj[key]
            continue
        match = next((k for k in obj if k.lower() == key.lower()), None)
        if match is None and key in _SNAKE_CASE:
            match = next((k for k in obj if k.lower() == _SNAKE_CASE[key]), None)
        if match is not None:
            out[key] = obj[match]
    return out


def _typed(value: Any, where: str, want: str, check: Callable[[Any], bool], default: _T) -> _T:
    if value is None:
        return default
    if not check(value):
        raise _bad(where, want, value)
    result: _T = value
    return result


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    return _typed(obj.get(key), f"{where}.{key}", "a string", lambda v: isinstance(v, str), "")


def _strs(obj: dict[str, Any], key: str, where: str) -> list[str]:
    value = obj.get(key)
    path = f"{where}.{key}"
    items: list[Any] = _typed(value, path, "an array of strings", lambda v: isinstance(v, list), [])
    return [
        _typed(v, f"{path}[{i}]", "a string", lambda x: isinstance(x, str), "") for i, v in enumerate(items)
    ]


def _bool(obj: dict[str, Any], key: str, where: str) -> bool | None:
    return _typed(obj.get(key), f"{where}.{key}", "a boolean", lambda v: isinstance(v, bool), None)


def parse_config(data: bytes) -> ModelPackConfig:
    """Read a config blob leniently (``{}``, snake_case keys, ``null``); FormatError for wrong types.

    Unknown keys are ignored like Go's ``json.Unmarshal`` does; :func:`validate_config` says whether
    the blob also follows the schema.
    """
    if not data.strip():
        return ModelPackConfig()
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"invalid ModelPack config: not valid JSON ({e})") from None
    top = _fields(doc, "", ("descriptor", "modelfs", "config"))
    d = _fields(top.get("descriptor"), "descriptor", [k for k, _ in _DESCRIPTOR_KEYS])
    lists = {"authors", "datasetsURL", "licenses"}
    values: dict[str, Any] = {
        attr: _strs(d, key, "descriptor") if key in lists else _str(d, key, "descriptor")
        for key, attr in _DESCRIPTOR_KEYS
    }
    descriptor = ModelDescriptor(**values)
    fs = _fields(top.get("modelfs"), "modelfs", ("type", "diffIds"))
    c = _fields(top.get("config"), "config", [*(k for k, _ in _CONFIG_KEYS), "capabilities"])
    capabilities = None
    if c.get("capabilities") is not None:
        cap = _fields(c["capabilities"], "config.capabilities", [k for k, _ in _CAPABILITY_KEYS])
        w = "config.capabilities"
        capabilities = ModelCapabilities(
            input_types=_strs(cap, "inputTypes", w),
            output_types=_strs(cap, "outputTypes", w),
            knowledge_cutoff=_str(cap, "knowledgeCutoff", w),
            reasoning=_bool(cap, "reasoning", w),
            tool_usage=_bool(cap, "toolUsage", w),
            reward=_bool(cap, "reward", w),
            languages=_strs(cap, "languages", w),
        )
    config = ModelConfig(
        **{attr: _str(c, key, "config") for key, attr in _CONFIG_KEYS}, capabilities=capabilities
    )
    return ModelPackConfig(
        descriptor=descriptor,
        diff_ids=_strs(fs, "diffIds", "modelfs"),
        config=config,
        fs_type=_str(fs, "type", "modelfs") or "layers",
    )


# --- manifest ---------------------------------------------------------------------------------------------


def _renamed(desc: Descriptor, rename: Callable[[str], str]) -> Descriptor:
    return replace(
        desc,
        media_type=rename(desc.media_type),
        annotations={rename(k): v for k, v in desc.annotations.items()},
    )


def manifest_bytes(
    config: Descriptor, layers: list[Descriptor], annotations: dict[str, str], *, legacy: bool = False
) -> bytes:
    """The manifest as Go writes image-spec's ``Manifest`` (Go field order, sorted annotation keys).

    With ``legacy`` every ModelPack name in it (artifactType, config and layer media types, layer
    annotation keys) is written in the ``vnd.cnai``/``org.cnai`` spelling; otherwise in the current one.
    """
    rename = to_legacy if legacy else to_current
    doc = Struct(
        schemaVersion=2,
        mediaType=mt.OCI_MANIFEST,
        artifactType=LEGACY_MANIFEST_ARTIFACT if legacy else MANIFEST_ARTIFACT,
        config=_renamed(config, rename).to_struct(),
        layers=[_renamed(layer, rename).to_struct() for layer in layers],
    )
    if annotations:
        doc["annotations"] = {rename(k): v for k, v in annotations.items()}
    return dumps(doc)


def is_modelpack(manifest: Manifest) -> bool:
    """True when the artifactType or the config media type is ModelPack's (current or legacy).

    Like kit, a manifest that is recognisably a ModelKit is not a ModelPack.
    """
    if manifest.is_kitops or manifest.artifact_type == mt.KITOPS_MANIFEST_ARTIFACT:
        return False
    return manifest.artifact_type in (
        MANIFEST_ARTIFACT,
        LEGACY_MANIFEST_ARTIFACT,
    ) or manifest.config.media_type in (CONFIG, LEGACY_CONFIG)


# --- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPackLayer:
    """One layer as a ModelPack reader sees it (names normalised to the current spelling)."""

    descriptor: Descriptor
    kind: str  # weight, weight.config, doc, code, dataset
    encoding: str  # raw, tar, tar+gzip, tar+zstd
    filepath: str  # "" when the layer has no filepath annotation
    metadata: FileMetadata | None = None
    untested: bool = False


@dataclass(frozen=True)
class ModelPackArtifact:
    """A ModelPack manifest with its parsed config."""

    manifest: Manifest
    config: ModelPackConfig
    layers: list[ModelPackLayer]
    legacy: bool  # written with vnd.cnai / org.cnai names
    problems: list[str] = field(default_factory=list)  # where the config breaks the current schema

    def kitfile(self) -> Kitfile:
        """The Kitfile kit would use for this artifact (see :func:`kitfile_for`)."""
        return kitfile_for(self.manifest, self.config)


def _annotation(annotations: dict[str, str], key: str) -> str:
    """An annotation under its current or its legacy key."""
    return annotations.get(key) or annotations.get(to_legacy(key)) or ""


def _not_modelpack(manifest: Manifest) -> FormatError:
    return FormatError(
        f"not a modelpack artifact: artifactType is {manifest.artifact_type or '(none)'}, "
        f"config mediaType is {manifest.config.media_type or '(none)'}",
        f"a ModelPack has artifactType {MANIFEST_ARTIFACT} or config mediaType {CONFIG}",
    )


def read_modelpack(manifest: Manifest, config_bytes: bytes) -> ModelPackArtifact:
    """Check that ``manifest`` is a ModelPack and parse its config and layers; FormatError otherwise."""
    if not is_modelpack(manifest):
        raise _not_modelpack(manifest)
    config = parse_config(config_bytes)
    layers: list[ModelPackLayer] = []
    for i, desc in enumerate(manifest.layers):
        try:
            kind, encoding = parse_layer_media_type(desc.media_type)
        except FormatError as e:
            raise FormatError(f"layer {i} ({desc.digest}): {e.message}", e.hint) from None
        meta_json = _annotation(desc.annotations, ANN_FILE_METADATA)
        layers.append(
            ModelPackLayer(
                descriptor=desc,
                kind=kind,
                encoding=encoding,
                filepath=_annotation(desc.annotations, ANN_FILEPATH),
                metadata=parse_file_metadata(meta_json) if meta_json else None,
                untested=_annotation(desc.annotations, ANN_MEDIATYPE_UNTESTED) == "true",
            )
        )
    names = [manifest.artifact_type or "", manifest.config.media_type]
    names += [d.media_type for d in manifest.layers]
    names += [k for d in manifest.layers for k in d.annotations]
    return ModelPackArtifact(
        manifest=manifest,
        config=config,
        layers=layers,
        legacy=any(is_legacy_name(n) for n in names),
        problems=validate_config(config_bytes) if config_bytes.strip() else ["config blob is empty"],
    )


def _diff_ids_for(manifest: Manifest, config: ModelPackConfig | None) -> list[str]:
    """The diffId of each manifest layer, or "" each when the config has none (``{}``, legacy ``null``)."""
    diff_ids = config.diff_ids if config is not None else []
    if not diff_ids:
        return [""] * len(manifest.layers)
    if len(diff_ids) != len(manifest.layers):
        raise FormatError(
            f"invalid ModelPack config: number of layers ({len(manifest.layers)}) "
            f"does not match diffIds ({len(diff_ids)})",
            "the config's modelfs.diffIds must list one diffId per manifest layer, in order",
        )
    return list(diff_ids)


def _kitfile_from_annotation(manifest: Manifest, text: str, diff_ids: list[str]) -> Kitfile:
    try:
        kitfile = kitfile_from_config_json(text.encode("utf-8"))
    except KitbridgeError as e:
        raise FormatError(f"invalid Kitfile in manifest annotation {ANN_KITFILE}: {e.message}") from None
    entries = kitfile.layer_entries()
    if any(digest for digest, _ in kitfile.layer_info()) or len(entries) != len(manifest.layers):
        return kitfile
    # No layer info in the annotation: pair entries with layers by path, else by position.
    by_path: dict[str, int] = {}
    for i, desc in enumerate(manifest.layers):
        path = _annotation(desc.annotations, ANN_FILEPATH)
        if path:
            by_path.setdefault(clean_path(path), i)
    order = [by_path.get(e.cleaned_path) for e in entries]
    if None in order or len(set(order)) != len(order):
        order = list(range(len(entries)))
    return kitfile.with_layer_info([(manifest.layers[i].digest, diff_ids[i]) for i in order if i is not None])


def kitfile_for(manifest: Manifest, config: ModelPackConfig | None = None) -> Kitfile:
    """The Kitfile from the ``ml.kitops.modelkit.kitfile`` annotation, else one rebuilt from the layers.

    Rebuilding follows kit's ``GenerateKitfileForModelPack``: the first weight layer is the model,
    later weights and weight.config layers are its parts, then docs, code and datasets by kind, each
    with the layer's digest and (when ``config`` lists them) diffId.
    """
    if not is_modelpack(manifest):
        raise _not_modelpack(manifest)
    diff_ids = _diff_ids_for(manifest, config)
    annotated = _annotation(manifest.annotations, ANN_KITFILE)
    if annotated:
        return _kitfile_from_annotation(manifest, annotated, diff_ids)

    model = Model()
    parts: list[ModelPart] = []
    code: list[Code] = []
    datasets: list[DataSet] = []
    docs: list[Docs] = []
    for i, desc in enumerate(manifest.layers):
        path = _annotation(desc.annotations, ANN_FILEPATH)
        if not path:
            raise FormatError(
                f"unknown file path for layer {i} ({desc.digest}): no {ANN_FILEPATH} annotation",
                "kitbridge needs each layer's file path to rebuild a Kitfile",
            )
        kind, _ = parse_layer_media_type(desc.media_type)
        digest, diff_id = desc.digest, diff_ids[i]
        if kind == "weight" and not model.path:
            model = replace(model, path=path, digest=digest, diff_id=diff_id)
        elif kind in ("weight", "weight.config"):
            parts.append(ModelPart(path=path, digest=digest, diff_id=diff_id))
        elif kind == "code":
            code.append(Code(path=path, digest=digest, diff_id=diff_id))
        elif kind == "dataset":
            datasets.append(DataSet(path=path, digest=digest, diff_id=diff_id))
        else:
            docs.append(Docs(path=path, digest=digest, diff_id=diff_id))
    return Kitfile(
        manifest_version="1.0.0",
        package=Package(),
        model=replace(model, parts=parts),
        code=code,
        datasets=datasets,
        docs=docs,
    )
