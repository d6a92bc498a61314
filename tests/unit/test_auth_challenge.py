"""WWW-Authenticate parsing (RFC 7235 as registries write it) and the Basic/Bearer decisions it drives."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from kitbridge.errors import AuthenticationError, PermissionDeniedError, RegistryError
from kitbridge.oci.auth import Authenticator, Challenge, basic_header, parse_challenges
from kitbridge.oci.credentials import Credentials

CHALLENGES: list[tuple[str, list[Challenge]]] = [
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ("Basic realm=simple", [Challenge("basic", {"realm": "simple"})]),
    ("Basic", [Challenge("basic", {})]),
    (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/ubuntu:pull,push"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/ubuntu:pull,push",
                },
            )
        ],
    ),
    (
        'Bearer realm="https://ghcr.io/token", service="ghcr.io", scope="repository:o/m:pull", '
        'error="insufficient_scope"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://ghcr.io/token",
                    "service": "ghcr.io",
                    "scope": "repository:o/m:pull",
                    "error": "insufficient_scope",
                },
            )
        ],
    ),
    # Scheme and parameter names are case-insensitive; values are not.
    (
        'BEARER Realm="https://A/t",SERVICE="S"',
        [Challenge("bearer", {"realm": "https://A/t", "service": "S"})],
    ),
    # Quoted values hold commas, '=' and escaped quotes.
    ('Basic realm="a, b=c"', [Challenge("basic", {"realm": "a, b=c"})]),
    ('Bearer realm="say \\"hi\\""', [Challenge("bearer", {"realm": 'say "hi"'})]),
    # Several challenges in one header, separated by commas.
    (
        'Basic realm="r1", Bearer realm="https://t/token",service="s"',
        [
            Challenge("basic", {"realm": "r1"}),
            Challenge("bearer", {"realm": "https://t/token", "service": "s"}),
        ],
    ),
    (
        'Negotiate YIIB==, Basic realm="x"',
        [Challenge("negotiate", {}, token68="YIIB=="), Challenge("basic", {"realm": "x"})],
    ),
    # Whitespace around '=' and empty list elements are tolerated.
    ('Basic realm = "x" ,, charset=UTF-8', [Challenge("basic", {"realm": "x", "charset": "UTF-8"})]),
    ("", []),
]


@pytest.mark.parametrize(("header", "expected"), CHALLENGES, ids=[c[0][:40] or "empty" for c in CHALLENGES])
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_challenge_scopes_split_on_spaces() -> None:
    (c,) = parse_challenges('Bearer realm="https://t",scope="repository:a:pull repository:b:pull,push"')
    assert c.scopes == ["repository:a:pull", "repository:b:pull,push"]
    assert c.realm == "https://t" and c.service is None


class FakeTokenService:
    """Stands in for a token endpoint (a response we build), recording what was asked."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = body if body is not None else {"token": "tok-1", "expires_in": 300}
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None = None,
        data: dict[str, str] | None = None,
    ) -> requests.Response:
        self.calls.append({"method": method, "url": url, "headers": headers, "params": params, "data": data})
        resp = requests.Response()
        resp.status_code = self.status
        resp._content = json.dumps(self.body).encode()
        resp._content_consumed = True
        resp.url = url
        return resp


BEARER = 'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull"'
USER = Credentials("alice", "pw-secret")


def test_basic_challenge_answers_with_credentials() -> None:
    auth = Authenticator("reg.example", USER, FakeTokenService())
    value = auth.challenged('Basic realm="r"', ["repository:a/b:pull"], None)
    assert value == "Basic " + base64.b64encode(b"alice:pw-secret").decode()
    assert auth.header(["repository:x:pull"]) == value  # sent up front from now on


def test_basic_challenge_without_credentials_asks_for_login() -> None:
    auth = Authenticator("reg.example", None, FakeTokenService())
    with pytest.raises(AuthenticationError, match=r"reg.example requires authentication") as e:
        auth.challenged('Basic realm="r"', [], None)
    assert "kitbridge login reg.example" in (e.value.hint or "")


def test_basic_challenge_after_refused_credentials_is_final() -> None:
    auth = Authenticator("reg.example", USER, FakeTokenService())
    with pytest.raises(AuthenticationError, match="rejected the credentials of user 'alice'") as e:
        auth.challenged('Basic realm="r"', [], basic_header(USER))
    assert "pw-secret" not in str(e.value)


def test_bearer_fetches_token_with_basic_credentials_and_all_scopes() -> None:
    service = FakeTokenService()
    auth = Authenticator("reg.example", USER, service)
    assert auth.challenged(BEARER, ["repository:c/d:pull,push"], None) == "Bearer tok-1"
    (call,) = service.calls
    assert call["method"] == "GET" and call["url"] == "https://auth.example/token"
    assert ("service", "reg.example") in call["params"]
    scopes = [v for k, v in call["params"] if k == "scope"]
    assert sorted(scopes) == ["repository:a/b:pull", "repository:c/d:pull,push"]
    assert call["headers"]["Authorization"] == basic_header(USER)


def test_bearer_token_is_cached_per_scope_until_it_expires() -> None:
    now = [1000.0]
    service = FakeTokenService(body={"access_token": "tok-a", "expires_in": 120})
    auth = Authenticator("reg.example", None, service, clock=lambda: now[0])
    auth.challenged(BEARER, ["repository:a/b:pull"], None)
    assert len(service.calls) == 1
    assert auth.header(["repository:a/b:pull"]) == "Bearer tok-a"
    assert len(service.calls) == 1  # cached
    auth.header(["repository:other:pull"])
    assert len(service.calls) == 2  # another scope, another token
    now[0] += 115  # inside the renewal margin
    auth.header(["repository:a/b:pull"])
    assert len(service.calls) == 3


def test_anonymous_bearer_sends_no_authorization() -> None:
    service = FakeTokenService()
    auth = Authenticator("reg.example", None, service)
    auth.challenged(BEARER, [], None)
    assert "Authorization" not in service.calls[0]["headers"]


def test_identity_token_is_a_refresh_token_grant() -> None:
    service = FakeTokenService(body={"access_token": "tok-r"})
    auth = Authenticator("reg.example", Credentials("<token>", "refresh-xyz"), service)
    assert auth.challenged(BEARER, ["repository:a/b:pull"], None) == "Bearer tok-r"
    (call,) = service.calls
    assert call["method"] == "POST"
    assert call["data"]["grant_type"] == "refresh_token"
    assert call["data"]["refresh_token"] == "refresh-xyz"
    assert call["data"]["service"] == "reg.example"
    assert call["data"]["scope"] == "repository:a/b:pull"


def test_refused_token_is_refetched_once_but_a_fresh_one_is_shared() -> None:
    service = FakeTokenService()
    auth = Authenticator("reg.example", USER, service)
    auth.challenged(BEARER, [], None)
    auth.challenged(BEARER, [], None)  # another thread refused before the token existed: reuse
    assert len(service.calls) == 1
    auth.challenged(BEARER, [], "Bearer tok-1")  # this very token was refused: fetch anew
    assert len(service.calls) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (403, PermissionDeniedError), (500, RegistryError)]
)
def test_token_service_refusals_map_to_errors(status: int, error: type[Exception]) -> None:
    auth = Authenticator("reg.example", USER, FakeTokenService(status=status, body={}))
    with pytest.raises(error) as e:
        auth.challenged(BEARER, [], None)
    assert "pw-secret" not in str(e.value)


def test_token_answer_without_token_is_an_error() -> None:
    auth = Authenticator("reg.example", USER, FakeTokenService(body={"nothing": 1}))
    with pytest.raises(RegistryError, match="without a token"):
        auth.challenged(BEARER, [], None)


def test_unsupported_scheme_is_named() -> None:
    auth = Authenticator("reg.example", USER, FakeTokenService())
    with pytest.raises(RegistryError, match=r"\(negotiate\)"):
        auth.challenged("Negotiate abc==", [], None)


def test_authenticator_repr_hides_the_password() -> None:
    assert "pw-secret" not in repr(Authenticator("reg.example", USER, FakeTokenService()))
