"""sha256 digests: parsing, validating, and hashing while copying."""

from __future__ import annotations

import hashlib
import os
import re
from typing import BinaryIO

from kitbridge.errors import DigestMismatchError, ReferenceFormatError

# 1-8 MiB reads keep hashlib at its SHA-NI speed without holding much memory.
CHUNK = 4 * 1024 * 1024
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed ``sha256:<64 hex>`` digest, else raise."""
    if not _DIGEST_RE.match(digest):
        raise ReferenceFormatError(
            f"invalid digest {digest!r}", "digests look like sha256:<64 lowercase hex characters>"
        )
    return digest


def hex_of(digest: str) -> str:
    """The hex part of a validated digest."""
    return validate(digest).split(":", 1)[1]


def of_bytes(data: bytes) -> str:
    """The sha256 digest of in-memory bytes (manifests, configs: small by construction)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def of_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Stream a file through sha256; return (digest, size)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def of_stream(f: BinaryIO) -> tuple[str, int]:
    """Stream a file object through sha256; return (digest, size)."""
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def check(expected: str, actual: str, what: str) -> None:
    """Raise DigestMismatchError unless the two digests are equal."""
    if expected != actual:
        raise DigestMismatchError(
            f"{what}: digest {actual} does not match the expected {expected}",
            "the data is corrupt or was changed; fetch or pack it again",
        )
