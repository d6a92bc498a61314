"""The batch job file: ``defaults`` and ``jobs``, validated with line-numbered errors.

```yaml
defaults:
  format: modelpack            # kitops | modelpack: the format of imports
  layer-format: raw            # tar | raw
  plain-http: true             # registry options, as the CLI flags
  tag: "{name}:{revision}"     # a target that ends in "/" gets this tag (see TAG_FIELDS)
jobs:
  - import: hf://org/model@main
    target: registry.example.com/mirror/        # -> registry.example.com/mirror/model:<short sha>
  - convert: registry.example.com/team/a:1
    to: modelpack
    target: registry.example.com/team-mp/a:1
  - copy: registry.example.com/team/a:1
    target: backup.example.com/team/a:1
  - from-repository: registry.example.com/team/kits   # every tag of the repository
    convert-to: modelpack                            # leave it out to copy
    target: registry.example.com/team-mp/kits        # same tags there
```
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kitbridge.errors import UsageError

KINDS = ("import", "convert", "copy", "from-repository")
JOB_OPTIONS = {
    "format": str,
    "layer-format": str,
    "compression": str,
    "include": list,
    "exclude": list,
    "quant": str,
    "revision": str,
    "tracking-uri": str,
    "allow-unfinished": bool,
    "include-run-artifacts": bool,
    "legacy-cnai": bool,
}
"""Options a job (or ``defaults``) may set, with their YAML types."""
REGISTRY_OPTIONS = {"plain-http": bool, "tls-verify": bool, "ca-file": str, "concurrency": int}
DEFAULT_KEYS = {**JOB_OPTIONS, **REGISTRY_OPTIONS, "tag": str}
TAG_FIELDS = ("name", "revision", "tag", "version")
"""Placeholders of a tag template: the source's repository/repo name, short revision, tag, version."""
_CHOICES = {
    "format": ("kitops", "modelpack"),
    "layer-format": ("tar", "raw"),
    "compression": ("none", "gzip", "zstd"),
    "to": ("kitops", "modelpack"),
    "convert-to": ("kitops", "modelpack"),
}


class JobFileError(UsageError):
    """The job file is malformed: the message names the file and line."""


@dataclass(frozen=True)
class JobSpec:
    """One entry of ``jobs`` as written (``from-repository`` not expanded yet)."""

    kind: str
    source: str
    target: str
    line: int
    to: str | None = None
    """convert: the target format; from-repository: convert-to (None means copy)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """JOB_OPTIONS keys, defaults merged in."""


@dataclass(frozen=True)
class JobFile:
    """A parsed job file."""

    path: str
    defaults: Mapping[str, Any]
    jobs: list[JobSpec]

    @property
    def tag_template(self) -> str:
        """The tag for targets that end in ``/`` or name no tag."""
        return str(self.defaults.get("tag") or "{name}:{revision}")


def _err(path: str, node: yaml.Node | None, message: str, hint: str) -> JobFileError:
    where = f"{path}:{node.start_mark.line + 1}" if node is not None else path
    return JobFileError(f"{where}: {message}", hint)


def _scalar(path: str, node: yaml.Node, want: type, key: str) -> Any:
    if want is list:
        if isinstance(node, yaml.ScalarNode):
            return [_scalar(path, node, str, key)]
        if not isinstance(node, yaml.SequenceNode):
            raise _err(path, node, f"{key} must be a list of strings", f"write {key}: ['*.json']")
        return [_scalar(path, item, str, key) for item in node.value]
    if not isinstance(node, yaml.ScalarNode):
        raise _err(path, node, f"{key} must be a {want.__name__}", "write a single value")
    value = yaml.safe_load(yaml.serialize(node))
    if want is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = node.value  # 1.0 or 42 written bare: keep the text
    if (want is int and isinstance(value, bool)) or not isinstance(value, want):
        raise _err(path, node, f"{key} must be a {want.__name__}, not {value!r}", f"fix {key}")
    if want is str and not str(value).strip():
        raise _err(path, node, f"{key} is empty", f"give {key} a value")
    choices = _CHOICES.get(key)
    if choices and value not in choices:
        raise _err(path, node, f"{key} must be one of {', '.join(choices)}, not {value!r}", f"fix {key}")
    return value


def _mapping(path: str, node: yaml.Node, what: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, f"{what} must be a mapping", f"write {what} as key: value lines")
    seen: set[str] = set()
    out = []
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise _err(path, k, f"{what} has a non-string key", "use plain keys")
        if k.value in seen:
            raise _err(path, k, f"{what} has {k.value!r} twice", "keep one")
        seen.add(k.value)
        out.append((k, v))
    return out


def _options(
    path: str, items: list[tuple[yaml.ScalarNode, yaml.Node]], allowed: Mapping[str, type]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in items:
        if k.value not in allowed:
            raise _err(path, k, f"unknown key {k.value!r}", f"known keys: {', '.join(sorted(allowed))}")
        out[k.value] = _scalar(path, v, allowed[k.value], k.value)
    return out


def _job(path: str, node: yaml.Node, defaults: Mapping[str, Any]) -> JobSpec:
    items = _mapping(path, node, "a job")
    keys = {k.value: (k, v) for k, v in items}
    kinds = [k for k in KINDS if k in keys]
    if len(kinds) != 1:
        found = " and ".join(kinds) or "none"
        raise _err(
            path, node, f"a job needs exactly one of {', '.join(KINDS)} (found {found})", "see docs/batch.md"
        )
    kind = kinds[0]
    source = _scalar(path, keys[kind][1], str, kind)
    if "target" not in keys:
        raise _err(path, node, f"the {kind} job has no target", "add target: REGISTRY/REPO[:TAG]")
    target = _scalar(path, keys["target"][1], str, "target")
    rest = [(k, v) for k, v in items if k.value not in (kind, "target", "to", "convert-to", "copy-tags")]
    to: str | None = None
    if kind == "convert":
        if "to" not in keys:
            raise _err(path, node, "the convert job has no to:", "add to: kitops or to: modelpack")
        to = _scalar(path, keys["to"][1], str, "to")
    elif "to" in keys:
        raise _err(path, keys["to"][0], f"to: applies to convert jobs, not {kind}", "remove it")
    if kind == "from-repository":
        if "convert-to" in keys:
            to = _scalar(path, keys["convert-to"][1], str, "convert-to")
        if "/" in target.rsplit("/", 1)[-1] or ":" in target.rsplit("/", 1)[-1] or "@" in target:
            raise _err(
                path,
                keys["target"][1],
                "a from-repository target is a repository, without a tag",
                "write target: REGISTRY/REPO",
            )
    elif "convert-to" in keys:
        raise _err(path, keys["convert-to"][0], "convert-to: applies to from-repository jobs", "use to:")
    options = {k: v for k, v in defaults.items() if k in JOB_OPTIONS}
    options.update(_options(path, rest, JOB_OPTIONS))
    return JobSpec(kind, source, target, node.start_mark.line + 1, to, options)


def load_job_file(path: str | Path, text: str | None = None) -> JobFile:
    """Parse and validate a job file; JobFileError (exit 2) with ``FILE:LINE: problem (fix)``."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise JobFileError(f"cannot read job file {name}: {e.strerror or e}", "check the path") from e
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise JobFileError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}", "fix the syntax") from e
    if root is None:
        raise JobFileError(f"{name}: the job file is empty", "add a jobs: list (see docs/batch.md)")
    top = dict((k.value, (k, v)) for k, v in _mapping(name, root, "the job file"))
    unknown = [k for k in top if k not in ("defaults", "jobs")]
    if unknown:
        raise _err(
            name, top[unknown[0]][0], f"unknown key {unknown[0]!r}", "the file has defaults: and jobs:"
        )
    defaults: dict[str, Any] = {}
    if "defaults" in top:
        defaults = _options(name, _mapping(name, top["defaults"][1], "defaults"), DEFAULT_KEYS)
        tag = defaults.get("tag")
        if tag:
            tag_node = next(v for k, v in _mapping(name, top["defaults"][1], "defaults") if k.value == "tag")
            _check_template(name, tag_node, str(tag))
    if "jobs" not in top or not isinstance(top["jobs"][1], yaml.SequenceNode) or not top["jobs"][1].value:
        node = top["jobs"][1] if "jobs" in top else root
        raise _err(name, node, "jobs must be a non-empty list", "add at least one job")
    jobs = [_job(name, n, defaults) for n in top["jobs"][1].value]
    return JobFile(name, defaults, jobs)


def _check_template(path: str, node: yaml.Node, tag: str) -> None:
    """The template must format: balanced braces, known fields only."""
    known = ", ".join("{" + t + "}" for t in TAG_FIELDS)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(tag) if f is not None]
    except ValueError as e:
        raise _err(path, node, f"tag template {tag!r} is malformed ({e})", f"use {known}") from e
    for f in fields:
        if f not in TAG_FIELDS:
            raise _err(path, node, f"tag template uses {{{f}}}", f"use {known}")
