"""``kitbridge batch FILE`` and ``kitbridge batch k8s FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kitbridge.cli.app import app, out
from kitbridge.errors import UsageError


@app.command("batch")
def batch_cmd(
    ctx: typer.Context,
    first: Annotated[
        str, typer.Argument(help="The job file, or `k8s` followed by the job file.", metavar="FILE")
    ],
    second: Annotated[
        str | None, typer.Argument(help="The job file after `k8s`.", show_default=False)
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Jobs run at a time.")] = 4,
    shard: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--shard", help="I/N: run only this machine's disjoint share of the jobs."),
    ] = None,
    report: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--report", help="Write PATH (JSON) and the same name with .md (a Markdown table)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would run and what is up to date.")
    ] = False,
    image: Annotated[Optional[str], typer.Option("--image", help="k8s: the kitbridge image.")] = None,  # noqa: UP045
    parallelism: Annotated[int, typer.Option("--parallelism", help="k8s: pods at a time.")] = 1,
    completions: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--completions", help="k8s: shards (default: one per job in the file)."),
    ] = None,
    namespace: Annotated[Optional[str], typer.Option("--namespace", help="k8s: namespace.")] = None,  # noqa: UP045
    secret: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--secret", help="k8s: Secret with registry/HF/MLflow credentials (envFrom)."),
    ] = None,
) -> None:
    """Run a job file of imports, conversions and copies; idempotent, resumable, shardable."""
    from kitbridge.batch.jobfile import load_job_file

    o = out(ctx)
    if first == "k8s":
        if second is None:
            raise UsageError("batch k8s needs the job file", "kitbridge batch k8s FILE --image IMG")
        from kitbridge.batch.k8s import render_k8s

        path = Path(second)
        jf = load_job_file(path)  # a file the pods would reject is rejected here
        if not image:
            raise UsageError("batch k8s needs --image", "the kitbridge image the pods run, pinned by digest")
        text = render_k8s(
            path.read_text(encoding="utf-8"),
            job_file_name=path.name,
            image=image,
            completions=completions or len(jf.jobs),
            parallelism=parallelism,
            namespace=namespace,
            secret=secret,
        )
        o.result(text.rstrip("\n"), {"manifest": text})
        return
    if second is not None:
        raise UsageError(f"unexpected argument {second!r}", "kitbridge batch FILE [options]")
    from kitbridge.batch.runner import parse_shard, report_json, report_markdown, run_batch

    jf = load_job_file(first)
    part = parse_shard(shard) if shard else None

    def said(r: object) -> None:
        from kitbridge.batch.runner import JobResult

        assert isinstance(r, JobResult)
        line = f"{r.status:<10} {r.job.kind:<7} {r.job.source} -> {r.target or r.job.target}"
        if r.error:
            line += f": {r.error}"
        o.info(line)

    with o.progress() as bars:
        batch = run_batch(
            jf, jobs=jobs, shard=part, dry_run=dry_run, options=o.registry, progress=bars, on_result=said
        )
    doc_text = report_json(batch)
    if report is not None:
        report.write_text(doc_text + "\n")
        report.with_suffix(".md").write_text(report_markdown(batch))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(batch.counts().items())) or "no jobs"
    import json

    o.result(f"{len(batch.results)} jobs: {counts}", json.loads(doc_text))
    if not batch.ok:
        raise typer.Exit(1)
