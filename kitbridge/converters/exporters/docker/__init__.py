"""``kitbridge export docker``: a ModelKit becomes a runnable, hardened Docker build context.

:func:`export_docker` reads the ModelKit from the local store (pulling it first when the reference
names a registry and it is not here), picks a runtime (``auto`` detects it from the Kitfile, the
MLflow provenance and the model file's header), unpacks the model into the context with the store's
safety rules (``baked``) or leaves a volume for it (``mounted``), and writes the Dockerfile,
``.dockerignore``, README and server code. Docker is not needed; ``build=True`` builds the context
with whichever of docker, podman or buildah is on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitbridge.converters.exporters.base import ModelFacts, pick_runtime
from kitbridge.converters.exporters.docker.context import (
    ContextSpec,
    discard,
    finish_output,
    normalize_modes,
    prepare_output,
    render_dockerfile,
    render_dockerignore,
    render_readme,
    server_file,
)
from kitbridge.errors import KitbridgeError, NotFoundError, UsageError
from kitbridge.formats import mediatypes as mt
from kitbridge.home import open_store
from kitbridge.kitfile import clean_path
from kitbridge.modelkits import ModelKit, load_modelkit
from kitbridge.oci.reference import Reference
from kitbridge.oci.store import Store

MODES = ("baked", "mounted")
_TAG_CHARS = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class ExportResult:
    """What ``export docker`` wrote (and built)."""

    directory: Path
    runtime: str
    reason: str
    mode: str
    tag: str
    files: list[str]
    built_with: str | None = None


def _modelkit(reference: str, store: Store, options: Any) -> ModelKit:
    try:
        return load_modelkit(reference, store)
    except NotFoundError:
        ref = Reference.parse(reference)
        if ref.registry == "localhost":
            raise
    from kitbridge.transfer import pull  # the registry layer fetches it; the exporter never talks to one

    pull(reference, options=options, store=store)
    return load_modelkit(reference, store)


def _header(mk: ModelKit, store: Store, path: str) -> bytes:
    for layer in mk.manifest.layers:
        ann = layer.annotations or {}
        where = ann.get(mt.ANN_FILEPATH) or ann.get("org.cncf.model.filepath")
        if where and clean_path(where) == clean_path(path) and layer.media_type.endswith("raw"):
            with store.open_blob(layer.digest) as f:
                return f.read(64)
    return b""


def model_facts(mk: ModelKit, store: Store) -> ModelFacts:
    """What detection needs: the manifest, the Kitfile and (raw layers) the first bytes of the model file."""
    kf = mk.kitfile
    model = kf.model
    params: Mapping[str, Any] = (model.parameters or {}) if model else {}
    model_path = clean_path(model.path) if model and model.path else ""
    mlflow = params.get("mlflow")
    return ModelFacts(
        kitfile=kf,
        reference=mk.reference.name,
        digest=mk.digest,
        files=tuple(clean_path(e.path) for e in kf.layer_entries()),
        model_path=model_path,
        model_format=(model.format if model else "") or "",
        framework=(model.framework if model else "") or "",
        header=_header(mk, store, model_path) if model_path else b"",
        mlflow=mlflow if isinstance(mlflow, Mapping) else {},
        config={k: params[k] for k in ("architecture", "task", "family") if k in params},
    )


def default_tag(facts: ModelFacts) -> str:
    """``<name>:<runtime>`` made a valid image reference."""
    return (_TAG_CHARS.sub("-", facts.name.lower()).strip("-._") or "model") + ":latest"


def export_docker(
    reference: str,
    out_dir: str | os.PathLike[str],
    *,
    runtime: str = "auto",
    mode: str = "baked",
    base_image: str | None = None,
    port: int | None = None,
    build: bool = False,
    tag: str | None = None,
    store: Store | None = None,
    options: Any = None,
) -> ExportResult:
    """Write a Docker build context for ``reference`` into ``out_dir`` (see the module docstring)."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}", "use --mode baked or --mode mounted")
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"port {port} is out of range", "pick a port between 1 and 65535")
    store = store or open_store()
    mk = _modelkit(reference, store, options)
    facts = model_facts(mk, store)
    rt, reason = pick_runtime(facts, runtime)
    plan = rt.plan(facts, mode=mode, port=port, base_image=base_image)
    spec = ContextSpec(facts, rt.name, reason, mode, plan)
    image_tag = tag or default_tag(facts)
    out = Path(out_dir)
    tmp = prepare_output(out)
    try:
        _write_context(tmp, spec, mk, store, image_tag)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        finish_output(tmp, out)
    except BaseException:
        discard(tmp)
        raise
    built = build_context(out, image_tag) if build else None
    return ExportResult(out, rt.name, reason, mode, image_tag, files, built)


def _write_context(root: Path, spec: ContextSpec, mk: ModelKit, store: Store, tag: str) -> None:
    from kitbridge.unpack import unpack

    app = root / "kitbridge"
    app.mkdir()
    (app / "healthcheck.py").write_text(server_file("healthcheck.py"))
    for name, text in spec.plan.files.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    if spec.mode == "baked":
        unpack(mk.reference, root / "model", store=store)
        _copy_build_files(root / "model", app, spec.plan.build_files)
    elif spec.plan.build_files:
        _extract_build_files(mk, store, app, spec.plan.build_files)
    normalize_modes(root)
    (root / "Dockerfile").write_text(render_dockerfile(spec))
    (root / ".dockerignore").write_text(render_dockerignore(spec.mode))
    (root / "README.md").write_text(render_readme(spec, tag))


def _copy_build_files(model_root: Path, app: Path, build_files: Mapping[str, str]) -> None:
    """Files the build needs from the model (MLflow's requirements.txt); an empty one when it has none."""
    for dest, src in build_files.items():
        path = model_root / src
        if path.is_file():
            shutil.copyfile(path, app / dest)
        else:
            (app / dest).write_text("")


def _extract_build_files(mk: ModelKit, store: Store, app: Path, build_files: Mapping[str, str]) -> None:
    """Mounted mode: take only the build files out of the store, not the (possibly huge) model.

    A build file that is an entry of its own is selected by path; one inside a directory layer needs
    that layer, so only then is the whole ModelKit unpacked.
    """
    from kitbridge.unpack import unpack

    scratch = Path(tempfile.mkdtemp(prefix="kitbridge-export-"))
    try:
        paths = ",".join(build_files.values())
        unpack(mk.reference, scratch / "some", store=store, filters=[f"model,code,docs,datasets:{paths}"])
        root = scratch / "some"
        if not all((root / src).is_file() for src in build_files.values()):
            unpack(mk.reference, scratch / "all", store=store)
            root = scratch / "all"
        _copy_build_files(root, app, build_files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


BUILDERS = ("docker", "podman", "buildah")


def build_context(directory: Path, tag: str) -> str:
    """Build the context with the first of docker, podman, buildah on PATH; returns the tool used."""
    for tool in BUILDERS:
        exe = shutil.which(tool)
        if exe is None:
            continue
        if tool == "docker":
            cmd = [exe, "build", "-t", tag, str(directory)]
        elif tool == "podman":
            cmd = [exe, "build", "--format", "docker", "-t", tag, str(directory)]
        else:
            cmd = [exe, "bud", "--format", "docker", "-t", tag, str(directory)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise KitbridgeError(
                f"{tool} build failed: {tail}", f"the context is in {directory}; fix and rebuild"
            )
        return tool
    raise KitbridgeError(
        "--build needs docker, podman or buildah on PATH, and none is installed",
        f"the context is in {directory}: build it where one is",
    )
