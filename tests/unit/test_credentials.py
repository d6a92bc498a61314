"""Credentials from Docker's config.json, credential helpers (a real helper program) and the environment."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from kitbridge.errors import RegistryError
from kitbridge.oci.credentials import (
    Credentials,
    docker_config_path,
    normalize_registry,
    remove_login,
    resolve_credentials,
    save_login,
)

# A real docker-credential helper speaking the protocol (get/store/erase on stdin/stdout), keeping its
# secrets in a JSON file next to itself and logging each call (action + stdin) for the tests to read.
HELPER = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
db_path = os.path.join(here, "kbtest-db.json")
db = json.load(open(db_path)) if os.path.exists(db_path) else {{}}
action, data = sys.argv[1], sys.stdin.read()
with open(os.path.join(here, "kbtest-calls.log"), "a") as log:
    log.write(json.dumps([action, data]) + "\\n")
if action == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = db[data.strip()]
    print(json.dumps({{"ServerURL": data.strip(), "Username": user, "Secret": secret}}))
elif action == "store":
    req = json.loads(data)
    db[req["ServerURL"]] = [req["Username"], req["Secret"]]
    json.dump(db, open(db_path, "w"))
elif action == "erase":
    if data.strip() not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    del db[data.strip()]
    json.dump(db, open(db_path, "w"))
else:
    sys.exit(2)
"""


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $DOCKER_CONFIG; no KITBRIDGE_REGISTRY_* in the environment."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("KITBRIDGE_REGISTRY_USER", raising=False)
    monkeypatch.delenv("KITBRIDGE_REGISTRY_PASSWORD", raising=False)
    return d / "config.json"


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``docker-credential-kbtest`` on PATH, with an empty store."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "docker-credential-kbtest"
    exe.write_text(HELPER.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    return d


def helper_db(d: Path) -> dict[str, list[str]]:
    p = d / "kbtest-db.json"
    return json.loads(p.read_text()) if p.exists() else {}


def helper_calls(d: Path) -> list[list[str]]:
    p = d / "kbtest-calls.log"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def write(config: Path, data: dict[str, Any]) -> None:
    config.write_text(json.dumps(data))


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_config_path_follows_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "x"))
    assert docker_config_path() == tmp_path / "x" / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert docker_config_path() == tmp_path / "home" / ".docker" / "config.json"


def test_no_config_file_means_no_credentials(docker_config: Path) -> None:
    assert resolve_credentials("reg.example:5000") is None


def test_auth_entry_is_base64_user_colon_password(docker_config: Path) -> None:
    write(docker_config, {"auths": {"reg.example:5000": {"auth": b64("bob:pa:ss")}}})
    assert resolve_credentials("reg.example:5000") == Credentials("bob", "pa:ss")
    assert resolve_credentials("other.example") is None


def test_username_and_password_fields(docker_config: Path) -> None:
    write(docker_config, {"auths": {"reg.example": {"username": "u", "password": "p"}}})
    assert resolve_credentials("reg.example") == Credentials("u", "p")


def test_identity_token_wins_over_auth(docker_config: Path) -> None:
    write(docker_config, {"auths": {"reg.example": {"auth": b64("u:p"), "identitytoken": "idt"}}})
    creds = resolve_credentials("reg.example")
    assert creds == Credentials("<token>", "idt")
    assert creds is not None and creds.identity_token == "idt"


@pytest.mark.parametrize(
    "key", ["reg.example:5000", "https://reg.example:5000", "http://reg.example:5000/v1/", "REG.example:5000"]
)
def test_registry_keys_match_like_docker(docker_config: Path, key: str) -> None:
    write(docker_config, {"auths": {key: {"auth": b64("u:p")}}})
    assert resolve_credentials("reg.example:5000") == Credentials("u", "p")
    assert resolve_credentials("reg.example:5001") is None
    assert resolve_credentials("reg.example") is None


def test_exact_key_wins_over_another_spelling(docker_config: Path) -> None:
    write(
        docker_config,
        {"auths": {"https://reg.example": {"auth": b64("old:1")}, "reg.example": {"auth": b64("new:2")}}},
    )
    assert resolve_credentials("reg.example") == Credentials("new", "2")


@pytest.mark.parametrize("name", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_names_match_its_v1_key(docker_config: Path, name: str) -> None:
    write(docker_config, {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}}})
    assert resolve_credentials(name) == Credentials("hub", "pw")
    assert normalize_registry(name) == "docker.io"


def test_environment_takes_precedence(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(docker_config, {"auths": {"reg.example": {"auth": b64("file:pw")}}})
    monkeypatch.setenv("KITBRIDGE_REGISTRY_USER", "envuser")
    monkeypatch.setenv("KITBRIDGE_REGISTRY_PASSWORD", "envpw")
    assert resolve_credentials("reg.example") == Credentials("envuser", "envpw")
    assert resolve_credentials("anything.else") == Credentials("envuser", "envpw")


def test_half_set_environment_is_an_error(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITBRIDGE_REGISTRY_USER", "envuser")
    with pytest.raises(RegistryError, match="KITBRIDGE_REGISTRY_PASSWORD is not set"):
        resolve_credentials("reg.example")


def test_broken_config_is_reported_with_its_path(docker_config: Path) -> None:
    docker_config.write_text("{not json")
    with pytest.raises(RegistryError, match=r"cannot read .*config.json: invalid JSON at line 1"):
        resolve_credentials("reg.example")


def test_cred_helper_get_receives_server_url(docker_config: Path, helper_dir: Path) -> None:
    (helper_dir / "kbtest-db.json").write_text(json.dumps({"reg.example:5000": ["hu", "hsecret"]}))
    write(docker_config, {"credHelpers": {"reg.example:5000": "kbtest"}, "auths": {}})
    assert resolve_credentials("reg.example:5000") == Credentials("hu", "hsecret")
    assert helper_calls(helper_dir) == [["get", "reg.example:5000"]]


def test_cred_helper_token_username_means_identity_token(docker_config: Path, helper_dir: Path) -> None:
    (helper_dir / "kbtest-db.json").write_text(json.dumps({"https://index.docker.io/v1/": ["<token>", "rt"]}))
    write(docker_config, {"credsStore": "kbtest"})
    creds = resolve_credentials("docker.io")
    assert creds is not None and creds.identity_token == "rt"


def test_creds_store_not_found_falls_back_to_auths(docker_config: Path, helper_dir: Path) -> None:
    write(docker_config, {"credsStore": "kbtest", "auths": {"reg.example": {"auth": b64("f:p")}}})
    assert resolve_credentials("reg.example") == Credentials("f", "p")
    assert helper_calls(helper_dir) == [["get", "reg.example"]]


def test_missing_helper_is_named(docker_config: Path, helper_dir: Path) -> None:
    write(docker_config, {"credHelpers": {"reg.example": "nosuchhelper"}})
    with pytest.raises(RegistryError, match="docker-credential-nosuchhelper is not installed"):
        resolve_credentials("reg.example")


def test_save_login_writes_auths_0600_and_keeps_other_keys(docker_config: Path) -> None:
    write(
        docker_config,
        {
            "auths": {"other.example": {"auth": b64("o:p")}},
            "proxies": {"default": {"httpProxy": "http://proxy"}},
            "psFormat": "table",
        },
    )
    docker_config.chmod(0o644)
    where = save_login("reg.example:5000", "alice", "s3cret")
    assert where == str(docker_config)
    data = json.loads(docker_config.read_text())
    assert data["auths"]["reg.example:5000"] == {"auth": b64("alice:s3cret")}
    assert data["auths"]["other.example"] == {"auth": b64("o:p")}
    assert data["proxies"] == {"default": {"httpProxy": "http://proxy"}}
    assert data["psFormat"] == "table"
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert resolve_credentials("reg.example:5000") == Credentials("alice", "s3cret")
    assert [p.name for p in docker_config.parent.iterdir()] == ["config.json"]  # no temp file left


def test_save_login_creates_config_and_replaces_old_secret(docker_config: Path) -> None:
    save_login("reg.example", "u1", "p1")
    save_login("reg.example", "u2", "p2")
    assert json.loads(docker_config.read_text())["auths"] == {"reg.example": {"auth": b64("u2:p2")}}


def test_save_login_docker_hub_uses_v1_key(docker_config: Path) -> None:
    save_login("docker.io", "hub", "pw")
    assert list(json.loads(docker_config.read_text())["auths"]) == ["https://index.docker.io/v1/"]


def test_save_and_remove_through_helper(docker_config: Path, helper_dir: Path) -> None:
    write(
        docker_config,
        {"credHelpers": {"reg.example": "kbtest"}, "auths": {"reg.example": {"auth": b64("stale:x")}}},
    )
    assert save_login("reg.example", "hu", "hp") == "docker-credential-kbtest"
    assert helper_db(helper_dir) == {"reg.example": ["hu", "hp"]}
    # No plain-text copy stays behind in the file.
    assert json.loads(docker_config.read_text())["auths"] == {"reg.example": {}}
    assert resolve_credentials("reg.example") == Credentials("hu", "hp")
    assert ["store", json.dumps({"ServerURL": "reg.example", "Username": "hu", "Secret": "hp"})] in (
        helper_calls(helper_dir)
    )
    assert remove_login("reg.example") is True
    assert helper_db(helper_dir) == {}
    assert ["erase", "reg.example"] in helper_calls(helper_dir)
    assert resolve_credentials("reg.example") is None


def test_remove_login_drops_every_spelling_and_keeps_the_rest(docker_config: Path) -> None:
    write(
        docker_config,
        {
            "auths": {
                "reg.example": {"auth": b64("a:b")},
                "https://reg.example": {"auth": b64("c:d")},
                "keep.example": {"auth": b64("e:f")},
            },
            "currentContext": "x",
        },
    )
    assert remove_login("reg.example") is True
    data = json.loads(docker_config.read_text())
    assert data == {"auths": {"keep.example": {"auth": b64("e:f")}}, "currentContext": "x"}
    assert remove_login("reg.example") is False


def test_password_never_shows_in_repr_or_str() -> None:
    creds = Credentials("alice", "hunter2-secret")
    assert "hunter2-secret" not in repr(creds)
    assert "hunter2-secret" not in str(creds)
    assert "hunter2-secret" not in f"{creds}"
    assert "alice" in repr(creds)
