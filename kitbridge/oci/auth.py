"""Registry authentication: ``WWW-Authenticate`` challenges, the Basic scheme and the Bearer token flow.

A registry answers 401 with a challenge. ``Basic`` wants ``Authorization: Basic base64(user:pass)``
on every request. ``Bearer`` names a token service (``realm``, ``service``, ``scope``): we GET a
token there (with Basic credentials when we have some, anonymously otherwise; an identity token is
an OAuth2 refresh token and is POSTed as ``grant_type=refresh_token``) and send
``Authorization: Bearer <token>`` until ``expires_in`` runs out. Once a registry has challenged us,
:meth:`Authenticator.header` authorizes later requests up front (fetching a token for a new scope
before the request), so a streamed upload body is never sent only to be refused.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from kitbridge.errors import AuthenticationError, PermissionDeniedError, RegistryError
from kitbridge.oci.credentials import ENV_PASSWORD, ENV_USER, Credentials

# The distribution token spec: a token without expires_in lasts 60 s.
DEFAULT_TOKEN_LIFETIME_S = 60
# Renew a token this long before it expires, so it does not run out on the way to the registry.
_EXPIRY_MARGIN_S = 10
_CLIENT_ID = "kitbridge"

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=\s*(?:,|$))")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: the scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter (for Bearer: the token service URL)."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` parameter of a Bearer challenge."""
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        """The scopes a Bearer challenge asks for (its ``scope`` parameter, space-separated)."""
        return self.params.get("scope", "").split()


def _skip_ws(header: str, pos: int) -> int:
    while pos < len(header) and header[pos] in " \t":
        pos += 1
    return pos


def _quoted(header: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; return (value, position after it)."""
    out: list[str] = []
    i = pos + 1
    while i < len(header):
        c = header[i]
        if c == "\\" and i + 1 < len(header):
            out.append(header[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return "".join(out), i  # unterminated: take what is there


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235) into its challenges, in order.

    Handles several challenges in one header, quoted values holding commas and escapes, unquoted
    values, and token68 forms; what cannot be parsed is skipped rather than guessed at.
    """
    challenges: list[Challenge] = []
    pos, n = 0, len(header)
    while pos < n:
        while pos < n and header[pos] in " \t,":
            pos += 1
        m = _TOKEN_RE.match(header, pos)
        if m is None:
            pos += 1  # not a scheme: skip the stray character
            continue
        scheme = m.group().lower()
        pos = _skip_ws(header, m.end())
        params: dict[str, str] = {}
        token68 = None
        t68 = _TOKEN68_RE.match(header, pos)
        if t68 is not None and "=" not in t68.group().rstrip("="):
            token68 = t68.group()
            pos = t68.end()
        else:
            while pos < n:
                start = pos
                pm = _TOKEN_RE.match(header, pos)
                if pm is None:
                    break
                after = _skip_ws(header, pm.end())
                if after >= n or header[after] != "=":
                    pos = start  # a token not followed by '=' starts the next challenge
                    break
                pos = _skip_ws(header, after + 1)
                if pos < n and header[pos] == '"':
                    value, pos = _quoted(header, pos)
                else:
                    vm = _TOKEN_RE.match(header, pos)
                    value = vm.group() if vm else ""
                    pos = vm.end() if vm else pos
                params[pm.group().lower()] = value
                pos = _skip_ws(header, pos)
                if pos < n and header[pos] == ",":
                    pos = _skip_ws(header, pos + 1)
                    while pos < n and header[pos] == ",":
                        pos = _skip_ws(header, pos + 1)
                    continue
                break
        challenges.append(Challenge(scheme, params, token68))
    return challenges


class TokenRequester(Protocol):
    """Sends one request to a token service (the registry client's transport: retries, TLS, errors)."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None = None,
        data: dict[str, str] | None = None,
    ) -> requests.Response: ...


def basic_header(credentials: Credentials) -> str:
    """The ``Authorization`` value of the Basic scheme."""
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def login_hint(registry: str) -> str:
    """What to tell a user whose credentials are missing or wrong."""
    return f"run `kitbridge login {registry}`, or set {ENV_USER} and {ENV_PASSWORD}"


@dataclass
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """The auth state of one registry: its scheme once challenged, and its tokens per scope set.

    Thread-safe: many transfer threads share one instance. Tokens are fetched one at a time (a
    thread that waited finds the token another one fetched), and never logged or shown.
    """

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        request: TokenRequester,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._credentials = credentials
        self._request = request
        self._clock = clock
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}

    def __repr__(self) -> str:
        return f"Authenticator({self.registry!r}, credentials={self._credentials!r})"

    @property
    def has_credentials(self) -> bool:
        """True when requests carry a user's credentials (not anonymous)."""
        return self._credentials is not None

    @property
    def scheme(self) -> str | None:
        """``basic`` or ``bearer`` once the registry has challenged us, else None."""
        with self._lock:
            return self._challenge.scheme if self._challenge else None

    def header(self, scopes: Iterable[str]) -> str | None:
        """The ``Authorization`` value to send up front for a request needing ``scopes``, or None
        while the registry has not asked for auth yet."""
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(self._credentials) if self._credentials else None
        wanted = tuple(sorted(set(scopes)))
        return "Bearer " + self._token(challenge, wanted, wanted)

    def challenged(self, www_authenticate: str | None, scopes: Iterable[str], sent: str | None) -> str:
        """Answer a 401: return the ``Authorization`` value to retry with (once).

        ``sent`` is the value the refused request carried. Raises AuthenticationError when retrying
        cannot help (no credentials for Basic, or the same Basic credentials already refused).
        """
        offered = parse_challenges(www_authenticate or "")
        bearer = next((c for c in offered if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in offered if c.scheme == "basic"), None)
        if bearer is not None:
            with self._lock:
                self._challenge = bearer
            key = tuple(sorted(set(scopes)))
            wanted = tuple(sorted(set(scopes) | set(bearer.scopes)))
            return "Bearer " + self._token(bearer, key, wanted, refused=sent)
        if basic is not None:
            with self._lock:
                self._challenge = basic
            if self._credentials is None:
                raise self.failure()
            value = basic_header(self._credentials)
            if sent == value:
                raise self.failure()
            return value
        schemes = ", ".join(c.scheme for c in offered) or "none"
        raise RegistryError(
            f"{self.registry} asks for an authentication scheme kitbridge does not support ({schemes})",
            "kitbridge speaks the Basic and Bearer (token) schemes",
        )

    def failure(self, what: str | None = None) -> AuthenticationError:
        """The error for a request the registry still refuses (401) with our best authorization."""
        creds = self._credentials
        if creds is None:
            suffix = f" to {what}" if what else ""
            return AuthenticationError(
                f"{self.registry} requires authentication{suffix}", login_hint(self.registry)
            )
        who = "the identity token" if creds.identity_token else f"user {creds.username!r}"
        suffix = f" when trying to {what}" if what else ""
        return AuthenticationError(
            f"{self.registry} rejected the credentials of {who}{suffix}", login_hint(self.registry)
        )

    def _token(
        self,
        challenge: Challenge,
        key_scopes: tuple[str, ...],
        scopes: tuple[str, ...],
        *,
        refused: str | None = None,
    ) -> str:
        """A token for ``scopes``, cached under the scopes the operation asked for (``key_scopes``).

        A cached token is reused unless it expired or is the one the registry just ``refused``
        (so threads refused at once fetch one new token, not one each).
        """
        key = (challenge.realm or "", challenge.service or "", key_scopes)
        with self._fetch_lock:
            now = self._clock()
            with self._lock:
                cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > now and refused != "Bearer " + cached.value:
                return cached.value
            token, lifetime = self._fetch(challenge, scopes)
            expires = now + max(lifetime - _EXPIRY_MARGIN_S, lifetime / 2)
            with self._lock:
                self._tokens[key] = _Token(token, expires)
            return token

    def _fetch(self, challenge: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        realm = challenge.realm or ""
        if not realm.lower().startswith(("https://", "http://")):
            raise RegistryError(
                f"{self.registry} names a token service that is not an http(s) URL: {realm!r}",
                "the registry is misconfigured; tell its admin",
            )
        creds = self._credentials
        refresh_token = creds.identity_token if creds else None
        if refresh_token is not None:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": _CLIENT_ID}
            if challenge.service:
                form["service"] = challenge.service
            if scopes:
                form["scope"] = " ".join(scopes)
            resp = self._request("POST", realm, headers={"Accept": "application/json"}, data=form)
        else:
            params = [("service", challenge.service)] if challenge.service else []
            params += [("scope", s) for s in scopes]
            if creds is not None:
                params.append(("account", creds.username))
            headers = {"Accept": "application/json"}
            if creds is not None:
                headers["Authorization"] = basic_header(creds)
            resp = self._request("GET", realm, headers=headers, params=params)
        try:
            return self._parse_token(resp)
        finally:
            resp.close()

    def _parse_token(self, resp: requests.Response) -> tuple[str, float]:
        host = resp.url.split("/")[2] if resp.url.count("/") >= 2 else resp.url
        if resp.status_code == 401:
            raise self.failure()
        if resp.status_code == 403:
            raise PermissionDeniedError(
                f"the token service {host} of {self.registry} refused access",
                "ask the registry's admin for access, or log in as a user who has it",
            )
        if resp.status_code != 200:
            raise RegistryError(
                f"the token service {host} of {self.registry} answered HTTP {resp.status_code}",
                "try again later; if it persists, the registry's auth is misconfigured",
            )
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        token = None
        if isinstance(body, dict):
            token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"the token service {host} of {self.registry} answered without a token",
                "the registry's auth is misconfigured; tell its admin",
            )
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME_S
        return token, float(lifetime)
