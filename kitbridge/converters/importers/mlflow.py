"""The MLflow importer: ``runs:/RUN_ID[/PATH]``, ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
``models:/m-ID`` and ``mlflow-artifacts:/…`` from the tracking server in ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` (any store MLflow reads: an HTTP server, ``sqlite:///``, a file store).

Both layouts MLflow has written are read:

* **MLflow 3**: a logged model is an entity of its own (``m-<id>``) whose files live under
  ``<experiment>/models/m-<id>/artifacts``; the run that logged it lists no artifacts. A run may
  have several logged models; ``runs:/ID`` then asks which (``runs:/ID/NAME``).
* **MLflow 2**: the model is a folder of the run's artifacts (``runs:/ID/model``), found by its
  ``MLmodel`` file.

Only the model's files are downloaded (``--include-run-artifacts`` adds the run's other artifacts
under ``run-artifacts/``), with MLflow's own artifact client, which fetches files in parallel. The
provenance -- tracking URI without credentials, experiment, run, logged-model id, registered
name/version/alias, flavors, framework and versions, the run's params, final metrics and tags, the
signature -- goes into ``Provenance.extra`` under ``mlflow.*`` keys and the run's params/metrics/tags.

``mlflow`` is an optional dependency (``pip install 'kitbridge[mlflow]'``); it is imported only when an
MLflow source is resolved.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from kitbridge.converters.importers.base import Provenance, SourceFile, SourceTree
from kitbridge.converters.importers.local import PathFilter
from kitbridge.errors import KitbridgeError, NotFoundError, SourceAccessError, SourceError, UsageError
from kitbridge.home import home_dir
from kitbridge.parallel import run_parallel
from kitbridge.profile.mlmodel import read_mlmodel

SCHEMES = ("runs", "models", "mlflow-artifacts")
_MODEL_ID = re.compile(r"m-[0-9a-f]{6,}")
_RUN_ARTIFACTS = "run-artifacts"


# --- the source URI -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLflowSource:
    """A parsed MLflow model URI."""

    uri: str
    kind: str
    """``run``, ``version``, ``alias``, ``logged-model`` or ``artifacts``."""
    run_id: str | None = None
    path: str | None = None
    """``runs:/ID/PATH``: a logged model's name (MLflow 3) or an artifact folder (MLflow 2)."""
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    model_id: str | None = None

    @classmethod
    def parse(cls, source: str) -> MLflowSource:
        """Parse one of the URI forms in the module docstring; anything else is a UsageError."""
        scheme, _, rest = source.partition(":")
        scheme = scheme.lower()
        body = rest.lstrip("/")
        if scheme == "mlflow-artifacts":
            if not body:
                raise UsageError(f"{source!r} names no artifact path", "write mlflow-artifacts:/<path>")
            return cls(source, "artifacts")
        if scheme == "runs":
            run_id, _, path = body.partition("/")
            if not run_id:
                raise UsageError(f"{source!r} names no run", "write runs:/RUN_ID or runs:/RUN_ID/MODEL")
            return cls(source, "run", run_id=run_id, path=path.strip("/") or None)
        if scheme == "models":
            if _MODEL_ID.fullmatch(body):
                return cls(source, "logged-model", model_id=body)
            if "@" in body:
                name, _, alias = body.rpartition("@")
                if name and alias and "/" not in alias:
                    return cls(source, "alias", name=name, alias=alias)
            name, _, version = body.rpartition("/")
            if name and (version.isdigit() or version == "latest"):
                return cls(source, "version", name=name, version=version)
            raise UsageError(
                f"{source!r} is not a model URI MLflow knows",
                "write models:/NAME/VERSION, models:/NAME/latest, models:/NAME@ALIAS or models:/m-<id>",
            )
        raise UsageError(f"{source!r} is not an MLflow URI", "use runs:/, models:/ or mlflow-artifacts:/")


def public_uri(uri: str) -> str:
    """A tracking URI without credentials (``https://user:token@host`` -> ``https://host``)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# --- what MLflow said -----------------------------------------------------------------------------------


@dataclass
class Resolved:
    """The model an MLflow URI names: where its files are, and what MLflow knows about it."""

    location: str
    """The artifact URI of the model's folder (what gets listed and downloaded)."""
    run: Any = None
    logged_model: Any = None
    version: Any = None
    alias: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def _mlflow() -> Any:
    # MLflow draws a tqdm bar per downloaded file on stderr; kitbridge reports progress itself.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import mlflow
    except ImportError:
        raise UsageError(
            "importing from MLflow needs the mlflow package",
            "pip install 'kitbridge[mlflow]'",
        ) from None
    return mlflow


def _tracking_uri(explicit: str | None) -> str:
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise UsageError(
            "no MLflow tracking server given",
            "set MLFLOW_TRACKING_URI or pass --tracking-uri (http://host:5000, sqlite:///mlflow.db, …)",
        )
    return uri


def _check_reachable(uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when an HTTP tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=10)
    except requests.RequestException as e:
        raise SourceError(
            f"the MLflow tracking server at {public_uri(uri)} cannot be reached ({type(e).__name__})",
            "check MLFLOW_TRACKING_URI / --tracking-uri and that the server is running",
        ) from e


def _connect(tracking_uri: str | None) -> tuple[Any, str]:
    """An MLflow client for ``--tracking-uri`` / ``MLFLOW_TRACKING_URI``, after a quick reachability check.

    The URI is also made MLflow's current one: artifact repositories (``mlflow-artifacts:/``) find
    their server through it.
    """
    mlflow = _mlflow()
    uri = _tracking_uri(tracking_uri)
    _check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    return _call(mlflow.MlflowClient, "the tracking store", uri, tracking_uri=uri), uri


def _mlflow_error(e: Exception, what: str, uri: str) -> KitbridgeError:
    code = str(getattr(e, "error_code", ""))
    full = str(getattr(e, "message", e))
    msg = " ".join(full.split())[:500]
    if "MLFLOW_ALLOW_FILE_STORE" in full:
        return SourceError(
            f"MLflow refuses the file store {public_uri(uri)} as a tracking backend",
            "set MLFLOW_ALLOW_FILE_STORE=true to read it anyway, or migrate it to a database (sqlite:///…)",
        )
    not_found = code == "INVALID_PARAMETER_VALUE" and "not found" in full.lower()  # an unknown alias
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or not_found:
        return NotFoundError(
            f"{what} does not exist on {public_uri(uri)}: {msg}", "check the id, name or version"
        )
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return SourceAccessError(
            f"the MLflow server at {public_uri(uri)} refused access to {what}: {msg}",
            "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        )
    return SourceError(
        f"MLflow could not read {what} from {public_uri(uri)}: {msg}", "check the server and the URI"
    )


def _call(fn: Any, what: str, uri: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except KitbridgeError:
        raise
    except Exception as e:
        raise _mlflow_error(e, what, uri) from e


def _logged_models_of_run(client: Any, run: Any, uri: str) -> list[Any]:
    try:
        found = client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
    except AttributeError:  # an MLflow 2 client: there are no logged-model entities
        return []
    except Exception as e:
        raise _mlflow_error(e, f"the logged models of run {run.info.run_id}", uri) from e
    return sorted(found, key=lambda m: (m.name or "", m.model_id))


def _mlflow2_models(client: Any, run_id: str, uri: str) -> list[str]:
    """Folders of a run's artifacts that hold an MLmodel (MLflow 2 layout), breadth first."""
    out: list[str] = []
    queue: list[str | None] = [None]
    while queue and len(out) < 50:
        path = queue.pop(0)
        items = _call(client.list_artifacts, f"the artifacts of run {run_id}", uri, run_id, path)
        names = {Path(i.path).name for i in items if not i.is_dir}
        if "MLmodel" in names:
            out.append(path or "")
            continue
        queue += [i.path for i in items if i.is_dir]
    return out


def _choose_in_run(client: Any, run: Any, src: MLflowSource, uri: str) -> tuple[str, Any]:
    """The model folder of ``runs:/ID[/PATH]``: a logged model of the run, or an MLmodel folder."""
    run_id = run.info.run_id
    models = _logged_models_of_run(client, run, uri)
    if src.path:
        named = [m for m in models if m.name == src.path]
        if named:
            return named[0].artifact_location, named[0]
        top = src.path.split("/")[0]
        named = [m for m in models if m.name == top]
        if named:
            return f"{named[0].artifact_location.rstrip('/')}/{src.path[len(top) :].strip('/')}", named[0]
        return f"{run.info.artifact_uri.rstrip('/')}/{src.path}", None
    if len(models) == 1:
        return models[0].artifact_location, models[0]
    if len(models) > 1:
        choices = ", ".join(f"runs:/{run_id}/{m.name}" for m in models)
        raise UsageError(f"run {run_id} logged {len(models)} models", f"pick one: {choices}")
    folders = _mlflow2_models(client, run_id, uri)
    if len(folders) == 1:
        return f"{run.info.artifact_uri.rstrip('/')}/{folders[0]}".rstrip("/"), None
    if folders:
        choices = ", ".join(f"runs:/{run_id}/{f}" for f in folders)
        raise UsageError(f"run {run_id} has {len(folders)} model folders", f"pick one: {choices}")
    raise NotFoundError(
        f"run {run_id} has no logged model",
        "log one with mlflow.<flavor>.log_model, or import a model URI (models:/NAME/VERSION)",
    )


def _model_id_of(source: str) -> str | None:
    body = source[len("models:/") :] if source.startswith("models:/") else ""
    return body if _MODEL_ID.fullmatch(body) else None


def resolve_model(client: Any, src: MLflowSource, uri: str, *, allow_unfinished: bool = False) -> Resolved:
    """Turn an MLflow URI into the model's artifact location and the entities behind it."""
    r: Resolved
    if src.kind in ("version", "alias"):
        if src.kind == "alias":
            what = f"model {src.name!r} alias {src.alias!r}"
            mv = _call(client.get_model_version_by_alias, what, uri, src.name, src.alias)
        elif src.version == "latest":
            what = f"the latest version of model {src.name!r}"
            found = _call(client.search_model_versions, what, uri, f"name = '{src.name}'")
            if not found:
                raise NotFoundError(f"model {src.name!r} has no versions on {public_uri(uri)}", "check it")
            mv = max(found, key=lambda v: int(v.version))
        else:
            what = f"model {src.name!r} version {src.version}"
            mv = _call(client.get_model_version, what, uri, src.name, src.version)
        loc = _call(client.get_model_version_download_uri, what, uri, mv.name, mv.version)
        if loc.startswith("runs:/"):  # an MLflow 2 registration: the run's real artifact location
            from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

            loc = _call(RunsArtifactRepository.get_underlying_uri, what, uri, loc, uri)
        r = Resolved(loc, version=mv, alias=src.alias)
        # MLflow 3 registers a logged model with source models:/m-<id> (ModelVersion.model_id is often None).
        model_id = getattr(mv, "model_id", None) or _model_id_of(str(mv.source or ""))
        if model_id:
            r.logged_model = _call(client.get_logged_model, f"logged model {model_id}", uri, model_id)
        if mv.run_id:
            r.run = _call(client.get_run, f"run {mv.run_id}", uri, mv.run_id)
    elif src.kind == "logged-model":
        lm = _call(client.get_logged_model, f"logged model {src.model_id}", uri, src.model_id)
        r = Resolved(lm.artifact_location, logged_model=lm)
        if lm.source_run_id:
            r.run = _call(client.get_run, f"run {lm.source_run_id}", uri, lm.source_run_id)
    elif src.kind == "run":
        run = _call(client.get_run, f"run {src.run_id}", uri, src.run_id)
        loc, lm = _choose_in_run(client, run, src, uri)
        r = Resolved(loc, run=run, logged_model=lm)
    else:
        r = Resolved(src.uri)
    if r.run is not None and r.run.info.status != "FINISHED" and not allow_unfinished:
        raise UsageError(
            f"run {r.run.info.run_id} is {r.run.info.status}, not FINISHED",
            "import a finished run, or pass --allow-unfinished",
        )
    return r


# --- listing and downloading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactFile:
    """One file of the model folder as the artifact store lists it."""

    path: str
    size: int


def _list_files(repo: Any, what: str, uri: str, path: str | None = None) -> list[ArtifactFile]:
    out: list[ArtifactFile] = []
    for item in _call(repo.list_artifacts, what, uri, path):
        if item.is_dir:
            out += _list_files(repo, what, uri, item.path)
        else:
            out.append(ArtifactFile(item.path, int(item.file_size or 0)))
    return out


def _artifact_repo(location: str) -> Any:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(location)


class MLflowImporter:
    """MLflow runs, registered model versions and aliases, logged models, artifact URIs."""

    schemes: ClassVar[tuple[str, ...]] = SCHEMES

    def pin(
        self, source: str, *, tracking_uri: str | None = None, allow_unfinished: bool = False, **_options: Any
    ) -> str | None:
        """The revision an import of ``source`` records (``NAME/VERSION``, run id), with no download."""
        src = MLflowSource.parse(source)
        client, uri = _connect(tracking_uri)
        res = resolve_model(client, src, uri, allow_unfinished=allow_unfinished)
        return _provenance(src, res, uri, None).revision

    def resolve(
        self,
        source: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        revision: str | None = None,
        work_dir: Path | None = None,
        tracking_uri: str | None = None,
        allow_unfinished: bool = False,
        include_run_artifacts: bool = False,
        dry_run: bool = False,
    ) -> SourceTree:
        """Resolve the URI, download the model's files into ``work_dir`` (none with ``dry_run``)."""
        if revision is not None:
            raise UsageError(
                f"--revision does not apply to {source!r}",
                "an MLflow URI names its version itself: models:/NAME/VERSION or runs:/RUN_ID",
            )
        src = MLflowSource.parse(source)
        client, uri = _connect(tracking_uri)
        res = resolve_model(client, src, uri, allow_unfinished=allow_unfinished)
        repo = _artifact_repo(res.location)
        listed = _list_files(repo, f"the files of {source}", uri)
        if not listed:
            raise NotFoundError(f"{source} has no files at {res.location}", "check the URI")
        filt = PathFilter.compile(include, exclude)
        files = [f for f in listed if filt.keeps(f.path)]
        skipped = tuple(f.path for f in listed if not filt.keeps(f.path))
        extra_files: list[ArtifactFile] = []
        if include_run_artifacts and res.run is not None:
            run_repo = _artifact_repo(res.run.info.artifact_uri)
            inside = res.location.rstrip("/") + "/"
            extra_files = [
                ArtifactFile(f"{_RUN_ARTIFACTS}/{f.path}", f.size)
                for f in _list_files(run_repo, f"the artifacts of run {res.run.info.run_id}", uri)
                if not (res.run.info.artifact_uri.rstrip("/") + "/" + f.path).startswith(inside)
            ]
        root = (work_dir or Path(home_dir() / "tmp")) / "mlflow-model"
        if dry_run:  # only the MLmodel (a few hundred bytes): it says which file is the model
            _download(repo, [f for f in files if f.path == "MLmodel"], root, uri, source)
        else:
            _download(repo, files, root, uri, source)
            if extra_files:
                _download(
                    run_repo,
                    [ArtifactFile(f.path.split("/", 1)[1], f.size) for f in extra_files],
                    root / _RUN_ARTIFACTS,
                    uri,
                    source,
                )
        all_files = files + extra_files
        tree_files = [SourceFile(f.path, root / f.path, f.size, role=_role(f.path)) for f in all_files]
        if not dry_run:
            tree_files = [
                SourceFile(f.path, f.abspath, f.abspath.stat().st_size, role=f.role) for f in tree_files
            ]
        provenance = _provenance(src, res, uri, root / "MLmodel")
        return SourceTree(root, tree_files, provenance, skipped)


def _role(path: str) -> Any:
    """``MLmodel`` (and the registry's metadata file) describe how to load the model: model config parts."""
    if path in ("MLmodel", "registered_model_meta"):
        return "weight-config"
    if path.startswith(_RUN_ARTIFACTS + "/"):
        return "code"
    return None


def _download(repo: Any, files: Sequence[ArtifactFile], root: Path, uri: str, source: str) -> None:
    """Download the listed files with MLflow's artifact client, several at a time, into ``root``."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    def one(f: ArtifactFile, cancel: Any) -> None:
        if cancel.is_set():
            return
        dest = root / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        got = Path(_call(repo.download_artifacts, f"{f.path} of {source}", uri, f.path, str(root)))
        if got.resolve() != dest.resolve():
            os.replace(got, dest)

    run_parallel([partial(one, f) for f in sorted(files, key=lambda f: -f.size)], 4)


def _provenance(src: MLflowSource, res: Resolved, uri: str, mlmodel: Path | None) -> Provenance:
    extra: dict[str, str] = {"mlflow.tracking_uri": public_uri(uri), "mlflow.artifact_location": res.location}
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    revision = None
    default_tag = None
    if res.run is not None:
        info, data = res.run.info, res.run.data
        extra["mlflow.run_id"] = info.run_id
        extra["mlflow.run_name"] = info.run_name or ""
        extra["mlflow.experiment_id"] = info.experiment_id
        extra["mlflow.run_status"] = info.status
        params = dict(data.params)
        metrics = {k: float(v) for k, v in data.metrics.items()}
        tags = {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}
        revision = info.run_id
        default_tag = info.run_id
    if res.logged_model is not None:
        extra["mlflow.model_id"] = res.logged_model.model_id
        extra["mlflow.model_name"] = res.logged_model.name or ""
        if not res.run:
            revision = res.logged_model.model_id
            default_tag = res.logged_model.model_id
    if res.version is not None:
        extra["mlflow.registered_name"] = res.version.name
        extra["mlflow.registered_version"] = str(res.version.version)
        revision = f"{res.version.name}/{res.version.version}"
        default_tag = str(res.version.version)
    if res.alias:
        extra["mlflow.registered_alias"] = res.alias
    if mlmodel is not None and mlmodel.is_file():
        info_ml = read_mlmodel(mlmodel)
        extra["mlflow.flavors"] = ",".join(info_ml.flavor_names)
        for key, value in (
            ("mlflow.framework", info_ml.framework),
            ("mlflow.framework_version", info_ml.framework_version),
            ("mlflow.python_version", info_ml.python_version),
            ("mlflow.mlflow_version", info_ml.mlflow_version),
        ):
            if value:
                extra[key] = value
        if info_ml.signature is not None:
            extra["mlflow.signature"] = json.dumps(_signature_doc(info_ml.signature), separators=(",", ":"))
    name = extra.get("mlflow.registered_name") or extra.get("mlflow.model_name") or "model"
    extra["mlflow.default_name"] = name
    if url := _ui_url(public_uri(uri), extra):
        extra["mlflow.url"] = url
    return Provenance(
        source_uri=src.uri,
        importer=src.uri.split(":", 1)[0].lower(),
        revision=revision,
        params=params,
        metrics=metrics,
        tags=tags,
        extra=extra,
        default_tag=default_tag,
    )


def _ui_url(base: str, extra: Mapping[str, str]) -> str | None:
    """The MLflow UI page of the model version (else the run) on an HTTP tracking server."""
    if not base.startswith(("http://", "https://")):
        return None
    base = base.rstrip("/")
    if "mlflow.registered_name" in extra:
        name = urllib.parse.quote(extra["mlflow.registered_name"], safe="")
        return f"{base}/#/models/{name}/versions/{extra['mlflow.registered_version']}"
    if "mlflow.run_id" in extra:
        return f"{base}/#/experiments/{extra['mlflow.experiment_id']}/runs/{extra['mlflow.run_id']}"
    return None


def _signature_doc(sig: Any) -> dict[str, Any]:
    def fields(items: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for f in items:
            d: dict[str, Any] = {"type": f.type}
            if f.name is not None:
                d["name"] = f.name
            if f.dtype is not None:
                d["dtype"] = f.dtype
            if f.shape is not None:
                d["shape"] = list(f.shape)
            out.append(d)
        return out

    doc: dict[str, Any] = {"inputs": fields(sig.inputs), "outputs": fields(sig.outputs)}
    if sig.params:
        doc["params"] = fields(sig.params)
    return doc


def mlflow_parameters(prov: Provenance) -> dict[str, Any]:
    """The Kitfile ``model.parameters.mlflow`` block for an MLflow provenance (empty for other sources)."""
    e: Mapping[str, str] = prov.extra
    if "mlflow.tracking_uri" not in e:
        return {}
    out: dict[str, Any] = {"trackingUri": e["mlflow.tracking_uri"]}
    if "mlflow.experiment_id" in e:
        out["experimentId"] = e["mlflow.experiment_id"]
    if "mlflow.run_id" in e:
        out["run"] = {"id": e["mlflow.run_id"], "name": e.get("mlflow.run_name", "")}
    if "mlflow.model_id" in e:
        out["modelId"] = e["mlflow.model_id"]
    if "mlflow.registered_name" in e:
        reg = {"name": e["mlflow.registered_name"], "version": e["mlflow.registered_version"]}
        if "mlflow.registered_alias" in e:
            reg["alias"] = e["mlflow.registered_alias"]
        out["registeredModel"] = reg
    if "mlflow.flavors" in e:
        out["flavors"] = e["mlflow.flavors"].split(",")
    for key, name in (
        ("mlflow.framework", "framework"),
        ("mlflow.framework_version", "frameworkVersion"),
        ("mlflow.python_version", "pythonVersion"),
        ("mlflow.mlflow_version", "mlflowVersion"),
    ):
        if key in e:
            out[name] = e[key]
    if prov.params:
        out["params"] = dict(sorted(prov.params.items()))
    if prov.metrics:
        out["metrics"] = dict(sorted(prov.metrics.items()))
    if prov.tags:
        out["tags"] = dict(sorted(prov.tags.items()))
    if "mlflow.signature" in e:
        out["signature"] = json.loads(e["mlflow.signature"])
    return out
