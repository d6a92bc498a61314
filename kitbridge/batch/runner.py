"""Run a batch job file: expand, shard, skip what is done, run the rest in parallel, report.

Idempotence comes from the artifacts themselves: every import and conversion records its source,
resolved revision (or source digest) and options in manifest annotations (:mod:`kitbridge.provenance`),
and a copy is identical to its source. Before doing a job the runner resolves the source's revision
with metadata calls only (an HF commit, an MLflow version, a manifest digest) and reads the target's
manifest; a match is skipped without downloading anything. A batch that crashed is rerun as is and
only does what is left.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from kitbridge.batch.jobfile import JobFile
from kitbridge.errors import KitbridgeError, NotFoundError, UsageError
from kitbridge.oci.reference import Reference
from kitbridge.progress import NoProgress, Progress
from kitbridge.provenance import options_key, same_provenance
from kitbridge.transfer import RegistryOptions


@dataclass(frozen=True)
class Job:
    """One unit of work after ``from-repository`` expansion."""

    kind: str
    """``import``, ``convert`` or ``copy``."""
    source: str
    target: str
    line: int
    to: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable identity (sharding and reports): kind, source, target, format."""
        return "\x00".join((self.kind, self.source, self.target, self.to or ""))

    def shard_of(self, count: int) -> int:
        """The shard this job belongs to among ``count``: a hash, so it does not depend on file order."""
        return int.from_bytes(hashlib.sha256(self.key.encode()).digest()[:8], "big") % count


@dataclass
class JobResult:
    """What happened to one job (a report row)."""

    job: Job
    status: str = "pending"
    """``done``, ``skipped``, ``failed``, or ``planned``/``up-to-date`` in a dry run."""
    target: str = ""
    revision: str | None = None
    digest: str | None = None
    bytes_moved: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON report row."""
        return {
            "kind": self.job.kind,
            "source": self.job.source,
            "line": self.job.line,
            "target": self.target or self.job.target,
            "revision": self.revision,
            "digest": self.digest,
            "bytesMoved": self.bytes_moved,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "error": self.error,
        }


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N) with 0 <= I < N; a UsageError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if m is None or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise UsageError(f"--shard {text!r} is not I/N with 0 <= I < N", "e.g. --shard 0/4 … --shard 3/4")
    return int(m.group(1)), int(m.group(2))


def registry_options(defaults: Mapping[str, Any], base: RegistryOptions | None) -> RegistryOptions:
    """The CLI's registry options with the job file's ``defaults`` on top."""
    opts = base or RegistryOptions()
    changes: dict[str, Any] = {}
    if "plain-http" in defaults:
        changes["plain_http"] = bool(defaults["plain-http"])
    if "tls-verify" in defaults:
        changes["tls_verify"] = bool(defaults["tls-verify"])
    if "ca-file" in defaults:
        changes["ca_file"] = str(defaults["ca-file"])
    if "concurrency" in defaults:
        changes["concurrency"] = int(defaults["concurrency"])
    return replace(opts, **changes) if changes else opts


def expand(jf: JobFile, options: RegistryOptions) -> list[Job]:
    """The job file's jobs with every ``from-repository`` replaced by one job per tag (sorted)."""
    from kitbridge.transfer import remote_tags

    out: list[Job] = []
    for spec in jf.jobs:
        if spec.kind != "from-repository":
            out.append(Job(spec.kind, spec.source, spec.target, spec.line, spec.to, spec.options))
            continue
        try:
            tags = remote_tags(spec.source, options)
        except KitbridgeError as e:
            raise KitbridgeError(
                f"{jf.path}:{spec.line}: cannot list {spec.source}: {e.message}", e.hint
            ) from e
        kind = "convert" if spec.to else "copy"
        for tag in sorted(tags):
            out.append(
                Job(kind, f"{spec.source}:{tag}", f"{spec.target}:{tag}", spec.line, spec.to, spec.options)
            )
    return out


# --- targets and tag templates --------------------------------------------------------------------------


def source_name(source: str) -> str:
    """A repository name from a source (``hf://org/Name`` -> ``name``, ``models:/iris/3`` -> ``iris``)."""
    body = re.sub(r"^[a-z][a-z0-9+.-]*:/*", "", source, flags=re.IGNORECASE).split("@")[0]
    parts = [p for p in body.split("/") if p]
    if source.lower().startswith("models:") and len(parts) >= 2 and parts[-1].isdigit():
        parts = parts[:-1]
    if source.lower().startswith("runs:"):
        parts = parts[1:] or ["model"]
    name = PurePosixPath(parts[-1] if parts else "model").name.split(":")[0]
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "model"


def target_for(job: Job, template: str, revision: str | None) -> str:
    """The job's target; the tag template fills a target that ends in ``/`` (repo and tag) or has no tag.

    ``{name}`` is the source's name, ``{revision}``/``{version}`` the resolved revision (a commit sha cut
    to 12 characters), ``{tag}`` ``latest``.
    """
    short = (revision or "latest").replace("/", "-")
    if re.fullmatch(r"[0-9a-f]{13,}", short):
        short = short[:12]
    rendered = template.format(name=source_name(job.source), revision=short, tag="latest", version=short)
    repo_part, sep, tag_part = rendered.rpartition(":")
    if not sep:
        repo_part, tag_part = source_name(job.source), rendered
    target = job.target
    if target.endswith("/"):
        return f"{target}{repo_part}:{tag_part}"
    last = target.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return target
    return f"{target}:{tag_part}"


# --- one job --------------------------------------------------------------------------------------------


def _importer_options(job: Job) -> dict[str, Any]:
    o = job.options
    return {
        "quant": o.get("quant"),
        "tracking_uri": o.get("tracking-uri"),
        "allow_unfinished": o.get("allow-unfinished") or None,
        "include_run_artifacts": o.get("include-run-artifacts") or None,
    }


def _annotations(ref: str, options: RegistryOptions, local: bool) -> tuple[dict[str, str], str] | None:
    """The manifest annotations and digest at ``ref`` (registry or local store); None when absent."""
    try:
        if local:
            from kitbridge.modelkits import inspect

            data, digest = inspect(ref)
        else:
            from kitbridge.transfer import remote_manifest

            data, digest = remote_manifest(ref, options)
    except NotFoundError:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return {}, digest
    ann = doc.get("annotations") if isinstance(doc, dict) else None
    return (dict(ann) if isinstance(ann, dict) else {}), digest


def _is_local(ref: str) -> bool:
    return Reference.parse(ref).registry == "localhost"


def _run_import(job: Job, res: JobResult, template: str, options: RegistryOptions, dry_run: bool) -> None:
    from kitbridge.converters.importers.base import importer_for
    from kitbridge.importing import import_model, import_options_key

    o = job.options
    importer = importer_for(job.source)
    pin = getattr(importer, "pin", None)
    extra = {k: v for k, v in _importer_options(job).items() if v is not None}
    res.revision = pin(job.source, revision=o.get("revision"), **extra) if callable(pin) else None
    res.target = target_for(job, template, res.revision)
    fmt = str(o.get("format") or "kitops")
    key = import_options_key(
        fmt,
        o.get("layer-format"),
        str(o.get("compression") or "none"),
        list(o.get("include") or []),
        list(o.get("exclude") or []),
        o.get("quant"),
        o.get("include-run-artifacts") or None,
    )
    local = _is_local(res.target)
    found = _annotations(res.target, options, local)
    if found is not None and res.revision and same_provenance(found[0], job.source, res.revision, key):
        res.status, res.digest = ("up-to-date" if dry_run else "skipped"), found[1]
        return
    if dry_run:
        res.status = "planned"
        return
    result = import_model(
        job.source,
        res.target,
        fmt=fmt,
        layer_format=o.get("layer-format"),
        compression=str(o.get("compression") or "none"),
        include=list(o.get("include") or []),
        exclude=list(o.get("exclude") or []),
        revision=o.get("revision"),
        push_after=not local,
        options=options,
        **_importer_options(job),
    )
    assert result.packed is not None
    res.digest = result.packed.manifest.digest
    res.bytes_moved = result.pushed.bytes_sent if result.pushed else 0
    res.status = "done"


def _run_convert(job: Job, res: JobResult, options: RegistryOptions, dry_run: bool) -> None:
    from kitbridge.convert import convert

    res.target = job.target
    src_local = _is_local(job.source)
    source = _annotations(job.source, options, src_local)
    if source is None:
        raise NotFoundError(f"{job.source} does not exist", "check the source reference")
    res.revision = source[1]
    layer_format = job.options.get("layer-format")
    key = options_key(to=job.to, legacy_cnai=bool(job.options.get("legacy-cnai")), layer_format=layer_format)
    found = _annotations(job.target, options, _is_local(job.target))
    name = Reference.parse(job.source).name
    if found is not None and same_provenance(found[0], name, source[1], key):
        res.status, res.digest = ("up-to-date" if dry_run else "skipped"), found[1]
        return
    if dry_run:
        res.status = "planned"
        return
    if layer_format and not src_local:
        from kitbridge.transfer import pull

        pull(job.source, options=options)  # re-encoding reads the layers from the local store
    out = convert(
        job.source,
        job.target,
        to=str(job.to),
        legacy_cnai=bool(job.options.get("legacy-cnai")),
        options=options,
        layer_format=layer_format,
    )
    res.digest, res.bytes_moved, res.status = out.manifest.digest, out.bytes_uploaded, "done"


def _run_copy(job: Job, res: JobResult, options: RegistryOptions, dry_run: bool) -> None:
    from kitbridge.transfer import pull, push

    res.target = job.target
    source = _annotations(job.source, options, _is_local(job.source))
    if source is None:
        raise NotFoundError(f"{job.source} does not exist", "check the source reference")
    res.revision = source[1]
    found = _annotations(job.target, options, _is_local(job.target))
    if found is not None and found[1] == source[1]:
        res.status, res.digest = ("up-to-date" if dry_run else "skipped"), found[1]
        return
    if dry_run:
        res.status = "planned"
        return
    if not _is_local(job.source):
        pull(job.source, options=options)
    pushed = push(job.source, job.target, options=options)
    res.digest, res.bytes_moved, res.status = pushed.manifest.digest, pushed.bytes_sent, "done"


def run_job(job: Job, template: str, options: RegistryOptions, *, dry_run: bool = False) -> JobResult:
    """Do (or, in a dry run, plan) one job; failures are recorded in the result, never raised."""
    res = JobResult(job, target=job.target)
    start = time.monotonic()
    try:
        if job.kind == "import":
            _run_import(job, res, template, options, dry_run)
        elif job.kind == "convert":
            _run_convert(job, res, options, dry_run)
        else:
            _run_copy(job, res, options, dry_run)
    except KitbridgeError as e:
        res.status, res.error = "failed", str(e)
    except Exception as e:  # one broken job must not take the batch down
        res.status, res.error = "failed", f"internal error: {type(e).__name__}: {e}"
    res.seconds = time.monotonic() - start
    return res


# --- the batch ------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """Every job's result, in job order."""

    results: list[JobResult]
    shard: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        """No job failed."""
        return all(r.status != "failed" for r in self.results)

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def run_batch(
    jf: JobFile,
    *,
    jobs: int = 4,
    shard: tuple[int, int] | None = None,
    dry_run: bool = False,
    options: RegistryOptions | None = None,
    progress: Progress | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> BatchResult:
    """Expand, shard and run the jobs ``jobs`` at a time (threads: the work is I/O and subprocess-free)."""
    if jobs < 1:
        raise UsageError(f"--jobs {jobs} must be at least 1", "e.g. --jobs 4")
    opts = registry_options(jf.defaults, options)
    expanded = expand(jf, opts)
    if shard is not None:
        expanded = [j for j in expanded if j.shard_of(shard[1]) == shard[0]]
    progress = progress or NoProgress()
    overall = "batch"
    progress.start(overall, len(expanded))
    lock = threading.Lock()

    def one(job: Job) -> JobResult:
        task = f"{job.kind} {job.source}"
        progress.start(task, None)
        res = run_job(job, jf.tag_template, opts, dry_run=dry_run)
        progress.finish(task)
        with lock:
            progress.advance(overall, 1)
            if on_result is not None:
                on_result(res)
        return res

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kitbridge-batch") as pool:
        results = list(pool.map(one, expanded))
    progress.finish(overall)
    return BatchResult(results, shard)


def report_json(batch: BatchResult) -> str:
    """The JSON report."""
    return json.dumps(
        {
            "ok": batch.ok,
            "shard": f"{batch.shard[0]}/{batch.shard[1]}" if batch.shard else None,
            "counts": batch.counts(),
            "jobs": [r.as_dict() for r in batch.results],
        },
        indent=2,
    )


def report_markdown(batch: BatchResult) -> str:
    """The Markdown table: job, source, revision, target, digest, bytes moved, seconds, status, error."""

    def cell(value: object) -> str:
        return str(value if value not in (None, "") else "").replace("|", "\\|").replace("\n", " ")

    rows = [
        "| # | job | source | revision | target | digest | bytes moved | seconds | status | error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(batch.results, 1):
        d = r.as_dict()
        digest = (d["digest"] or "")[:19]
        rows.append(
            "| "
            + " | ".join(
                cell(v)
                for v in (
                    i,
                    d["kind"],
                    d["source"],
                    d["revision"],
                    d["target"],
                    digest,
                    d["bytesMoved"],
                    d["seconds"],
                    d["status"],
                    d["error"],
                )
            )
            + " |"
        )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(batch.counts().items()))
    return f"# kitbridge batch report\n\n{counts}\n\n" + "\n".join(rows) + "\n"
