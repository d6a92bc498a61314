"""The batch job file: what parses, what is refused (with the right line), tag templates, shards."""

from __future__ import annotations

import pytest

from kitbridge.batch.jobfile import JobFileError, load_job_file
from kitbridge.batch.runner import Job, parse_shard, source_name, target_for
from kitbridge.errors import UsageError

GOOD = """\
defaults:
  format: modelpack
  plain-http: true
  tag: "{name}:{revision}"
jobs:
  - import: hf://org/Model-X@main
    target: reg:5000/mirror/
    include: ["*.json", "*.safetensors"]
  - convert: reg:5000/team/a:1
    to: kitops
    target: reg:5000/team-kit/a:1
  - copy: reg:5000/team/a:1
    target: backup:5000/team/a:1
  - from-repository: reg:5000/team/kits
    convert-to: modelpack
    target: reg:5000/team-mp/kits
"""


def test_a_good_file_parses_with_defaults_merged() -> None:
    jf = load_job_file("b.yaml", GOOD)
    assert [j.kind for j in jf.jobs] == ["import", "convert", "copy", "from-repository"]
    imp = jf.jobs[0]
    assert (imp.source, imp.target, imp.line) == ("hf://org/Model-X@main", "reg:5000/mirror/", 6)
    assert imp.options["format"] == "modelpack" and imp.options["include"] == ["*.json", "*.safetensors"]
    assert "plain-http" not in imp.options  # a registry option, not an import option
    assert jf.jobs[1].to == "kitops" and jf.jobs[3].to == "modelpack"
    assert jf.tag_template == "{name}:{revision}"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("jobs:\n  - import: x\n    target: r/\n    colour: red\n", 4, "unknown key 'colour'"),
        ("jobs:\n  - import: x\n", 2, "has no target"),
        ("jobs:\n  - import: x\n    copy: y\n    target: r/\n", 2, "exactly one of"),
        ("jobs:\n  - convert: r/a:1\n    target: r/b:1\n", 2, "has no to:"),
        ("jobs:\n  - convert: r/a:1\n    to: onnx\n    target: r/b:1\n", 3, "must be one of"),
        ("defaults:\n  format: tarball\njobs:\n  - import: x\n    target: r/\n", 2, "must be one of"),
        ("defaults:\n  tag: '{name}:{sha}'\njobs:\n  - import: x\n    target: r/\n", 2, "{sha}"),
        ("jobs:\n  - from-repository: r/a\n    target: r/b:1\n", 3, "without a tag"),
        ("jobs: []\n", 1, "non-empty list"),
        ("jobs:\n  - import: x\n    target: r/\n    include: {a: b}\n", 4, "list of strings"),
        ("nope: 1\n", 1, "unknown key 'nope'"),
        ("jobs:\n  - import: [x\n", 3, "not valid YAML"),  # where the parser noticed
    ],
)
def test_mistakes_name_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(JobFileError) as e:
        load_job_file("b.yaml", text)
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"b.yaml:{line}: ")
    assert message in str(e.value)


def test_an_empty_or_missing_file_is_a_clean_error(tmp_path: object) -> None:
    with pytest.raises(JobFileError, match="empty"):
        load_job_file("b.yaml", "")
    with pytest.raises(JobFileError, match="cannot read job file"):
        load_job_file("/nonexistent/b.yaml")


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("hf://org/Model-X@main", "model-x"),
        ("hf://datasets/org/data", "data"),
        ("models:/Fraud Detector/3", "fraud-detector"),
        ("models:/churn@champion", "churn"),
        ("runs:/abc123/model-a", "model-a"),
        ("/srv/models/tiny-model", "tiny-model"),
    ],
)
def test_source_names(source: str, name: str) -> None:
    assert source_name(source) == name


def test_tag_templates_fill_targets_without_a_tag() -> None:
    job = Job("import", "hf://org/Model-X", "reg/mirror/", 1)
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert target_for(job, "{name}:{revision}", sha) == "reg/mirror/model-x:0123456789ab"
    assert target_for(Job("import", "models:/iris/3", "reg/m/iris", 1), "{name}:{revision}", "iris/3") == (
        "reg/m/iris:iris-3"
    )
    assert (
        target_for(Job("import", "x", "reg/m/iris:pinned", 1), "{name}:{revision}", "r")
        == "reg/m/iris:pinned"
    )
    assert target_for(Job("import", "hf://o/n", "reg/m/", 1), "v-{revision}", "abc") == "reg/m/n:v-abc"


def test_shards_are_disjoint_and_cover_everything() -> None:
    jobs = [Job("convert", f"reg/a:{i}", f"reg/b:{i}", 1, "modelpack") for i in range(200)]
    slices = [[j for j in jobs if j.shard_of(4) == i] for i in range(4)]
    assert sorted(j.key for s in slices for j in s) == sorted(j.key for j in jobs)
    assert all(s for s in slices)  # a hash spreads 200 jobs over every shard
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/4", "1/0", "x"):
        with pytest.raises(UsageError):
            parse_shard(bad)
