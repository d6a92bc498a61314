"""kit's Kitfile rules: each rule accepts what kit accepts and rejects with kit's wording."""

from __future__ import annotations

import textwrap

import pytest

from kitbridge.errors import KitfileError
from kitbridge.kitfile import (
    Kitfile,
    KitfileValidationError,
    PathType,
    load_kitfile,
    path_type,
    validate_kitfile,
)


def problems_of(yaml_text: str) -> list[str]:
    kf = load_kitfile("manifestVersion: 1.0.0\n" + textwrap.dedent(yaml_text))
    try:
        validate_kitfile(kf)
    except KitfileValidationError as e:
        return e.problems
    return []


def test_a_complete_valid_kitfile_passes() -> None:
    assert (
        problems_of(
            """\
            package: {name: ok}
            model:
              name: m
              path: model
              parts:
                - {name: lora, path: model-adapters/lora, type: lora_v2.safetensors-1}
            code: [{path: src/../lib}]
            datasets:
              - {name: eval, path: data/eval}
              - {name: big, path: data/big, remotePath: s3://bucket/big, remoteHash: sha256:00}
              - {name: ref, path: data/ref, remotePath: 'registry.example.com/org/data:v1'}
              - {name: sibling, path: data/big-extra}
            docs: [{path: ./docs/}]
            prompts: [{path: prompts/system.md}]
            mcpServers: [{name: fs, path: servers/fs.mcpb}, {name: db, path: servers/db.mcpb}]
            """
        )
        == []
    )


def test_model_path_may_be_a_modelkit_reference() -> None:
    assert problems_of("model: {path: 'ghcr.io/org/base:1.0'}\n") == []


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("v2.0.0", "invalid manifestVersion: expect 1.0.0 but got v2.0.0"),
        ("1.0", "invalid manifestVersion: expect 1.0.0 but got 1.0"),
        ("~", "invalid manifestVersion: expect 1.0.0 but got "),
    ],
)
def test_manifest_version_must_be_1_0_0(version: str, problem: str) -> None:
    with pytest.raises(KitfileValidationError) as e:
        validate_kitfile(load_kitfile(f"manifestVersion: {version}\n"))
    assert e.value.problems == [problem]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "code: [{path: shared}]\ndatasets: [{path: shared/}]\n",
            "code layer 0 and dataset layer 0 use the same path shared",
        ),
        ("model: {name: m, path: ./w}\ndocs: [{path: w}]\n", "model m and docs layer 0 use the same path w"),
        (
            "model: {name: m, path: x, parts: [{name: p, path: a/../x}]}\nprompts: [{path: x/}]\n",
            "model m, modelpart p and prompt layer 0 use the same path x",
        ),
        ("code: [{path: ''}, {path: .}]\n", "code layer 0 and code layer 1 use the same path ."),
        (
            "docs: [{path: b.mcpb}]\nmcpServers: [{name: b, path: ./b.mcpb}]\n",
            "docs layer 0 and mcpServer b use the same path b.mcpb",
        ),
    ],
)
def test_duplicate_paths_name_every_entry_after_cleaning(body: str, problem: str) -> None:
    assert problems_of(body) == [problem]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "code: [{path: /srv/code}]\n",
            "absolute paths are not supported in a Kitfile (path /srv/code in code layer 0)",
        ),
        (
            "prompts: [{path: /tmp/p/}]\n",
            "absolute paths are not supported in a Kitfile (path /tmp/p in prompt layer 0)",
        ),
        (
            "datasets: [{path: data/../../up}]\n",
            "paths outside the context directory are not supported in a Kitfile "
            "(path ../up in dataset layer 0)",
        ),
        (
            "docs: [{path: ..}]\n",
            "paths outside the context directory are not supported in a Kitfile (path .. in docs layer 0)",
        ),
    ],
)
def test_paths_must_stay_inside_the_context(body: str, problem: str) -> None:
    assert problems_of(body) == [problem]


def test_dotdot_that_stays_inside_the_context_is_fine() -> None:
    assert problems_of("code: [{path: src/../lib}]\ndocs: [{path: '..docs'}]\n") == []


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        (
            "model: {path: 'http://host/m'}\n",
            [
                "invalid path for model: HTTP urls are not supported in paths (http://host/m)",
                "invalid path for model: only local paths and ModelKit references are permitted",
            ],
        ),
        (
            "model: {path: 's3://b/k'}\n",
            ["invalid path for model: only local paths and ModelKit references are permitted"],
        ),
        (
            "model: {path: m, parts: [{path: 'https://h/p'}]}\n",
            [
                "invalid path for model part (https://h/p): HTTP urls are not supported in paths (https://h/p)",
                "invalid path for model part (https://h/p): only local paths are permitted",
            ],
        ),
        (
            "code: [{path: 'ftp://h/c'}]\n",
            [
                "invalid path for code (ftp://h/c): only local paths are permitted",
                "invalid path for code (ftp://h/c): unrecognized URL in path: ftp://h/c",
            ],
        ),
        (
            "datasets: [{path: 's3://b/d'}]\n",
            ["invalid path for dataset (s3://b/d): only local paths are permitted"],
        ),
        (
            "docs: [{path: 'org/docs:v1'}]\n",
            ["invalid path for doc (org/docs:v1): only local paths are permitted"],
        ),
        (
            "prompts: [{path: 'reg.io/p:1'}]\n",
            ["invalid path for prompt (reg.io/p:1): only local paths are permitted"],
        ),
        (
            "mcpServers: [{name: s, path: 's3://b/s.mcpb'}]\n",
            ["invalid path for mcpServer (s3://b/s.mcpb): only local paths are permitted"],
        ),
    ],
)
def test_only_the_model_may_point_outside_the_context(body: str, problems: list[str]) -> None:
    assert problems_of(body) == sorted(problems)


@pytest.mark.parametrize(
    ("part_type", "problem"),
    [
        (
            "has space",
            "modelpart p has invalid type (must be alphanumeric with dots, dashes, and underscores)",
        ),
        (".hidden", "modelpart p has invalid type (must be alphanumeric with dots, dashes, and underscores)"),
        ("é", "modelpart p has invalid type (must be alphanumeric with dots, dashes, and underscores)"),
        ("a" * 65, "modelpart p type is too long (must be fewer than 64 characters)"),
    ],
)
def test_model_part_type_rules(part_type: str, problem: str) -> None:
    assert problems_of(f"model: {{path: m, parts: [{{name: p, path: q, type: '{part_type}'}}]}}\n") == [
        problem
    ]


def test_model_part_type_of_64_characters_is_accepted() -> None:
    assert problems_of(f"model: {{path: m, parts: [{{name: p, path: q, type: {'a' * 64}}}]}}\n") == []


@pytest.mark.parametrize(
    ("dataset", "problems"),
    [
        (
            "{path: d, remotePath: 's3://b/k'}",
            ["remoteHash is required when remote dataset paths are used (s3://b/k)"],
        ),
        (
            "{path: d, remotePath: bucket.example.com, remoteHash: h}",
            ["only S3 URLs are supported for remote dataset paths (bucket.example.com)"],
        ),
        (
            "{path: d, remotePath: 'https://h/k', remoteHash: h}",
            [
                "invalid remote path for dataset (https://h/k): HTTP urls are not supported in paths (https://h/k)",
                "only S3 URLs are supported for remote dataset paths (https://h/k)",
            ],
        ),
        ("{path: d, remoteHash: h}", ["remote hash is only applicable when remotePath is set"]),
        ("{path: d, remotePath: 'reg.io/org/data:v1'}", []),
        ("{path: d, remotePath: 's3://b/k', remoteHash: h}", []),
    ],
)
def test_remote_dataset_rules(dataset: str, problems: list[str]) -> None:
    assert problems_of(f"datasets: [{dataset}]\n") == sorted(problems)


def test_entries_inside_a_remote_datasets_path_are_refused() -> None:
    body = """\
    model: {name: m, path: remote/model.bin}
    code: [{path: remote/code}, {path: remote-sibling}]
    datasets:
      - {path: remote, remotePath: 's3://b/k', remoteHash: h}
      - {path: remote/nested}
    """
    assert problems_of(body) == [
        "code layer 0 uses a path (remote/code) that is within the path for a remote dataset "
        "(remote in dataset layer 0)",
        "dataset layer 1 uses a path (remote/nested) that is within the path for a remote dataset "
        "(remote in dataset layer 0)",
        "model m uses a path (remote/model.bin) that is within the path for a remote dataset "
        "(remote in dataset layer 0)",
    ]


@pytest.mark.parametrize(
    ("servers", "problems"),
    [
        ("[{path: a.mcpb}]", ["mcpServer with path a.mcpb must have a name"]),
        (
            "[{name: a, path: a.mcpb}, {name: a, path: b.mcpb}, {name: a, path: c.mcpb}]",
            ["duplicate mcpServer name a"],
        ),
        (
            "[{name: a, path: a.zip}]",
            ["invalid path for mcpServer (a.zip): path must point to a single .mcpb file"],
        ),
        (
            "[{name: a, path: dir.mcpb/}]",
            ["invalid path for mcpServer (dir.mcpb/): path must point to a single .mcpb file"],
        ),
        ("[{name: a, path: 'x/y.mcpb'}]", []),
    ],
)
def test_mcp_server_rules(servers: str, problems: list[str]) -> None:
    assert problems_of(f"mcpServers: {servers}\n") == problems


def test_every_problem_is_reported_sorted_in_one_error() -> None:
    kf = load_kitfile("manifestVersion: 0\ncode: [{path: /abs}, {path: /abs}]\ndocs: [{path: 's3://x/y'}]\n")
    with pytest.raises(KitfileError) as caught:
        validate_kitfile(kf)
    err = caught.value
    assert isinstance(err, KitfileValidationError)
    assert err.problems == [
        "absolute paths are not supported in a Kitfile (path /abs in code layer 0)",
        "code layer 0 and code layer 1 use the same path /abs",
        "invalid manifestVersion: expect 1.0.0 but got 0",
        "invalid path for doc (s3://x/y): only local paths are permitted",
    ]
    assert err.kit_text == "errors while validating Kitfile: \n" + "\n".join(f"  * {p}" for p in err.problems)
    assert "\n" not in str(err)
    assert err.message == "invalid Kitfile: " + "; ".join(err.problems)


def test_an_empty_kitfile_object_only_lacks_a_version() -> None:
    with pytest.raises(KitfileValidationError) as e:
        validate_kitfile(Kitfile())
    assert e.value.problems == ["invalid manifestVersion: expect 1.0.0 but got "]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("model", PathType.LOCAL),
        ("./a b/c%zz", PathType.LOCAL),
        ("s3://bucket/key", PathType.S3),
        ("S3://bucket/key", PathType.S3),
        ("org/model:v1", PathType.MODELKIT_REFERENCE),
        ("https://example.com/x", PathType.UNKNOWN),
        ("//host/share", PathType.UNKNOWN),
        ("mailto:someone", PathType.MODELKIT_REFERENCE),  # repo "mailto", tag "someone"
        ("mailto:a@b.example", PathType.UNKNOWN),
        ("s3://bu cket/key", PathType.LOCAL),  # url.Parse fails: a local path as far as kit is concerned
        (":colon-first", PathType.LOCAL),
    ],
)
def test_path_type_classifies_like_kit(path: str, kind: PathType) -> None:
    assert path_type(path)[0] is kind
