"""OCI/Docker image references (``[registry/]repo[:tag][@sha256:…]``) as kit reads them."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from kitbridge.errors import ReferenceFormatError

DEFAULT_REGISTRY = "localhost"
DEFAULT_TAG = "latest"
# distribution/reference limits the whole name (registry + "/" + repository) to 255 characters.
MAX_NAME_LENGTH = 255

_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
# One repository path component, as the OCI distribution spec defines it.
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_GRAMMAR = "references look like [registry/]repository[:tag][@sha256:<64 hex>], e.g. myorg/mymodel:1"


def _fail(ref: str, what: str, hint: str = _GRAMMAR) -> ReferenceFormatError:
    return ReferenceFormatError(f"invalid reference {ref!r}: {what}", hint)


def _check_digest(ref: str, digest: str) -> None:
    if _DIGEST_RE.fullmatch(digest):
        return
    algorithm = digest.split(":", 1)[0] if ":" in digest else ""
    if algorithm and algorithm != "sha256":
        raise _fail(
            ref, f"unsupported digest algorithm {algorithm!r}", "kitbridge addresses content by sha256"
        )
    raise _fail(ref, f"bad digest {digest!r}", "a digest is sha256: followed by 64 lowercase hex characters")


def _check_tag(ref: str, tag: str) -> None:
    if not tag:
        raise _fail(ref, "empty tag after ':'", "drop the ':' or give a tag, e.g. :1")
    if not _TAG_RE.fullmatch(tag):
        raise _fail(
            ref,
            f"bad tag {tag!r}",
            "a tag is 1-128 letters, digits, '_', '.' or '-' and does not start with '.' or '-'",
        )


def _check_registry(ref: str, registry: str) -> None:
    if not _REGISTRY_RE.fullmatch(registry):
        raise _fail(
            ref, f"bad registry host {registry!r}", "a registry is a host name or IP, with an optional :port"
        )


def _check_repository(ref: str, repository: str) -> None:
    if not repository:
        raise _fail(ref, "missing repository name")
    for component in repository.split("/"):
        if not component:
            raise _fail(ref, f"empty path component in repository {repository!r}", "remove the extra '/'")
        if _COMPONENT_RE.fullmatch(component):
            continue
        if _COMPONENT_RE.fullmatch(component.lower()):
            raise _fail(
                ref, f"repository {repository!r} must be lowercase", f"use {repository.lower()!r} instead"
            )
        raise _fail(
            ref,
            f"bad repository path component {component!r}",
            "repository components are lowercase letters and digits, separated by '.', '_', '__' or '-'",
        )


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``digest`` (when present) wins over ``tag`` for resolution."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        shown = self.name
        if self.digest is not None:
            _check_digest(shown, self.digest)
        if self.tag is not None:
            _check_tag(shown, self.tag)
        if self.is_bare_digest:
            return
        if self.tag is None and self.digest is None:
            raise _fail(
                shown, "a reference needs a tag or a digest", "use Reference.parse(), which adds :latest"
            )
        _check_registry(shown, self.registry)
        _check_repository(shown, self.repository)
        if len(self.repo_name) > MAX_NAME_LENGTH:
            raise _fail(
                shown,
                f"name is {len(self.repo_name)} characters long",
                f"registry/repository must be at most {MAX_NAME_LENGTH} characters",
            )

    @classmethod
    def parse(cls, s: str) -> Reference:
        """Parse ``[registry/]repo[:tag][@sha256:…]`` or a bare ``sha256:…`` digest."""
        if not s:
            raise _fail(s, "empty reference")
        if _DIGEST_RE.fullmatch(s):
            return cls(DEFAULT_REGISTRY, "", None, s)
        if any(c.isspace() for c in s):
            raise _fail(s, "contains whitespace")
        rest, digest = s, None
        if "@" in s:
            rest, digest = s.split("@", 1)
            if "@" in digest:
                raise _fail(s, "more than one '@'")
            if not rest:
                raise _fail(s, "missing repository before '@'", "write repo@sha256:… or just sha256:…")
            _check_digest(s, digest)
        tag = None
        colon, slash = rest.rfind(":"), rest.rfind("/")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            _check_tag(s, tag)
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == DEFAULT_REGISTRY):
            registry, repository = first, remainder
            _check_registry(s, registry)
        else:
            registry, repository = DEFAULT_REGISTRY, rest
        _check_repository(s, repository)
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, repository, tag, digest)

    @property
    def is_bare_digest(self) -> bool:
        """True for a bare ``sha256:…`` reference (no repository; resolves by digest only)."""
        return self.repository == "" and self.digest is not None and self.tag is None

    @property
    def repo_name(self) -> str:
        """``registry/repository`` (empty for a bare digest)."""
        return "" if self.is_bare_digest else f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        """The canonical string: ``registry/repo:tag``, ``registry/repo@digest`` or both."""
        if self.is_bare_digest:
            return self.digest or ""
        out = self.repo_name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def identifier(self) -> str:
        """What a registry's ``/manifests/<reference>`` takes: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def is_local(self) -> bool:
        """True when the registry is ``localhost`` (kit's marker for local-only names)."""
        return self.registry == DEFAULT_REGISTRY

    def with_tag(self, tag: str) -> Reference:
        """The same repository with another tag (and no digest)."""
        return dataclasses.replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """The same name pinned to ``digest`` (the tag is kept for display)."""
        return dataclasses.replace(self, digest=digest)

    def __str__(self) -> str:
        return self.name
