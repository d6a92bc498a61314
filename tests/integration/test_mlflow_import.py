"""``kitbridge import`` from MLflow end to end: the real CLI against a real ``mlflow server``.

Models are logged with the real mlflow client (tests/mlflow_models.py) to the session's MLflow server
(SQLite backend, proxied artifacts), to a direct ``sqlite:///`` store, to a file store and to a
basic-auth server. Imports are checked against what the server stores on disk (byte for byte), against
its access log (what was downloaded), and by loading the unpacked ModelKit with
``mlflow.pyfunc.load_model`` and comparing predictions with the original in-memory model's.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pytest
import sklearn
import yaml
from conftest import CLI, CLIResult, run_json, stored_refs
from conftest import unpacked_files as files_of
from mlflow_models import (
    FEATURES,
    LOSS_HISTORY,
    PYFUNC_MODULE,
    LoggedModel,
    TwoModels,
    experiment_id,
    iris_like,
    log_mlflow2_layout,
    log_pyfunc_with_code,
    log_sklearn,
    log_two_models_in_one_run,
    predict_dir,
    sklearn_requirements,
    sqlite_uri,
    start_unfinished_run,
    to_list,
    tracking,
)
from mlflow_server import AUTH_APP, MLflowServer, free_port, serve_mlflow
from registry_server import Registry
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from kitbridge.formats.modelpack_schema import validate_config

pytestmark = pytest.mark.slow

NOTES = "hello from the run\n"  # a run artifact that is not part of any model
EXAMPLES = {"input_example.json", "serving_input_example.json"}
ENV_FILES = {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt"}
READER, READER_PASSWORD = "kb-reader", "kb-reader-password-0123"


# --- helpers --------------------------------------------------------------------------------------------


def one_line_error(r: CLIResult, code: int = 1) -> str:
    """A failed command's error: the exit code, and one ``error: …`` line on stderr (no traceback)."""
    assert r.returncode == code, f"exited {r.returncode}, wanted {code}: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def ml_params(doc: dict[str, Any]) -> dict[str, Any]:
    """The Kitfile's ``model.parameters.mlflow`` block of an import's --json document."""
    block = doc["kitfile"]["model"]["parameters"]["mlflow"]
    assert isinstance(block, dict)
    return block


def kitfile_paths(kitfile: dict[str, Any], section: str) -> set[str]:
    return {e["path"] for e in kitfile.get(section) or []}


def import_unpack(cli: CLI, source: str, out: Path, *extra: str, ref: str | None = None) -> dict[str, Any]:
    """``import SOURCE -t REF --json`` into the local store, then ``unpack REF -d out``; the --json doc."""
    ref = ref or f"mlflow-tests/{re.sub(r'[^a-z0-9]+', '-', out.name.lower()).strip('-')}:1"
    doc = run_json(cli, "import", source, "-t", ref, *extra)
    cli.ok("unpack", ref, "-d", str(out))
    return doc


def model_files_on_server(server: MLflowServer, m: LoggedModel) -> dict[str, bytes]:
    """What the server's artifact store holds for the model: MLflow 3 logged model or MLflow 2 folder."""
    if m.model_id is not None:
        d = server.artifacts_dir / m.experiment_id / "models" / m.model_id / "artifacts"
    else:
        d = server.artifacts_dir / m.experiment_id / m.run_id / "artifacts" / m.name
    assert (d / "MLmodel").is_file(), d
    return files_of(d)


class AccessLog:
    """The artifact downloads in the MLflow server's log from now on (uvicorn logs every request)."""

    def __init__(self, server: MLflowServer) -> None:
        self.server = server
        self.start = server.log_path.stat().st_size

    def downloads(self, settle: float = 0.5) -> list[str]:
        """Paths of ``GET /api/2.0/mlflow-artifacts/artifacts/<path>`` (a file's bytes, not a listing)."""
        time.sleep(settle)  # the access log line is written after the response
        with open(self.server.log_path, "rb") as f:
            f.seek(self.start)
            text = f.read().decode(errors="replace")
        return re.findall(r'"GET /api/2\.0/mlflow-artifacts/artifacts/([^ ?"]+) HTTP', text)


def assert_no_credentials(text: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in text


# --- fixtures -------------------------------------------------------------------------------------------


def _scrub(cli: CLI, tracking_uri: str | None) -> CLI:
    """No MLFLOW_* variable of the host reaches the CLI; MLFLOW_TRACKING_URI is ours (or unset)."""
    for k in [k for k in cli.env if k.startswith("MLFLOW_")]:
        del cli.env[k]
    cli.env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if tracking_uri is not None:
        cli.env["MLFLOW_TRACKING_URI"] = tracking_uri
    return cli


@pytest.fixture
def mcli(cli: CLI, mlflow_server: MLflowServer) -> CLI:
    """The kitbridge CLI with MLFLOW_TRACKING_URI at the session's MLflow server."""
    return _scrub(cli, mlflow_server.url)


@pytest.fixture(scope="module")
def champion(mlflow_server: MLflowServer) -> LoggedModel:
    """An skops sklearn model registered as champion-model with alias champion; its run has notes too."""
    m = log_sklearn(
        mlflow_server.url,
        name="cm-model",
        register_as="champion-model",
        alias="champion",
        params={"dataset": "iris-like"},
        tags={"owner": "ml-team"},
    )
    with tracking(mlflow_server.url) as client:
        client.log_text(m.run_id, NOTES, "notes/readme.txt")
    return m


@pytest.fixture(scope="module")
def two(mlflow_server: MLflowServer) -> TwoModels:
    return log_two_models_in_one_run(mlflow_server.url)


@pytest.fixture(scope="module")
def legacy(mlflow_server: MLflowServer) -> dict[str, LoggedModel]:
    """Two MLflow 2 layout models: registered with a resolved artifact source and with a runs:/ one."""
    url = mlflow_server.url
    out = {
        "artifact": log_mlflow2_layout(url, register_as="kb-legacy-artifact", source_style="artifact"),
        "runs": log_mlflow2_layout(url, register_as="kb-legacy-runs", source_style="runs"),
    }
    with tracking(url) as client:
        for m in out.values():
            client.log_text(m.run_id, NOTES, "notes/readme.txt")
    return out


# --- 1. the done-when case: a registered champion, pushed in both formats, pulled, unpacked, predicted ---


def test_champion_alias_pushed_pulled_unpacked_and_predicting(
    mcli: CLI, champion: LoggedModel, mlflow_server: MLflowServer, registry: Registry, tmp_path: Path
) -> None:
    m = champion
    stored = model_files_on_server(mlflow_server, m)
    assert set(stored) == ENV_FILES | EXAMPLES | {"model.skops"}
    fresh = CLI(tmp_path / "fresh-home")
    for fmt, tag in (("kitops", "kit"), ("modelpack", "mp")):
        ref = f"{registry.host}/cm:{tag}"
        doc = run_json(mcli, "import", m.alias_uri, "-t", ref, "--format", fmt, "--push", "--plain-http")
        assert doc["pushed"] == ref and doc["stored"] is True, fmt
        assert doc["revision"] == f"champion-model/{m.version}"
        assert {f["path"]: f["size"] for f in doc["files"]} == {p: len(b) for p, b in stored.items()}

        kf = doc["kitfile"]
        assert kf["model"]["path"] == "model.skops"
        assert {"path": "MLmodel", "type": "config"} in kf["model"]["parts"]
        assert {p["path"] for p in kf["model"]["parts"]} == set(stored) - {"model.skops"}
        params = kf["model"]["parameters"]
        assert params["source"] == m.alias_uri
        assert params["sourceRevision"] == f"champion-model/{m.version}"
        ml = params["mlflow"]
        assert ml["registeredModel"] == {"name": "champion-model", "version": m.version, "alias": "champion"}
        assert ml["run"] == {"id": m.run_id, "name": m.run_name}
        assert ml["modelId"] == m.model_id
        assert ml["experimentId"] == m.experiment_id
        assert ml["trackingUri"] == mlflow_server.url
        assert ml["metrics"] == m.metrics and ml["metrics"]["loss"] == LOSS_HISTORY[-1] == 0.2
        assert ml["params"] == m.params and ml["params"]["dataset"] == "iris-like"
        assert ml["tags"] == m.tags  # the user's tags, none of MLflow's own mlflow.* ones
        assert not any(k.startswith("mlflow.") for k in ml["tags"])
        assert set(ml["flavors"]) == {"python_function", "sklearn"}
        assert (ml["framework"], ml["frameworkVersion"]) == ("sklearn", sklearn.__version__)
        assert ml["mlflowVersion"] == mlflow.__version__
        assert ml["pythonVersion"].count(".") == 2
        assert [i["name"] for i in ml["signature"]["inputs"]] == FEATURES

        out = tmp_path / f"out-{fmt}"
        fresh.ok("pull", ref, "--plain-http")
        fresh.ok("unpack", ref, "-d", str(out))
        assert files_of(out) == stored, fmt  # the folder MLflow logged, byte for byte, nothing more
        assert predict_dir(out, m.frame, fresh_process=True) == m.predictions, fmt

        if fmt == "kitops":
            unpacked_kf = yaml.safe_load((out / "Kitfile").read_text())
            assert unpacked_kf["model"]["parameters"]["mlflow"] == ml
            assert unpacked_kf["model"]["parameters"]["sourceRevision"] == f"champion-model/{m.version}"
        else:
            manifest = json.loads(fresh.ok("inspect", ref, "--json").stdout)["manifest"]
            assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
            config_bytes = (fresh.store / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes()
            assert validate_config(config_bytes) == []
            config = json.loads(config_bytes)
            assert config["descriptor"]["revision"] == f"champion-model/{m.version}"


# --- 2. every URI form ------------------------------------------------------------------------------------


def test_registered_version_and_logged_model_id(
    mcli: CLI, champion: LoggedModel, mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    m = champion
    stored = model_files_on_server(mlflow_server, m)

    log = AccessLog(mlflow_server)
    # No -t: the default reference is <registered name>:<version>.
    doc = run_json(mcli, "import", m.version_uri)
    assert doc["reference"].endswith(f"champion-model:{m.version}"), doc["reference"]
    assert sorted(log.downloads()) == sorted(
        f"{m.experiment_id}/models/{m.model_id}/artifacts/{p}" for p in stored
    ), "only the model's files are downloaded, each once"
    ml = ml_params(doc)
    assert ml["registeredModel"] == {"name": "champion-model", "version": m.version}
    assert doc["kitfile"]["model"]["parameters"]["sourceRevision"] == f"champion-model/{m.version}"
    mcli.ok("unpack", doc["reference"], "-d", str(tmp_path / "version"))
    assert files_of(tmp_path / "version") == stored
    assert predict_dir(tmp_path / "version", m.frame) == m.predictions

    doc = import_unpack(mcli, f"models:/{m.model_id}", tmp_path / "model-id")
    ml = ml_params(doc)
    assert ml["modelId"] == m.model_id and ml["run"]["id"] == m.run_id
    assert "registeredModel" not in ml
    assert ml["metrics"]["loss"] == 0.2
    assert files_of(tmp_path / "model-id") == stored
    assert predict_dir(tmp_path / "model-id", m.frame) == m.predictions


def test_run_uri_with_one_model_leaves_the_run_artifacts_out_unless_asked(
    mcli: CLI, champion: LoggedModel, mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    m = champion
    stored = model_files_on_server(mlflow_server, m)
    log = AccessLog(mlflow_server)
    doc = run_json(mcli, "import", f"runs:/{m.run_id}")
    # No -t: a run URI names no registered version, so the reference is <logged model name>:<run id>.
    assert doc["reference"].endswith(f"cm-model:{m.run_id}"), doc["reference"]
    assert doc["revision"] == m.run_id
    assert doc["kitfile"]["model"]["parameters"]["sourceRevision"] == m.run_id
    assert not any("notes" in p for p in log.downloads()), "a run artifact was downloaded"
    mcli.ok("unpack", doc["reference"], "-d", str(tmp_path / "run"))
    assert files_of(tmp_path / "run") == stored
    assert ml_params(doc)["run"] == {"id": m.run_id, "name": m.run_name}
    assert ml_params(doc)["modelId"] == m.model_id

    doc = import_unpack(mcli, f"runs:/{m.run_id}", tmp_path / "with-run-artifacts", "--include-run-artifacts")
    got = files_of(tmp_path / "with-run-artifacts")
    assert got == {**stored, "run-artifacts/notes/readme.txt": NOTES.encode()}
    code = kitfile_paths(doc["kitfile"], "code")
    assert code and all(p.startswith("run-artifacts") for p in code), doc["kitfile"]
    assert doc["kitfile"]["model"]["path"] == "model.skops"
    assert predict_dir(tmp_path / "with-run-artifacts", m.frame) == m.predictions


def test_run_with_two_models_asks_which_and_imports_each_by_name(
    mcli: CLI, two: TwoModels, mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    err = one_line_error(mcli("import", f"runs:/{two.run_id}", "-t", "two:0"), 2)
    assert f"runs:/{two.run_id}/model-a" in err and f"runs:/{two.run_id}/model-b" in err
    assert stored_refs(mcli) == []

    for name, m in two.models.items():
        # No -t: <logged model name>:<run id>.
        doc = run_json(mcli, "import", f"runs:/{two.run_id}/{name}")
        assert doc["reference"].endswith(f"{name}:{two.run_id}"), doc["reference"]
        ml = ml_params(doc)
        assert ml["modelId"] == m.model_id and ml["run"]["id"] == two.run_id
        assert ml["params"] == {"models": "2"} and ml["metrics"] == {"loss": 0.2}
        out = tmp_path / name
        mcli.ok("unpack", doc["reference"], "-d", str(out))
        assert files_of(out) == model_files_on_server(mlflow_server, m), name
        assert predict_dir(out, m.frame) == m.predictions, name


def test_mlflow_artifacts_uri_of_a_logged_model(
    mcli: CLI, champion: LoggedModel, mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    m = champion
    with tracking(mlflow_server.url) as client:
        location = client.get_logged_model(m.model_id).artifact_location
    assert location.startswith("mlflow-artifacts:/")
    doc = import_unpack(mcli, location, tmp_path / "artifacts")
    assert doc["kitfile"]["model"]["path"] == "model.skops"
    assert ml_params(doc)["trackingUri"] == mlflow_server.url
    assert files_of(tmp_path / "artifacts") == model_files_on_server(mlflow_server, m)
    assert predict_dir(tmp_path / "artifacts", m.frame) == m.predictions


# --- 3. cloudpickle sklearn: scanned, never loaded ---------------------------------------------------------


class _Canary:
    """Unpickles as ``os.makedirs(path, 0o755, True)``: a directory appears when the pickle is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __call__(self, X: Any) -> Any:  # a callable, as FunctionTransformer wants; never called
        return X

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (os.makedirs, (self.path, 0o755, True))


def _log_canary_pickle(uri: str, canary: Path) -> LoggedModel:
    """A cloudpickle sklearn pipeline whose (never called) inverse_func unpickles as os.makedirs(canary)."""
    X, y = iris_like()
    pipe = Pipeline(
        [
            ("id", FunctionTransformer(inverse_func=_Canary(canary), check_inverse=False)),
            ("lr", LogisticRegression(max_iter=500)),
        ]
    )
    pipe.fit(X, y)
    frame = X.iloc[[0, 60, 120]].reset_index(drop=True)
    with tracking(uri) as client:
        exp = experiment_id(client, uri)
        with mlflow.start_run(experiment_id=exp, run_name="canary") as run:
            info = mlflow.sklearn.log_model(
                pipe,
                name="canary-model",
                serialization_format="cloudpickle",
                pip_requirements=sklearn_requirements("cloudpickle"),
            )
    return LoggedModel(
        tracking_uri=uri,
        experiment_id=exp,
        run_id=run.info.run_id,
        run_name="canary",
        name="canary-model",
        model_id=info.model_id,
        model_uri=info.model_uri,
        frame=frame,
        predictions=to_list(pipe.predict(frame)),
        model_file="model.pkl",
    )


def test_cloudpickle_sklearn_round_trip(mcli: CLI, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    m = log_sklearn(mlflow_server.url, name="pkl-model", serialization="cloudpickle", register_as="kb-pkl")
    doc = import_unpack(mcli, m.version_uri, tmp_path / "pkl")
    assert doc["kitfile"]["model"]["path"] == "model.pkl"
    # A plain sklearn estimator imports nothing dangerous: scanned, nothing to report.
    assert doc["profile"]["unsafePickles"] == {}
    assert "unsafePickleImports" not in doc["kitfile"]["model"]["parameters"]
    assert files_of(tmp_path / "pkl") == model_files_on_server(mlflow_server, m)
    assert predict_dir(tmp_path / "pkl", m.frame, fresh_process=True) == m.predictions


def test_pickle_is_scanned_and_never_loaded(mcli: CLI, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    canary = tmp_path / "canary-was-unpickled"
    m = _log_canary_pickle(mlflow_server.url, canary)
    if canary.exists():  # MLflow may load the model while logging it (input validation)
        canary.rmdir()
    r = mcli("import", f"models:/{m.model_id}", "-t", "canary:1", "--json")
    assert r.returncode == 0, r.stderr
    assert not canary.exists(), "kitbridge unpickled model.pkl"
    doc = json.loads(r.stdout)
    assert doc["kitfile"]["model"]["path"] == "model.pkl"
    unsafe = doc["profile"]["unsafePickles"]
    assert set(unsafe) == {"model.pkl"} and any(
        i in ("posix.makedirs", "os.makedirs") for i in unsafe["model.pkl"]
    )
    assert doc["kitfile"]["model"]["parameters"]["unsafePickleImports"] == unsafe
    assert "model.pkl" in r.stderr and "never load it" in r.stderr  # the warning

    mcli.ok("unpack", "canary:1", "-d", str(tmp_path / "out"))
    assert not canary.exists()
    # The canary works: loading the model (as MLflow does) unpickles it, and predicts the same.
    assert predict_dir(tmp_path / "out", m.frame, fresh_process=True) == m.predictions
    assert canary.is_dir()


# --- 4. pyfunc with code --------------------------------------------------------------------------------


def test_pyfunc_with_code_files(mcli: CLI, mlflow_server: MLflowServer, tmp_path: Path) -> None:
    m = log_pyfunc_with_code(mlflow_server.url, register_as="kb-affine", alias="live")
    stored = model_files_on_server(mlflow_server, m)
    assert f"code/{PYFUNC_MODULE}.py" in stored
    doc = import_unpack(mcli, m.alias_uri, tmp_path / "affine")
    kf = doc["kitfile"]
    assert kf["model"]["path"] == "python_model.pkl"
    code = kitfile_paths(kf, "code")
    assert code & {"code", "code/", f"code/{PYFUNC_MODULE}.py"}, kf
    assert ml_params(doc)["flavors"] == ["python_function"]
    assert ml_params(doc)["tags"] == {"kind": "pyfunc"}
    assert files_of(tmp_path / "affine") == stored
    assert predict_dir(tmp_path / "affine", m.frame, fresh_process=True) == m.predictions


# --- 5. the MLflow 2 layout -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["artifact", "runs"])
def test_mlflow2_layout_run_and_registered_version(
    mcli: CLI, legacy: dict[str, LoggedModel], mlflow_server: MLflowServer, tmp_path: Path, style: str
) -> None:
    m = legacy[style]
    stored = model_files_on_server(mlflow_server, m)
    assert set(stored) == ENV_FILES | {"model.pkl", "input_example.json"}
    for label, source in (("run", f"runs:/{m.run_id}"), ("version", m.version_uri)):
        log = AccessLog(mlflow_server)
        doc = import_unpack(mcli, source, tmp_path / f"{style}-{label}")
        assert not any("notes" in p for p in log.downloads()), label
        assert doc["kitfile"]["model"]["path"] == "model.pkl", label
        assert {p["path"] for p in doc["kitfile"]["model"]["parts"]} == set(stored) - {"model.pkl"}
        ml = ml_params(doc)
        assert ml["run"]["id"] == m.run_id and "modelId" not in ml, label
        assert ml["mlflowVersion"].startswith("2."), label
        assert ml["metrics"]["loss"] == 0.2 and ml["tags"] == {"mlflow_major": "2"}, label
        if label == "version":
            assert ml["registeredModel"] == {"name": m.registered_name, "version": m.version}
            assert doc["revision"] == f"{m.registered_name}/{m.version}"
        assert files_of(tmp_path / f"{style}-{label}") == stored, label
        assert predict_dir(tmp_path / f"{style}-{label}", m.frame, fresh_process=True) == m.predictions


@pytest.mark.parametrize("style", ["artifact", "runs"])
def test_mlflow2_layout_run_artifacts_are_the_others(
    mcli: CLI, legacy: dict[str, LoggedModel], style: str
) -> None:
    """--include-run-artifacts adds the run's artifacts *other than the model*, whatever the URI form."""
    m = legacy[style]
    for source in (f"runs:/{m.run_id}", m.version_uri):
        doc = run_json(mcli, "import", source, "--include-run-artifacts", "--dry-run")
        extra = sorted(f["path"] for f in doc["files"] if f["path"].startswith("run-artifacts/"))
        assert extra == ["run-artifacts/notes/readme.txt"], source


# --- 6. an unfinished run ---------------------------------------------------------------------------------


def test_unfinished_run_needs_allow_unfinished(
    mcli: CLI, mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    m = start_unfinished_run(mlflow_server.url, name="wip-import")
    for source in (f"runs:/{m.run_id}", f"models:/{m.model_id}"):
        err = one_line_error(mcli("import", source, "-t", "wip:0"), 2)
        assert "RUNNING" in err and "--allow-unfinished" in err and m.run_id in err, source
    assert stored_refs(mcli) == []
    doc = import_unpack(mcli, f"runs:/{m.run_id}", tmp_path / "wip", "--allow-unfinished")
    ml = ml_params(doc)
    assert ml["run"]["id"] == m.run_id and ml["modelId"] == m.model_id
    assert ml["metrics"] == {"loss": LOSS_HISTORY[1]}  # the latest value so far
    assert files_of(tmp_path / "wip") == model_files_on_server(mlflow_server, m)
    assert predict_dir(tmp_path / "wip", m.frame) == m.predictions


# --- 7. server-less tracking stores ---------------------------------------------------------------------


def test_direct_sqlite_tracking_uri(cli: CLI, tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "db")
    m = log_sklearn(uri, name="sqlite-model", register_as="kb-sqlite", alias="prod")
    _scrub(cli, None)
    work = tmp_path / "cwd"
    work.mkdir()
    ref = "sqlite:1"
    doc = run_json(cli, "import", m.alias_uri, "--tracking-uri", uri, "-t", ref, cwd=work)
    assert list(work.iterdir()) == [], "MLflow wrote into the working directory"
    ml = ml_params(doc)
    assert ml["trackingUri"] == uri
    assert ml["registeredModel"] == {"name": "kb-sqlite", "version": m.version, "alias": "prod"}
    cli.ok("unpack", ref, "-d", str(tmp_path / "out"))
    with tracking(uri) as client:
        location = client.get_logged_model(str(m.model_id)).artifact_location
    assert location.startswith(f"{(tmp_path / 'db' / 'mlartifacts').as_uri()}/"), location
    on_disk = Path(urllib.parse.urlsplit(location).path)
    assert files_of(tmp_path / "out") == files_of(on_disk)
    assert predict_dir(tmp_path / "out", m.frame) == m.predictions

    # The same through MLFLOW_TRACKING_URI.
    doc = run_json(cli, "import", f"runs:/{m.run_id}", "--dry-run", env={"MLFLOW_TRACKING_URI": uri})
    assert doc["kitfile"]["model"]["path"] == "model.skops"


@pytest.fixture(scope="module")
def file_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LoggedModel]]:
    """A model in a file store (MLflow 3.17 refuses file stores unless MLFLOW_ALLOW_FILE_STORE=true)."""
    uri = (tmp_path_factory.mktemp("file-store") / "mlruns").as_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        m = log_sklearn(uri, name="fs-model", register_as="kb-fs")
    yield uri, m


def test_file_store_refusal_is_a_clean_error(cli: CLI, file_store: tuple[str, LoggedModel]) -> None:
    uri, m = file_store
    _scrub(cli, uri)
    err = one_line_error(cli("import", f"runs:/{m.run_id}", "-t", "fs:0"), 1)
    assert "MLFLOW_ALLOW_FILE_STORE" in err, err  # MLflow's way out, passed on
    assert "report it" not in err


def test_file_store_with_mlflow_allow_file_store(
    cli: CLI, file_store: tuple[str, LoggedModel], tmp_path: Path
) -> None:
    uri, m = file_store
    _scrub(cli, uri)
    cli.env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    for label, source in (("run", f"runs:/{m.run_id}"), ("version", m.version_uri)):
        doc = import_unpack(cli, source, tmp_path / label)
        assert doc["kitfile"]["model"]["path"] == "model.skops"
        assert ml_params(doc)["trackingUri"] == uri
        assert predict_dir(tmp_path / label, m.frame) == m.predictions, label


# --- 8. errors --------------------------------------------------------------------------------------------


def test_unknown_run_model_version_and_alias(mcli: CLI, champion: LoggedModel) -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    err = one_line_error(mcli("import", f"runs:/{run_id}", "-t", "bad:0"), 1)
    assert run_id in err
    err = one_line_error(mcli("import", "models:/kb-no-such-model/1", "-t", "bad:0"), 1)
    assert "kb-no-such-model" in err
    err = one_line_error(mcli("import", "models:/champion-model/999", "-t", "bad:0"), 1)
    assert "champion-model" in err and "999" in err
    err = one_line_error(mcli("import", "models:/champion-model@no-such-alias", "-t", "bad:0"), 1)
    assert "no-such-alias" in err and "does not exist" in err  # a NotFoundError, like the others
    err = one_line_error(mcli("import", "models:/m-0123456789abcdef", "-t", "bad:0"), 1)
    assert "m-0123456789abcdef" in err
    err = one_line_error(mcli("import", "models:/champion-model", "-t", "bad:0"), 2)  # no version
    assert "models:/NAME/VERSION" in err
    assert stored_refs(mcli) == []


def test_unreachable_server_fails_fast(mcli: CLI) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    r = mcli("import", "models:/champion-model/1", "--tracking-uri", url, "-t", "x:0")
    took = time.monotonic() - start
    err = one_line_error(r, 1)
    assert took < 15, f"took {took:.1f} s"
    assert url in err and "server" in err


def test_no_tracking_uri(cli: CLI, tmp_path: Path) -> None:
    _scrub(cli, None)
    r = cli("import", "models:/champion-model/1", "-t", "x:0", cwd=tmp_path)
    err = one_line_error(r, 2)
    assert "MLFLOW_TRACKING_URI" in err and "--tracking-uri" in err
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MLflowServer, LoggedModel]]:
    """A basic-auth MLflow server (default permission NO_PERMISSIONS), an admin's model, a reader user."""
    with serve_mlflow(tmp_path_factory.mktemp("mlflow-auth"), app_name=AUTH_APP) as server:
        user, password = server.admin_auth
        server.create_user(READER, READER_PASSWORD)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_USERNAME", user)
            mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
            m = log_sklearn(server.url, name="secret-model", register_as="kb-secret")
        yield server, m


def test_permission_denied_and_admin_access(
    cli: CLI, auth_server: tuple[MLflowServer, LoggedModel], tmp_path: Path
) -> None:
    server, m = auth_server
    admin, admin_password = server.admin_auth
    _scrub(cli, server.url)
    reader = {"MLFLOW_TRACKING_USERNAME": READER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    for source in (m.version_uri, f"runs:/{m.run_id}"):
        err = one_line_error(cli("import", source, "-t", "secret:0", env=reader), 1)
        assert "access" in err and server.url in err, err
        assert_no_credentials(err, READER_PASSWORD)
    err = one_line_error(cli("import", m.version_uri, "-t", "secret:0"), 1)  # no credentials at all
    assert "access" in err or "authenticat" in err, err
    # Credentials in the URI are never echoed back.
    in_url = server.url.replace("http://", f"http://{READER}:{READER_PASSWORD}@")
    err = one_line_error(cli("import", m.version_uri, "--tracking-uri", in_url, "-t", "secret:0"), 1)
    assert_no_credentials(err, READER_PASSWORD)
    assert stored_refs(cli) == []

    cli.env.update(MLFLOW_TRACKING_USERNAME=admin, MLFLOW_TRACKING_PASSWORD=admin_password)
    doc = import_unpack(cli, m.version_uri, tmp_path / "admin-env", ref="secret:1")
    assert ml_params(doc)["registeredModel"] == {"name": "kb-secret", "version": m.version}
    assert predict_dir(tmp_path / "admin-env", m.frame) == m.predictions

    # Credentials in the tracking URI work too, and are stripped from what the ModelKit records.
    for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        del cli.env[k]
    in_url = server.url.replace("http://", f"http://{admin}:{admin_password}@")
    r = cli.ok("import", m.version_uri, "--tracking-uri", in_url, "-t", "secret:2", "--json")
    doc = json.loads(r.stdout)
    assert ml_params(doc)["trackingUri"] == server.url
    assert_no_credentials(r.stdout + r.stderr, admin_password)
    cli.ok("unpack", "secret:2", "-d", str(tmp_path / "admin-url"))
    assert_no_credentials((tmp_path / "admin-url" / "Kitfile").read_text(), admin_password)
    for blob in (cli.store / "blobs" / "sha256").iterdir():  # nowhere in the ModelKits' bytes either
        assert admin_password.encode() not in blob.read_bytes(), blob.name
    assert predict_dir(tmp_path / "admin-url", m.frame) == m.predictions


# --- 9. dry runs ------------------------------------------------------------------------------------------


def test_dry_run_downloads_only_the_mlmodel(
    mcli: CLI, champion: LoggedModel, mlflow_server: MLflowServer
) -> None:
    m = champion
    stored = model_files_on_server(mlflow_server, m)
    log = AccessLog(mlflow_server)
    doc = run_json(mcli, "import", m.alias_uri, "--dry-run")
    assert log.downloads() == [f"{m.experiment_id}/models/{m.model_id}/artifacts/MLmodel"]
    assert doc["dryRun"] is True
    assert {f["path"]: f["size"] for f in doc["files"]} == {p: len(b) for p, b in stored.items()}
    assert doc["downloadBytes"] == sum(len(b) for b in stored.values())
    assert doc["kitfile"]["model"]["path"] == "model.skops"  # the MLmodel said so
    assert ml_params(doc)["registeredModel"]["alias"] == "champion"
    assert "reference" not in doc and "digest" not in doc
    assert stored_refs(mcli) == []
    blobs = mcli.store / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()], "a dry run stored blobs"
