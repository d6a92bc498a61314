"""Registry credentials from the environment and Docker's ``config.json`` (``auths``, credential helpers).

Lookup order for a registry (first hit wins):

1. ``KITBRIDGE_REGISTRY_USER`` + ``KITBRIDGE_REGISTRY_PASSWORD`` (both set; they apply to every registry);
2. ``credHelpers[<registry>]`` -> ``docker-credential-<name> get``;
3. ``credsStore`` -> ``docker-credential-<name> get`` (a "not found" answer falls through);
4. ``auths[<registry>]``: ``auth`` (base64 ``user:pass``), ``username``/``password``, or ``identitytoken``.

Registry keys match the way docker matches them: an exact key first, then any key that names the
same host (``host:port``, ``https://host``, ``http://host/v1/``); ``docker.io``, ``index.docker.io``
and ``registry-1.docker.io`` are one registry, stored under ``https://index.docker.io/v1/``.
The config file is written atomically (temp file + rename, mode 0600) and keeps every key it
does not own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitbridge.errors import RegistryError

ENV_USER = "KITBRIDGE_REGISTRY_USER"
ENV_PASSWORD = "KITBRIDGE_REGISTRY_PASSWORD"
# The user name credential helpers (and Credentials) use to say "the secret is an identity token".
IDENTITY_TOKEN_USER = "<token>"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HELPER_TIMEOUT_S = 60
_SECRET_KEYS = ("auth", "username", "password", "identitytoken")


@dataclass(frozen=True)
class Credentials:
    """A user name and its secret (a password, or an identity token when ``username`` is ``<token>``)."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    __str__ = __repr__

    @property
    def identity_token(self) -> str | None:
        """The OAuth2 refresh token these credentials carry, if they are an identity token."""
        return self.password if self.username == IDENTITY_TOKEN_USER else None


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def normalize_registry(registry: str) -> str:
    """The host[:port] a registry name or config key stands for (``docker.io`` for Docker Hub)."""
    host = registry.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
            break
    host = host.split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB_HOSTS else host


def _config_key(registry: str) -> str:
    """The key docker writes for a registry (``https://index.docker.io/v1/`` for Docker Hub)."""
    host = normalize_registry(registry)
    return DOCKER_HUB_KEY if host == "docker.io" else host


def _find_key(mapping: dict[str, Any], registry: str) -> str | None:
    """The key of ``mapping`` that names ``registry``: an exact match first, then the same host."""
    if registry in mapping:
        return registry
    wanted = normalize_registry(registry)
    return next((k for k in mapping if normalize_registry(k) == wanted), None)


def _config_error(path: Path, what: str) -> RegistryError:
    return RegistryError(f"cannot read {path}: {what}", "fix the file, or move it away and log in again")


def _load_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise _config_error(path, e.strerror or str(e)) from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _config_error(path, f"invalid JSON at line {e.lineno}") from None
    if not isinstance(data, dict):
        raise _config_error(path, "the top level is not a JSON object")
    return data


def _section(config: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _config_error(path, f"'{name}' is not a JSON object")
    return value


def _helper_name(config: dict[str, Any], registry: str, path: Path) -> str | None:
    helpers = _section(config, "credHelpers", path)
    key = _find_key(helpers, registry)
    if key is not None and isinstance(helpers[key], str) and helpers[key]:
        return str(helpers[key])
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _helper_server_url(registry: str) -> str:
    return _config_key(registry)


def _run_helper(name: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{name}"
    try:
        return subprocess.run(
            [program, action],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise RegistryError(
            f"credential helper {program} is not installed",
            "install it, or remove it from credHelpers/credsStore in the Docker config",
        ) from None
    except subprocess.TimeoutExpired:
        raise RegistryError(
            f"credential helper {program} did not answer within {_HELPER_TIMEOUT_S} s",
            "unlock the keychain it uses, or remove it from the Docker config",
        ) from None
    except OSError as e:
        raise RegistryError(
            f"cannot run credential helper {program}: {e.strerror or e}", "check that it is executable"
        ) from None


def _helper_failure(name: str, action: str, proc: subprocess.CompletedProcess[str]) -> RegistryError:
    # Helpers report errors on stdout (the docker protocol) or stderr; keep the first line only.
    said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    detail = f": {said[0][:200]}" if said else ""
    return RegistryError(
        f"credential helper docker-credential-{name} {action} failed (exit {proc.returncode}){detail}",
        "check the helper works: run it by hand, or remove it from the Docker config",
    )


def _not_found(proc: subprocess.CompletedProcess[str]) -> bool:
    return "credentials not found" in (proc.stdout + proc.stderr).lower()


def _helper_get(name: str, registry: str) -> Credentials | None:
    proc = _run_helper(name, "get", _helper_server_url(registry))
    if proc.returncode != 0:
        if _not_found(proc):
            return None
        raise _helper_failure(name, "get", proc)
    try:
        answer = json.loads(proc.stdout)
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise RegistryError(
            f"credential helper docker-credential-{name} answered something that is not a JSON object",
            "check the helper works: run it by hand",
        )
    user, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    return Credentials(user, secret)


def _decode_auth(value: str, registry: str, path: Path) -> Credentials:
    try:
        decoded = base64.b64decode(value, validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _config_error(path, f"the 'auth' entry for {registry} is not base64 of user:password") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise _config_error(path, f"the 'auth' entry for {registry} is not base64 of user:password")
    return Credentials(user, password)


def _from_auths(config: dict[str, Any], registry: str, path: Path) -> Credentials | None:
    auths = _section(config, "auths", path)
    key = _find_key(auths, registry)
    entry = auths.get(key) if key is not None else None
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(IDENTITY_TOKEN_USER, token)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        return _decode_auth(auth, registry, path)
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and user and isinstance(password, str):
        return Credentials(user, password)
    return None


def _from_env() -> Credentials | None:
    user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
    if not user and not password:
        return None
    if not user or password is None:
        missing = ENV_PASSWORD if user else ENV_USER
        raise RegistryError(
            f"{missing} is not set but {ENV_USER if user else ENV_PASSWORD} is",
            f"set both {ENV_USER} and {ENV_PASSWORD}, or neither",
        )
    return Credentials(user, password)


def resolve_credentials(registry: str) -> Credentials | None:
    """The credentials to use for ``registry`` (see the module doc for the order), or None."""
    env = _from_env()
    if env is not None:
        return env
    path = docker_config_path()
    config = _load_config(path)
    helper = _helper_name(config, registry, path)
    if helper is not None:
        found = _helper_get(helper, registry)
        if found is not None:
            return found
    return _from_auths(config, registry, path)


def _write_config(path: Path, config: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``config`` as JSON, mode 0600 (the file holds secrets)."""
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_login(registry: str, username: str, password: str) -> str:
    """Store credentials for ``registry`` in its credential helper if one is configured, else in
    ``auths`` of the Docker config; return where they went (``docker-credential-<name>`` or the path).
    """
    path = docker_config_path()
    config = _load_config(path)
    helper = _helper_name(config, registry, path)
    if helper is not None:
        payload = json.dumps(
            {"ServerURL": _helper_server_url(registry), "Username": username, "Secret": password}
        )
        proc = _run_helper(helper, "store", payload)
        if proc.returncode != 0:
            raise _helper_failure(helper, "store", proc)
        # No plain-text copy may outlive a login that went to the helper.
        auths = _section(config, "auths", path)
        stale = [k for k in auths if normalize_registry(k) == normalize_registry(registry)]
        if any(isinstance(auths[k], dict) and any(s in auths[k] for s in _SECRET_KEYS) for k in stale):
            for k in stale:
                if isinstance(auths[k], dict):
                    for s in _SECRET_KEYS:
                        auths[k].pop(s, None)
            _write_config(path, config)
        return f"docker-credential-{helper}"
    auths = _section(config, "auths", path)
    config["auths"] = auths
    key = _find_key(auths, registry) or _config_key(registry)
    entry = auths.get(key)
    entry = dict(entry) if isinstance(entry, dict) else {}
    for s in _SECRET_KEYS:
        entry.pop(s, None)
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    auths[key] = entry
    _write_config(path, config)
    return str(path)


def remove_login(registry: str) -> bool:
    """Forget the credentials stored for ``registry`` (helper and ``auths``); True if any were there."""
    path = docker_config_path()
    config = _load_config(path)
    removed = False
    helper = _helper_name(config, registry, path)
    if helper is not None:
        proc = _run_helper(helper, "erase", _helper_server_url(registry))
        if proc.returncode == 0:
            removed = True
        elif not _not_found(proc):
            raise _helper_failure(helper, "erase", proc)
    auths = _section(config, "auths", path)
    keys = [k for k in auths if normalize_registry(k) == normalize_registry(registry)]
    if keys:
        for k in keys:
            del auths[k]
        _write_config(path, config)
        removed = True
    return removed
