"""One exception tree: every error a user can cause is a KitbridgeError.

Each error carries the fact (``message``) and, where there is one, the next step (``hint``).
The CLI prints ``error: <message> (<hint>)`` on one line and exits 1 (2 for UsageError).
"""

from __future__ import annotations


class KitbridgeError(Exception):
    """Base of every error kitbridge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(KitbridgeError):
    """The command line itself is wrong (bad option combination, malformed argument)."""

    exit_code = 2


class KitfileError(KitbridgeError):
    """A Kitfile cannot be read, does not match the schema, or breaks kit's rules."""


class ReferenceFormatError(KitbridgeError):
    """A reference string does not follow the OCI/Docker reference grammar."""


class NotFoundError(KitbridgeError):
    """A reference, blob or file that was asked for does not exist."""


class StoreError(KitbridgeError):
    """The local OCI store is unreadable, corrupt, or cannot be written."""


class DigestMismatchError(StoreError):
    """Bytes did not hash to the digest they were supposed to have."""


class PackError(KitbridgeError):
    """A context directory cannot be packed (missing path, escaping symlink, unreadable file)."""


class UnpackError(KitbridgeError):
    """A ModelKit cannot be unpacked into the target directory."""


class UnsafeArchiveError(UnpackError):
    """A layer holds an entry that would write outside the target or is not a plain file/dir."""


class FormatError(KitbridgeError):
    """A manifest or config blob is not a ModelKit / ModelPack artifact kitbridge can read."""


class RegistryError(KitbridgeError):
    """A registry could not be reached, or answered in a way kitbridge cannot use."""


class AuthenticationError(RegistryError):
    """The registry wants credentials (HTTP 401): none were given, or they were wrong."""


class PermissionDeniedError(RegistryError):
    """The registry knows who we are but refuses the operation (HTTP 403)."""


class TLSError(RegistryError):
    """The TLS handshake failed (unknown CA, wrong host name, plain HTTP server)."""


class SourceError(KitbridgeError):
    """An import source (a Hugging Face Hub, an MLflow server) could not be reached or read."""


class SourceAccessError(SourceError):
    """The source refuses us: a gated or private repo without a usable token, a run we may not read."""
