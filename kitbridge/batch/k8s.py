"""``kitbridge batch k8s``: a Kubernetes manifest that runs a batch job file across a cluster.

Kubernetes is the distributed engine; kitbridge brings no scheduler. The manifest is two objects:

1. a ``v1`` ConfigMap ``<name>-jobs`` holding the job file (key: its base name);
2. a ``batch/v1`` Indexed Job ``<name>`` with ``completions`` pods, ``parallelism`` at a time. Pod *i*
   runs ``kitbridge batch /etc/kitbridge/<file> --shard $(JOB_COMPLETION_INDEX)/<completions>``, so
   each index works on its own shard of the jobs and a failed index is retried on its own
   (``backoffLimitPerIndex``, Kubernetes ≥ 1.29).

Credentials never appear in the manifest: with ``secret``, the pod takes every key of that Secret as an
environment variable (``KITBRIDGE_REGISTRY_USER``/``_PASSWORD``, ``HF_TOKEN``, ``MLFLOW_TRACKING_*`` …)
and sees the Secret mounted read-only at ``/var/run/secrets/kitbridge`` with ``DOCKER_CONFIG`` pointing
there, so a ``config.json`` key in it serves as Docker auths. The pod runs non-root with a read-only
root filesystem; kitbridge's store and the Hugging Face cache live in an ``emptyDir``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

import yaml

from kitbridge import __version__
from kitbridge.errors import ReferenceFormatError, UsageError
from kitbridge.oci.reference import Reference

__all__ = ["render_k8s"]

CONTAINER_NAME = "kitbridge"
JOB_DIR = "/etc/kitbridge"
DATA_DIR = "/var/lib/kitbridge"
SECRET_DIR = "/var/run/secrets/kitbridge"
RUN_AS = 10001
BACKOFF_LIMIT_PER_INDEX = 2
TTL_SECONDS_AFTER_FINISHED = 86400
CPU_REQUEST = "1"
MEMORY_REQUEST = "2Gi"
# etcd stores an object in at most ~1.5 MB; the API server caps a ConfigMap's data at 1 MiB.
CONFIGMAP_MAX_BYTES = 1024 * 1024
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

_LABEL_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_CONFIGMAP_KEY_BAD = re.compile(r"[^-._a-zA-Z0-9]+")
_NAME_PREFIX = "kitbridge-batch"
# Besides \n and \r, the characters YAML 1.1 reads as line breaks (and may normalise to \n).
_YAML_ONLY_BREAKS = frozenset("\x85\u2028\u2029")
_MAX_LABEL = 63
_MAX_SUBDOMAIN = 253


def render_k8s(
    job_file_text: str,
    *,
    job_file_name: str,
    image: str,
    completions: int,
    parallelism: int,
    namespace: str | None = None,
    secret: str | None = None,
    name: str | None = None,
    extra_args: Sequence[str] = (),
) -> str:
    """The manifest (a header comment, then the ConfigMap and the Job as YAML documents).

    ``job_file_name`` is the job file's path or name; only its base name is used (characters a
    ConfigMap key cannot hold become ``-``). ``name`` defaults to ``kitbridge-batch-<stem>``.
    ``extra_args`` reach ``kitbridge batch`` in the pod verbatim (``$(`` is escaped so Kubernetes does
    not expand it). Raises :class:`UsageError` for anything Kubernetes would reject.
    """
    _check_counts(completions, parallelism)
    image = _check_image(image)
    key = _configmap_key(job_file_name)
    job_name = _job_name(name, key)
    if namespace is not None:
        _check_label(namespace, "namespace", "--namespace")
    if secret is not None:
        _check_secret_name(secret)
    _check_job_file(job_file_text, key)
    if isinstance(extra_args, str):
        raise TypeError("extra_args is a sequence of arguments, not one string")
    args = list(extra_args)

    labels = {
        "app.kubernetes.io/name": "kitbridge",
        "app.kubernetes.io/component": "batch",
        "app.kubernetes.io/instance": job_name,
        "app.kubernetes.io/managed-by": "kitbridge",
    }
    configmap_name = f"{job_name}-jobs"
    configmap: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(configmap_name, namespace, labels),
        "data": {key: job_file_text},
    }
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job_name, namespace, labels),
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimitPerIndex": BACKOFF_LIMIT_PER_INDEX,
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec(image, key, completions, configmap_name, secret, args),
            },
        },
    }
    header = _header(key, job_name, namespace, secret)
    body = yaml.dump_all(
        [configmap, job],
        Dumper=_Dumper,
        sort_keys=False,
        explicit_start=True,
        allow_unicode=True,
        default_flow_style=False,
        width=10_000,
    )
    return header + body


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes multi-line strings (the job file) as literal blocks when it can."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if any(c in _YAML_ONLY_BREAKS for c in data):
        # A loader turns NEL into \n and folds breaks in plain and single-quoted scalars: only double
        # quotes (which escape these characters) keep them.
        style: str | None = '"'
    elif "\n" in data:
        # The emitter falls back to double quotes by itself whenever a literal block would not
        # round-trip (trailing spaces, \r, control characters …), so the value always loads back unchanged.
        style = "|"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _check_counts(completions: int, parallelism: int) -> None:
    for what, value in (("completions", completions), ("parallelism", parallelism)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"--{what} must be a whole number, not {value!r}")
    if completions < 1:
        raise UsageError(
            f"--completions must be at least 1, not {completions}", "it is the number of shards (pods)"
        )
    if parallelism < 1:
        raise UsageError(f"--parallelism must be at least 1, not {parallelism}")
    if parallelism > completions:
        raise UsageError(
            f"--parallelism {parallelism} is more than --completions {completions}",
            f"at most {completions} pods can run at once; lower --parallelism or raise --completions",
        )
    if completions > 2**31 - 1:
        raise UsageError(f"--completions {completions} is too large", "Kubernetes counts pods in int32")


def _check_image(image: str) -> str:
    hint = "give the image that has kitbridge installed, e.g. ghcr.io/myorg/kitbridge:0.1.0"
    if not isinstance(image, str) or not image.strip():
        raise UsageError("--image is empty", hint)
    if image != image.strip():
        raise UsageError(f"--image {image!r} has leading or trailing whitespace", hint)
    try:
        ref = Reference.parse(image)
    except ReferenceFormatError as e:
        raise UsageError(f"--image is not an image reference: {e.message}", e.hint or hint) from None
    if ref.is_bare_digest:
        raise UsageError(f"--image {image!r} is a bare digest", "write repository@sha256:…")
    return image


def _configmap_key(job_file_name: str) -> str:
    base = PurePath(job_file_name).name if job_file_name else ""
    key = _CONFIGMAP_KEY_BAD.sub("-", base).strip("-")
    if not key or key in (".", "..") or len(key) > _MAX_SUBDOMAIN:
        raise UsageError(
            f"cannot use {job_file_name!r} as the job file's name in a ConfigMap",
            "name the job file like batch.yaml",
        )
    return key


def _default_name(key: str) -> str:
    stem = PurePath(key).stem
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    name = f"{_NAME_PREFIX}-{slug}" if slug else _NAME_PREFIX
    return name[:_MAX_LABEL].rstrip("-")


def _job_name(name: str | None, key: str) -> str:
    if name is None:
        return _default_name(key)
    _check_label(name, "name", "--name")
    return name


def _check_label(value: str, what: str, option: str) -> None:
    if not isinstance(value, str) or len(value) > _MAX_LABEL or not _LABEL_RE.fullmatch(value):
        raise UsageError(
            f"{option} {value!r} is not a valid Kubernetes {what}",
            "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        )


def _check_secret_name(secret: str) -> None:
    if not isinstance(secret, str) or len(secret) > _MAX_SUBDOMAIN or not _SUBDOMAIN_RE.fullmatch(secret):
        raise UsageError(
            f"--secret {secret!r} is not a valid Kubernetes Secret name",
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        )


def _check_job_file(text: str, key: str) -> None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError(f"job file {key} is not valid UTF-8 text", "a ConfigMap holds text") from None
    if size > CONFIGMAP_MAX_BYTES:
        raise UsageError(
            f"job file {key} is {size} bytes; a ConfigMap holds at most {CONFIGMAP_MAX_BYTES}",
            "split the job file into several smaller ones",
        )


def _metadata(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    return meta


def _escape_expansion(arg: str) -> str:
    """Kubernetes expands ``$(VAR)`` in args; ``$$(`` stands for a literal ``$(``."""
    return arg.replace("$(", "$$(")


def _pod_spec(
    image: str, key: str, completions: int, configmap_name: str, secret: str | None, extra_args: list[str]
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}
            },
        },
        {"name": "KITBRIDGE_HOME", "value": DATA_DIR},
        {"name": "HF_HOME", "value": f"{DATA_DIR}/hf"},
        {"name": "HOME", "value": DATA_DIR},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "jobs", "mountPath": JOB_DIR, "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "jobs", "configMap": {"name": configmap_name}},
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["kitbridge"],
        "args": [
            "batch",
            f"{JOB_DIR}/{key}",
            "--shard",
            f"$(JOB_COMPLETION_INDEX)/{completions}",
            *(_escape_expansion(a) for a in extra_args),
        ],
        "env": env,
    }
    if secret is not None:
        env.append({"name": "DOCKER_CONFIG", "value": SECRET_DIR})
        container["envFrom"] = [{"secretRef": {"name": secret}}]
        mounts.append({"name": "credentials", "mountPath": SECRET_DIR, "readOnly": True})
        volumes.append({"name": "credentials", "secret": {"secretName": secret, "defaultMode": 0o440}})
    container["volumeMounts"] = mounts
    container["resources"] = {"requests": {"cpu": CPU_REQUEST, "memory": MEMORY_REQUEST}}
    container["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        # Secret files are 0440 root:<fsGroup>, readable by the kitbridge user and nobody else.
        "securityContext": {"fsGroup": RUN_AS},
        "containers": [container],
        "volumes": volumes,
    }


def _header(key: str, name: str, namespace: str | None, secret: str | None) -> str:
    kubectl = f"kubectl -n {namespace}" if namespace is not None else "kubectl"
    lines = [
        f"# Generated by kitbridge {__version__} (kitbridge batch k8s {key}): {kubectl} apply -f <this file>",
        f"# Runs {key} as an Indexed Job, one shard per pod (Kubernetes >= 1.29).",
        f"# Watch: {kubectl} get job/{name} -w",
        f"# Logs: {kubectl} logs -l app.kubernetes.io/instance={name}",
    ]
    if secret is not None:
        where = f" in namespace {namespace}" if namespace is not None else ""
        lines += [
            f"# Needs Secret {secret}{where}, e.g.: {kubectl} create secret generic {secret}",
            "#   --from-literal=KITBRIDGE_REGISTRY_USER=... --from-literal=KITBRIDGE_REGISTRY_PASSWORD=...",
            "#   [--from-literal=HF_TOKEN=...] [--from-file=config.json=$HOME/.docker/config.json]",
        ]
    return "\n".join(lines) + "\n"
