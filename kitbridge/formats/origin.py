"""What an importer tells pack about the files beyond the files themselves (provenance, known digests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kitbridge.profile import ModelProfile


@dataclass(frozen=True)
class PackOrigin:
    """What an importer knows about the files being packed, beyond the files themselves."""

    source_url: str | None = None
    """Where the model came from (ModelPack ``descriptor.sourceURL``)."""
    revision: str | None = None
    """The source's immutable revision (ModelPack ``descriptor.revision``)."""
    profile: ModelProfile | None = None
    """The importer's profile (with the source's own metadata); None: profile the context."""
    digests: Mapping[str, str] = field(default_factory=dict)
    """Context-relative path -> sha256 the source published: a raw layer of it is not hashed again."""
    remote: Mapping[str, str] = field(default_factory=dict)
    """Context-relative path -> sha256 of files whose bytes are not here (the target registry has them).

    Each must be a raw layer of its own; the result is not tagged in the store (its blob is missing)
    and can only be pushed, to a registry that has the blob.
    """
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Extra manifest annotations (kitbridge's provenance: source, revision, options, version)."""
    file_mtime: str | None = None
    """RFC 3339 time for every ModelPack file-metadata annotation (the source commit's date), so the
    manifest does not depend on when the files were downloaded."""
