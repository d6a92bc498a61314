"""kit's Kitfile rules (``KitFile.Validate``): paths, duplicates, part types, remote datasets, MCP servers."""

from __future__ import annotations

import re
from enum import Enum

from kitbridge.errors import KitfileError
from kitbridge.kitfile.model import MANIFEST_VERSION, Kitfile, clean_path, is_modelkit_reference

_PART_TYPE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PART_TYPE_MAX = 64


class KitfileValidationError(KitfileError):
    """A Kitfile breaks kit's rules; ``problems`` lists every one of them, sorted like kit sorts them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = sorted(problems)
        super().__init__(
            "invalid Kitfile: " + "; ".join(self.problems),
            "fix the Kitfile; paths are relative to the context directory",
        )

    @property
    def kit_text(self) -> str:
        """The message as kit prints it: a header line, then one ``  * problem`` line each."""
        return "errors while validating Kitfile: \n" + "\n".join(f"  * {p}" for p in self.problems)


class PathType(Enum):
    """What kit's ``GetPathType`` makes of a path string."""

    UNKNOWN = 0
    LOCAL = 1
    MODELKIT_REFERENCE = 2
    S3 = 3


def _valid_port(s: str) -> bool:
    return s == "" or (s.startswith(":") and all("0" <= c <= "9" for c in s[1:]))


def _escapes_ok(s: str, host: bool = False) -> bool:
    # url.unescape: every '%' starts two hex digits; in a host only %25 or bytes >= 0x80 may be escaped.
    i = 0
    while i < len(s):
        if s[i] == "%":
            pair = s[i + 1 : i + 3]
            if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
                return False
            if host and int(pair[0], 16) < 8 and pair != "25":
                return False
            i += 3
            continue
        if host and s[i].isascii() and not (s[i].isalnum() or s[i] in "-_.~!$&'()*+,;=:[]<>\""):
            return False
        i += 1
    return True


_USERINFO_OK = frozenset("-._:~!$&'()*+,;=%@")


def _url_scheme_host(raw: str) -> tuple[str, str] | None:
    """(scheme, host) as Go's ``url.Parse`` finds them; None when url.Parse returns an error."""
    rest, _, fragment = raw.partition("#")
    if any(c < " " or c == "\x7f" for c in rest):
        return None
    scheme = ""
    for i, c in enumerate(rest):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                break
            continue
        if c == ":":
            if i == 0:
                return None  # "missing protocol scheme"
            scheme, rest = rest[:i].lower(), rest[i + 1 :]
        break
    rest = rest[:-1] if rest.endswith("?") and rest.count("?") == 1 else rest.partition("?")[0]
    host = ""
    if not rest.startswith("/"):
        if scheme:
            return (scheme, "") if _escapes_ok(fragment) else None  # opaque
        if ":" in rest.partition("/")[0]:
            return None  # "first path segment in URL cannot contain colon"
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        userinfo, at, host = authority.rpartition("@")
        if not at:
            host = authority
        if host.startswith("["):
            close = host.rfind("]")
            if close < 0 or not _valid_port(host[close + 1 :]):
                return None
        elif ":" in host and not _valid_port(host[host.rfind(":") :]):
            return None
        if not _escapes_ok(host, host=True):
            return None
        if at and not (
            all(c.isalnum() or c in _USERINFO_OK for c in userinfo if c.isascii())
            and all(c.isascii() for c in userinfo)
            and _escapes_ok(userinfo)
        ):
            return None
    if not _escapes_ok(rest) or not _escapes_ok(fragment):
        return None
    return scheme, host


def path_type(path: str) -> tuple[PathType, str | None]:
    """kit's ``GetPathType``: the kind of path and, for unusable URLs, the error kit reports."""
    if is_modelkit_reference(path):
        return PathType.MODELKIT_REFERENCE, None
    parsed = _url_scheme_host(path)
    if parsed is None or parsed == ("", ""):
        return PathType.LOCAL, None  # what does not parse as a URL is a local path
    scheme = parsed[0]
    if scheme == "s3":
        return PathType.S3, None
    if scheme in ("http", "https"):
        return PathType.UNKNOWN, f"HTTP urls are not supported in paths ({path})"
    return PathType.UNKNOWN, f"unrecognized URL in path: {path}"


def _is_within(path: str, directory: str) -> bool:
    return directory == "." or path.startswith(directory + "/")


def kitfile_problems(kf: Kitfile) -> list[str]:
    """Every rule the Kitfile breaks, as kit words it (unsorted)."""
    errs: list[str] = []
    if kf.manifest_version != MANIFEST_VERSION:
        errs.append(f"invalid manifestVersion: expect {MANIFEST_VERSION} but got {kf.manifest_version}")

    # cleaned path -> the entries that use it, in Kitfile order
    paths: dict[str, list[str]] = {}
    # (cleaned path, source) of entries whose data is local, for the remote-dataset overlap check
    local: list[tuple[str, str]] = []

    def add_path(raw: str, source: str, is_local: bool = True) -> None:
        cleaned = clean_path(raw)
        paths.setdefault(cleaned, []).append(source)
        if is_local:
            local.append((cleaned, source))

    def check_local(raw: str, what: str) -> None:
        kind, err = path_type(raw)
        if err:
            errs.append(f"invalid path for {what} ({raw}): {err}")
        if kind is not PathType.LOCAL:
            errs.append(f"invalid path for {what} ({raw}): only local paths are permitted")

    if kf.model is not None:
        m = kf.model
        kind, err = path_type(m.path)
        add_path(m.path, f"model {m.name}", is_local=bool(m.path) and kind is PathType.LOCAL)
        if err:
            errs.append(f"invalid path for model: {err}")
        if kind not in (PathType.LOCAL, PathType.MODELKIT_REFERENCE):
            errs.append("invalid path for model: only local paths and ModelKit references are permitted")
        for part in m.parts:
            add_path(part.path, f"modelpart {part.name}")
            check_local(part.path, "model part")
            if part.type:
                if not _PART_TYPE_RE.fullmatch(part.type):
                    errs.append(
                        f"modelpart {part.name} has invalid type "
                        "(must be alphanumeric with dots, dashes, and underscores)"
                    )
                if len(part.type.encode()) > _PART_TYPE_MAX:
                    errs.append(
                        f"modelpart {part.name} type is too long "
                        f"(must be fewer than {_PART_TYPE_MAX} characters)"
                    )
    for i, code in enumerate(kf.code):
        add_path(code.path, f"code layer {i}")
        check_local(code.path, "code")

    remote: list[tuple[str, str]] = []
    for i, ds in enumerate(kf.datasets):
        source = f"dataset layer {i}"
        add_path(ds.path, source, is_local=not ds.remote_path)
        check_local(ds.path, "dataset")
        if ds.remote_path:
            remote.append((clean_path(ds.path), source))
            kind, err = path_type(ds.remote_path)
            if err:
                errs.append(f"invalid remote path for dataset ({ds.remote_path}): {err}")
            if kind not in (PathType.S3, PathType.MODELKIT_REFERENCE):
                errs.append(f"only S3 URLs are supported for remote dataset paths ({ds.remote_path})")
            if not ds.remote_hash and kind is not PathType.MODELKIT_REFERENCE:
                errs.append(f"remoteHash is required when remote dataset paths are used ({ds.remote_path})")
        elif ds.remote_hash:
            errs.append("remote hash is only applicable when remotePath is set")
    for i, doc in enumerate(kf.docs):
        add_path(doc.path, f"docs layer {i}")
        check_local(doc.path, "doc")
    for i, prompt in enumerate(kf.prompts):
        add_path(prompt.path, f"prompt layer {i}")
        check_local(prompt.path, "prompt")

    seen_names: set[str] = set()
    reported: set[str] = set()
    for server in kf.mcp_servers:
        add_path(server.path, f"mcpServer {server.name}")
        check_local(server.path, "mcpServer")
        if not server.name:
            errs.append(f"mcpServer with path {server.path} must have a name")
        elif server.name in seen_names and server.name not in reported:
            errs.append(f"duplicate mcpServer name {server.name}")
            reported.add(server.name)
        seen_names.add(server.name)
        # Go filepath.Ext of the raw path: "dir.mcpb/" has no extension.
        if not server.path.rsplit("/", 1)[-1].endswith(".mcpb"):
            errs.append(f"invalid path for mcpServer ({server.path}): path must point to a single .mcpb file")

    for cleaned, sources in paths.items():
        if len(sources) > 1:
            errs.append(f"{', '.join(sources[:-1])} and {sources[-1]} use the same path {cleaned}")
        if cleaned.startswith("/"):
            errs.append(f"absolute paths are not supported in a Kitfile (path {cleaned} in {sources[0]})")
        elif cleaned == ".." or cleaned.startswith("../"):
            errs.append(
                "paths outside the context directory are not supported in a Kitfile "
                f"(path {cleaned} in {sources[0]})"
            )

    for remote_path, remote_source in remote:
        for cleaned, source in local:
            if cleaned != remote_path and _is_within(cleaned, remote_path):
                errs.append(
                    f"{source} uses a path ({cleaned}) that is within the path for a remote dataset "
                    f"({remote_path} in {remote_source})"
                )
    return errs


def validate_kitfile(kf: Kitfile) -> None:
    """Apply kit's rules; raise one :class:`KitfileValidationError` listing every problem."""
    problems = kitfile_problems(kf)
    if problems:
        raise KitfileValidationError(problems)
