"""KitOps ModelKits: (Kitfile + layer descriptors) <-> (manifest + config), byte for byte as kit writes them.

The manifest is Go's ``json.Marshal`` of image-spec v1.1 ``Manifest`` as kit 1.15 fills it:
``schemaVersion, mediaType, artifactType, config, layers, annotations``. Readers also accept
what kit <= 1.7 wrote (no mediaType, no artifactType, no layer annotations, ``"layers":null``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from kitbridge.errors import FormatError, UsageError
from kitbridge.formats import mediatypes as mt
from kitbridge.kitfile import Kitfile, kitfile_from_config_json
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.gojson import Struct, dumps

# The kit release whose on-disk format we reproduce; kit writes its own version in this annotation,
# and kit's readers compare it, so we write the version whose format our bytes follow.
KIT_FORMAT_VERSION = "1.15.0"

LayerFormat = Literal["tar", "raw"]
Compression = Literal["none", "gzip", "zstd"]

# Kitfile entry kind -> the <kind> part of kit's layer media type.
_KIND_TO_MEDIA = {
    "model": "model",
    "modelpart": "modelpart",
    "code": "code",
    "dataset": "dataset",
    "docs": "docs",
    "prompt": "code",  # kit stores prompts as code layers with a subtype annotation
    "mcpserver": "mcpb",
}
_MEDIA_TO_KIND = {"model", "modelpart", "code", "dataset", "docs", "mcpb"}


def layer_media_type(kind: str, layer_format: LayerFormat, compression: Compression) -> str:
    """kit's layer media type for a Kitfile entry kind, e.g. ``…modelkit.model.v1.tar+zstd``."""
    media_kind = _KIND_TO_MEDIA[kind]
    if media_kind == "mcpb":
        # MCP bundles are always stored verbatim so their digest covers the exact archive bytes.
        return f"{mt.KITOPS_LAYER_PREFIX}mcpb.v1.raw"
    if layer_format == "raw":
        if compression != "none":
            raise UsageError(
                "raw layers cannot be compressed", "use --layer-format tar with --compression, or drop it"
            )
        return f"{mt.KITOPS_LAYER_PREFIX}{media_kind}.v1.raw"
    suffix = {"none": "tar", "gzip": "tar+gzip", "zstd": "tar+zstd"}[compression]
    return f"{mt.KITOPS_LAYER_PREFIX}{media_kind}.v1.{suffix}"


@dataclass(frozen=True)
class LayerType:
    """What a KitOps layer media type says: the entry kind and how its bytes are encoded."""

    kind: str  # model, modelpart, code, dataset, docs, mcpb
    encoding: str  # tar, tar+gzip, tar+zstd, raw


def parse_layer_media_type(media_type: str) -> LayerType:
    """Split ``application/vnd.kitops.modelkit.<kind>.v1.<fmt>``; FormatError for anything else."""
    if media_type.startswith(mt.KITOPS_LAYER_PREFIX):
        rest = media_type[len(mt.KITOPS_LAYER_PREFIX) :]
        kind, sep, enc = rest.partition(".v1.")
        if sep and kind in _MEDIA_TO_KIND and enc in ("tar", "tar+gzip", "tar+zstd", "raw"):
            return LayerType(kind, enc)
    raise FormatError(f"unknown KitOps layer media type {media_type!r}")


def created_timestamp(source_date_epoch: str | None) -> str:
    """RFC 3339 UTC whole seconds; ``SOURCE_DATE_EPOCH`` makes it (and the manifest) reproducible."""
    if source_date_epoch:
        try:
            t = datetime.fromtimestamp(int(source_date_epoch), tz=timezone.utc)
        except ValueError as e:
            raise UsageError(
                f"SOURCE_DATE_EPOCH={source_date_epoch!r} is not a whole number of seconds",
                "set it to a Unix timestamp like 1700000000, or unset it",
            ) from e
    else:
        t = datetime.now(tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def config_bytes(kitfile_with_digests: Kitfile) -> bytes:
    """The config blob: the Kitfile as Go JSON, each layer entry carrying its digest and diffId."""
    from kitbridge.kitfile import kitfile_json

    return kitfile_json(kitfile_with_digests)


def manifest_bytes(config: Descriptor, layers: list[Descriptor], annotations: dict[str, str]) -> bytes:
    """The manifest exactly as kit 1.15 writes it (Go struct order, sorted annotation keys)."""
    doc = Struct(
        schemaVersion=2,
        mediaType=mt.OCI_MANIFEST,
        artifactType=mt.KITOPS_MANIFEST_ARTIFACT,
        config=config.to_struct(),
        layers=[layer.to_struct() for layer in layers],
    )
    if annotations:
        doc["annotations"] = dict(annotations)
    return dumps(doc)


@dataclass(frozen=True)
class Manifest:
    """A parsed OCI image manifest (any artifact type)."""

    config: Descriptor
    layers: list[Descriptor]
    media_type: str = mt.OCI_MANIFEST
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_kitops(self) -> bool:
        """True for ModelKits of any kit version (older ones have no artifactType)."""
        return self.config.media_type == mt.KITOPS_CONFIG


def parse_manifest(data: bytes, where: str = "manifest") -> Manifest:
    """Validate and read manifest JSON (the file/network edge); FormatError with the reason."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{where} is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise FormatError(f"{where} is not a JSON object")
    media_type = obj.get("mediaType") or mt.OCI_MANIFEST
    if media_type == mt.OCI_INDEX or "manifests" in obj:
        raise FormatError(f"{where} is an image index, not a manifest", "pick one of its manifests by digest")
    if obj.get("schemaVersion") != 2:
        raise FormatError(f"{where} has schemaVersion {obj.get('schemaVersion')!r}, expected 2")
    config = Descriptor.from_json(obj.get("config"), f"{where} config")
    raw_layers = obj.get("layers") or []
    if not isinstance(raw_layers, list):
        raise FormatError(f"{where} layers is not a list")
    layers = [Descriptor.from_json(x, f"{where} layer {i}") for i, x in enumerate(raw_layers)]
    ann = obj.get("annotations") or {}
    if not isinstance(ann, dict):
        raise FormatError(f"{where} annotations is not an object")
    at = obj.get("artifactType")
    return Manifest(
        config=config,
        layers=layers,
        media_type=str(media_type),
        artifact_type=at if isinstance(at, str) else None,
        annotations={str(k): str(v) for k, v in ann.items()},
    )


def read_config(data: bytes) -> Kitfile:
    """The Kitfile stored in a KitOps config blob (digests and diffIds included)."""
    return kitfile_from_config_json(data)
