"""OCI content descriptors (image-spec v1.1) as typed data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kitbridge.errors import FormatError
from kitbridge.oci import digest as digests
from kitbridge.oci.gojson import Struct


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob: media type, digest, size, optional annotations and artifactType."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_struct(self) -> Struct:
        """Fields in Go's image-spec struct order (mediaType, digest, size, annotations, artifactType)."""
        out = Struct(mediaType=self.media_type, digest=self.digest, size=self.size)
        if self.annotations:
            out["annotations"] = dict(self.annotations)  # a Go map: the encoder sorts its keys
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "descriptor") -> Descriptor:
        """Validate and build a descriptor from decoded JSON (the network/file edge)."""
        if not isinstance(obj, dict):
            raise FormatError(f"{where} is not a JSON object")
        mt, dg, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(dg, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"{where} needs a digest and a non-negative integer size")
        digests.validate(dg)
        ann = obj.get("annotations") or {}
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            raise FormatError(f"{where} annotations must map strings to strings")
        at = obj.get("artifactType")
        return cls(
            media_type=mt if isinstance(mt, str) else "",
            digest=dg,
            size=size,
            annotations=dict(ann),
            artifact_type=at if isinstance(at, str) else None,
        )
