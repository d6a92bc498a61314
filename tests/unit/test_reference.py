"""Reference parsing: the Docker/OCI grammar as kit applies it (default registry localhost, tag latest)."""

from __future__ import annotations

import pytest

from kitbridge.errors import ReferenceFormatError
from kitbridge.oci.reference import Reference

D = "sha256:" + "ab" * 32

VALID = [
    # input, registry, repository, tag, digest, canonical name
    ("model", "localhost", "model", "latest", None, "localhost/model:latest"),
    ("org/model", "localhost", "org/model", "latest", None, "localhost/org/model:latest"),
    ("org/model:1", "localhost", "org/model", "1", None, "localhost/org/model:1"),
    ("localhost/org/model:1", "localhost", "org/model", "1", None, "localhost/org/model:1"),
    ("localhost:5000/model:v1.0", "localhost:5000", "model", "v1.0", None, "localhost:5000/model:v1.0"),
    (
        "registry.example.com/a/b/c:t",
        "registry.example.com",
        "a/b/c",
        "t",
        None,
        "registry.example.com/a/b/c:t",
    ),
    ("127.0.0.1:5000/m", "127.0.0.1:5000", "m", "latest", None, "127.0.0.1:5000/m:latest"),
    ("[::1]:5000/m:x", "[::1]:5000", "m", "x", None, "[::1]:5000/m:x"),
    ("Registry.IO/m:1", "Registry.IO", "m", "1", None, "Registry.IO/m:1"),
    (
        "org/a.b__c-d--e/f_g:T_9.x-y",
        "localhost",
        "org/a.b__c-d--e/f_g",
        "T_9.x-y",
        None,
        "localhost/org/a.b__c-d--e/f_g:T_9.x-y",
    ),
    ("org/model@" + D, "localhost", "org/model", None, D, "localhost/org/model@" + D),
    ("org/model:1@" + D, "localhost", "org/model", "1", D, "localhost/org/model:1@" + D),
    ("ghcr.io/o/m:1@" + D, "ghcr.io", "o/m", "1", D, "ghcr.io/o/m:1@" + D),
    ("localhost:5000", "localhost", "localhost", "5000", None, "localhost/localhost:5000"),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "name"), VALID)
def test_parse_valid_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None, name: str
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.name == name
    assert str(ref) == name
    assert Reference.parse(ref.name) == ref  # the canonical name round-trips


def test_first_segment_without_dot_colon_or_localhost_is_part_of_the_repository() -> None:
    ref = Reference.parse("myorg/mymodel:1")
    assert ref.registry == "localhost"
    assert ref.repository == "myorg/mymodel"
    assert ref.repo_name == "localhost/myorg/mymodel"
    assert ref.is_local


def test_registry_is_kept_and_not_local() -> None:
    ref = Reference.parse("registry.local:5000/minilm:1")
    assert ref.repo_name == "registry.local:5000/minilm"
    assert not ref.is_local
    assert ref.identifier == "1"


def test_digest_wins_over_tag_for_resolution() -> None:
    ref = Reference.parse("org/model:1@" + D)
    assert ref.identifier == D
    assert ref.tag == "1"


def test_bare_digest_resolves_by_digest_only() -> None:
    ref = Reference.parse(D)
    assert ref.is_bare_digest
    assert ref.digest == D
    assert ref.tag is None
    assert ref.name == D
    assert ref.repo_name == ""
    assert ref.identifier == D


def test_with_tag_and_with_digest() -> None:
    ref = Reference.parse("org/model@" + D)
    assert ref.with_tag("2").name == "localhost/org/model:2"
    assert Reference.parse("org/model:1").with_digest(D).name == "localhost/org/model:1@" + D


def test_tag_of_128_characters_is_the_maximum() -> None:
    assert Reference.parse("m:" + "a" * 128).tag == "a" * 128
    with pytest.raises(ReferenceFormatError, match="bad tag"):
        Reference.parse("m:" + "a" * 129)


INVALID = [
    # input, a fragment of the message, a fragment of the hint
    ("", "empty reference", "references look like"),
    ("Org/Model:1", "must be lowercase", "'org/model'"),
    ("localhost/MyModel", "must be lowercase", "'mymodel'"),
    ("org/model:-bad", "bad tag '-bad'", "does not start with '.' or '-'"),
    ("org/model:.bad", "bad tag '.bad'", "1-128 letters"),
    ("org/model:a+b", "bad tag 'a+b'", "1-128 letters"),
    ("org/model:", "empty tag", "give a tag"),
    ("org//model", "empty path component", "remove the extra '/'"),
    ("org/model/", "empty path component", "remove the extra '/'"),
    ("org/-model", "bad repository path component '-model'", "separated by"),
    ("org/model..x", "bad repository path component 'model..x'", "separated by"),
    ("org/mod el", "contains whitespace", "references look like"),
    ("org/model@sha256:abc", "bad digest 'sha256:abc'", "64 lowercase hex"),
    ("org/model@sha256:" + "AB" * 32, "bad digest", "64 lowercase hex"),
    ("org/model@sha512:" + "ab" * 64, "unsupported digest algorithm 'sha512'", "sha256"),
    ("org/model@" + D + "@" + D, "more than one '@'", "references look like"),
    ("@" + D, "missing repository", "sha256:"),
    ("localhost/", "missing repository name", "references look like"),
    ("bad_host.com:x/m", "bad registry host 'bad_host.com:x'", "host name or IP"),
    ("registry.io/" + "a" * 250, "characters long", "at most 255"),
]


@pytest.mark.parametrize(("text", "message", "hint"), INVALID)
def test_parse_refuses_invalid_references(text: str, message: str, hint: str) -> None:
    with pytest.raises(ReferenceFormatError) as info:
        Reference.parse(text)
    assert message in info.value.message
    assert text in info.value.message or text == ""
    assert info.value.hint is not None and hint in info.value.hint


def test_constructor_validates_fields() -> None:
    with pytest.raises(ReferenceFormatError, match="must be lowercase"):
        Reference("localhost", "Model", "1")
    with pytest.raises(ReferenceFormatError, match="needs a tag or a digest"):
        Reference("localhost", "model")
    with pytest.raises(ReferenceFormatError, match="bad digest"):
        Reference("localhost", "model", None, "sha256:1234")
