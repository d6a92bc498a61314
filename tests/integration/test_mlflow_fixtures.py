"""The MLflow test fixtures themselves: a real ``mlflow server`` and real models logged to it.

Every logger runs against the server (HTTP, proxied artifacts) and against a direct SQLite tracking URI,
and the tests pin the MLflow 3 layout facts the MLflow importer relies on (where logged models live, what
the registry's ``source`` is, what a download holds) as well as the MLflow 2 layout.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from mlflow_models import (
    LOSS_HISTORY,
    PYFUNC_MODULE,
    TREE_TRUSTED_TYPES,
    LoggedModel,
    log_mlflow2_layout,
    log_pyfunc_with_code,
    log_sklearn,
    log_two_models_in_one_run,
    predict_dir,
    sqlite_uri,
    start_unfinished_run,
    tracking,
)
from mlflow_server import MLflowServer, alive, group_members, serve_mlflow

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _nothing_written_to_the_working_directory() -> Iterator[None]:
    """MLflow's defaults (./mlruns, ./mlflow.db, ./mlartifacts) must never be used by these fixtures."""
    defaults = [Path.cwd() / n for n in ("mlruns", "mlflow.db", "mlartifacts")]
    before = {p for p in defaults if p.exists()}
    yield
    assert {p for p in defaults if p.exists()} == before


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """One real MLflow server for the module (startup takes ~6 s)."""
    with serve_mlflow(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
    # close() raised if any process survived; check the group once more from the outside.
    assert not {p for p in server.pids_seen if alive(p)}


@dataclass
class Backend:
    kind: str  # "server" or "sqlite"
    uri: str
    server: MLflowServer | None = None

    def artifacts_on_disk(self, *parts: str) -> Path:
        """A path in the server's artifact store (its --artifacts-destination)."""
        assert self.server is not None
        return self.server.artifacts_dir.joinpath(*parts)


@pytest.fixture(scope="module", params=["server", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """The module's server, or a direct SQLite tracking store in a temp dir (one per module each)."""
    if request.param == "server":
        server: MLflowServer = request.getfixturevalue("mlflow_server")
        return Backend("server", server.url, server)
    return Backend("sqlite", sqlite_uri(tmp_path_factory.mktemp("mlflow-sqlite")))


def _download(uri: str, artifact_uri: str, dst: Path) -> Path:
    with tracking(uri):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst)))


def _mlmodel(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "MLmodel").read_text())
    assert isinstance(data, dict)
    return data


def _files(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def _check_mlflow3_model(backend: Backend, m: LoggedModel, client: MlflowClient) -> None:
    """MLflow 3: logged model ``m-<id>`` lives in ``<experiment root>/models/<id>/artifacts``, not the run."""
    kind = backend.kind
    assert m.model_id is not None and m.model_id.startswith("m-")
    assert m.model_uri == f"models:/{m.model_id}"
    assert client.list_artifacts(m.run_id) == []  # nothing under the run's own artifacts
    logged = client.get_logged_model(m.model_id)
    assert logged.name == m.name and logged.source_run_id == m.run_id
    assert logged.experiment_id == m.experiment_id == client.get_run(m.run_id).info.experiment_id
    assert logged.artifact_location.endswith(f"/models/{m.model_id}/artifacts")
    assert logged.artifact_location.startswith("mlflow-artifacts:/" if kind == "server" else "file:///")
    run = client.get_run(m.run_id)
    assert m.model_id in {o.model_id for o in run.outputs.model_outputs}
    assert "mlflow.log-model.history" not in run.data.tags  # MLflow 3 no longer writes it


# --- the server ----------------------------------------------------------------------------------------


def test_server_runs_from_the_venv_and_stops_every_process(tmp_path: Path) -> None:
    server = MLflowServer(tmp_path / "srv")
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        procs = server.processes()
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in procs]
        assert any("uvicorn" in c for c in cmdlines), cmdlines
        assert any(f"{Path(sys.executable).parent}/mlflow server" in c for c in cmdlines), cmdlines
        assert not any("huey" in c for c in cmdlines), "job execution should be off by default"
        assert server.proc is not None
        pgid = server.proc.pid
        assert {os.getpgid(p) for p in procs} == {pgid}  # its own process group, nothing outside it
        assert group_members(pgid) == procs
        assert server.db_path.is_file()
        assert "Uvicorn running" in server.log_path.read_text()
    assert server.proc is None
    assert not {p for p in server.pids_seen if alive(p)}, "a server process survived close()"
    assert not group_members(pgid)


def test_server_close_kills_children_orphaned_by_a_dead_launcher(tmp_path: Path) -> None:
    server = MLflowServer(tmp_path / "srv")
    server.start()
    try:
        assert server.proc is not None
        launcher = server.proc.pid
        children = server.processes() - {launcher}
        assert children, "mlflow server should have spawned uvicorn"
        os.kill(launcher, signal.SIGKILL)  # the launcher dies; uvicorn is orphaned but keeps serving
        server.proc.wait(timeout=10)
        assert {p for p in children if alive(p)} == children
    finally:
        server.close()
    assert not {p for p in server.pids_seen if alive(p)}


def test_server_not_ready_in_time_reports_its_log_and_leaves_nothing(tmp_path: Path) -> None:
    server = MLflowServer(tmp_path / "srv", ready_timeout=0.3)
    with pytest.raises(RuntimeError) as exc:
        server.start()
    assert "did not become ready within" in str(exc.value)
    assert "=== mlflow server on port" in str(exc.value)  # the log tail is in the message
    assert server.proc is None
    assert not {p for p in server.pids_seen if alive(p)}


def test_loggers_restore_the_tracking_uri(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = backend.uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/outer.db")
    before = mlflow.get_tracking_uri()
    with tracking(uri) as client:
        assert mlflow.get_tracking_uri() == uri
        assert client.search_experiments() is not None
    assert mlflow.get_tracking_uri() == before
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////nonexistent/outer.db"


# --- 1. sklearn ----------------------------------------------------------------------------------------


def test_sklearn_skops_registered_with_alias(backend: Backend, tmp_path: Path) -> None:
    kind, uri = backend.kind, backend.uri
    m = log_sklearn(
        uri, register_as="iris", alias="champion", params={"extra": "x"}, metrics={"f1": [0.1, 0.7]}
    )
    assert m.version is not None and m.source == f"models:/{m.model_id}"  # MLflow 3 registry source
    with tracking(uri) as client:
        _check_mlflow3_model(backend, m, client)
        run = client.get_run(m.run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == "train-iris"
        assert run.data.params == {"C": "1.0", "max_iter": "500", "solver": "lbfgs", "extra": "x"}
        assert run.data.metrics["loss"] == LOSS_HISTORY[-1] == m.metrics["loss"]  # the run keeps the last
        assert [x.value for x in client.get_metric_history(m.run_id, "loss")] == LOSS_HISTORY
        assert run.data.metrics["f1"] == 0.7
        assert {k: run.data.tags[k] for k in m.tags} == m.tags
        mv = client.get_model_version_by_alias("iris", "champion")
        assert (str(mv.version), mv.run_id, mv.source) == (m.version, m.run_id, m.source)
    d = _download(uri, m.alias_uri, tmp_path / "dl")
    # registered_model_meta is written by download_artifacts (it is not in the stored model).
    assert _files(d) == {
        "MLmodel",
        "model.skops",
        "conda.yaml",
        "python_env.yaml",
        "requirements.txt",
        "input_example.json",
        "serving_input_example.json",
        "registered_model_meta",
    }
    meta = yaml.safe_load((d / "registered_model_meta").read_text())
    # the version is a string through the REST store ('1') and an int through SQLite (1)
    assert (meta["model_name"], str(meta["model_version"])) == ("iris", m.version)
    mlm = _mlmodel(d)
    assert mlm["model_id"] == m.model_id and mlm["run_id"] == m.run_id
    assert mlm["artifact_path"].endswith(f"/models/{m.model_id}/artifacts")  # a full URI in MLflow 3
    assert mlm["mlflow_version"].startswith("3.")
    sk = mlm["flavors"]["sklearn"]
    assert (sk["pickled_model"], sk["serialization_format"]) == ("model.skops", "skops")
    assert mlm["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert predict_dir(d, m.frame) == m.predictions
    if kind == "server":  # where the server's artifact store keeps it, on disk
        on_disk = backend.artifacts_on_disk(m.experiment_id, "models", str(m.model_id), "artifacts")
        assert (on_disk / "model.skops").is_file() and (on_disk / "MLmodel").is_file()


def test_sklearn_cloudpickle_and_every_uri_form(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri
    m = log_sklearn(uri, name="iris-pkl", serialization="cloudpickle", register_as="iris-pkl")
    forms = {
        "version": m.version_uri,
        "model-id": f"models:/{m.model_id}",
        "runs": f"runs:/{m.run_id}/{m.name}",  # MLflow 3 resolves a run + model name to the logged model
    }
    for label, artifact_uri in forms.items():
        d = _download(uri, artifact_uri, tmp_path / label)
        assert {"MLmodel", "model.pkl", "requirements.txt"} <= _files(d), label
        sk = _mlmodel(d)["flavors"]["sklearn"]
        assert (sk["pickled_model"], sk["serialization_format"]) == ("model.pkl", "cloudpickle")
        assert predict_dir(d, m.frame) == m.predictions, label


def test_sklearn_tree_needs_trusted_types(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri
    m = log_sklearn(uri, name="iris-tree", estimator="tree", register_as="iris-tree", alias="prod")
    d = _download(uri, m.alias_uri, tmp_path / "dl")
    assert _mlmodel(d)["flavors"]["sklearn"]["skops_trusted_types"] == TREE_TRUSTED_TYPES
    assert predict_dir(d, m.frame) == m.predictions


# --- 2. pyfunc with code ---------------------------------------------------------------------------------


def test_pyfunc_with_code_loads_from_its_own_code(backend: Backend, tmp_path: Path) -> None:
    kind, uri = backend.kind, backend.uri
    m = log_pyfunc_with_code(uri, register_as="affine", alias="live")
    assert PYFUNC_MODULE not in sys.modules
    assert m.predictions == [x * 2 + 1 for x in m.frame["x"]]
    with tracking(uri) as client:
        _check_mlflow3_model(backend, m, client)
    d = _download(uri, m.alias_uri, tmp_path / "dl")
    assert {"MLmodel", "python_model.pkl", f"code/{PYFUNC_MODULE}.py"} <= _files(d)
    pf = _mlmodel(d)["flavors"]["python_function"]
    assert (pf["loader_module"], pf["python_model"], pf["code"]) == (
        "mlflow.pyfunc.model",
        "python_model.pkl",
        "code",
    )
    assert "sklearn" not in _mlmodel(d)["flavors"]
    assert predict_dir(d, m.frame, fresh_process=True) == m.predictions
    if kind == "server":  # without its code file the model cannot be loaded
        broken = tmp_path / "no-code"
        shutil.copytree(d, broken)
        shutil.rmtree(broken / "code")
        with pytest.raises(RuntimeError, match=PYFUNC_MODULE):
            predict_dir(broken, m.frame, fresh_process=True)


# --- 3. two models in one run ----------------------------------------------------------------------------


def test_two_models_in_one_run(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri
    two = log_two_models_in_one_run(uri)
    assert set(two.models) == {"model-a", "model-b"}
    a, b = two.models["model-a"], two.models["model-b"]
    assert a.run_id == b.run_id == two.run_id and a.model_id != b.model_id
    with tracking(uri) as client:
        found = client.search_logged_models(
            experiment_ids=[a.experiment_id], filter_string=f"source_run_id='{two.run_id}'"
        )
        assert {(x.name, x.model_id) for x in found} == {("model-a", a.model_id), ("model-b", b.model_id)}
        outputs = client.get_run(two.run_id).outputs.model_outputs
        assert {o.model_id for o in outputs} == {a.model_id, b.model_id}
        for m in (a, b):
            _check_mlflow3_model(backend, m, client)
    for m in (a, b):
        d = _download(uri, m.model_uri, tmp_path / m.name)
        assert _mlmodel(d)["model_id"] == m.model_id
        assert yaml.safe_load((d / "registered_model_meta").read_text()) == {
            "model_name": None,
            "model_version": None,
        }
        assert predict_dir(d, m.frame) == m.predictions


# --- 4. an unfinished run ---------------------------------------------------------------------------------


def test_unfinished_run_stays_running_with_its_model(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri
    m = start_unfinished_run(uri)
    assert mlflow.active_run() is None
    with tracking(uri) as client:
        run = client.get_run(m.run_id)
        assert run.info.status == "RUNNING" and run.info.end_time is None
        assert run.data.tags["wip"] == "yes"
        _check_mlflow3_model(backend, m, client)
    d = _download(uri, m.model_uri, tmp_path / "dl")
    assert predict_dir(d, m.frame) == m.predictions


# --- 5. the MLflow 2 layout -------------------------------------------------------------------------------


def test_mlflow2_layout_under_the_run(backend: Backend, tmp_path: Path) -> None:
    kind, uri = backend.kind, backend.uri
    m = log_mlflow2_layout(uri, register_as="legacy", alias="champion")
    assert m.model_id is None and m.model_uri == f"runs:/{m.run_id}/model"
    with tracking(uri) as client:
        run = client.get_run(m.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["loss"] == LOSS_HISTORY[-1]
        assert [f.path for f in client.list_artifacts(m.run_id)] == ["model"]
        listed = {f.path for f in client.list_artifacts(m.run_id, "model")}
        assert {"model/MLmodel", "model/model.pkl", "model/conda.yaml", "model/python_env.yaml"} <= listed
        assert "model/requirements.txt" in listed
        assert m.source == f"{run.info.artifact_uri}/model"  # MLflow 2's resolved runs:/ URI
        assert m.source.startswith("mlflow-artifacts:/" if kind == "server" else "file:///")
        history = yaml.safe_load(run.data.tags["mlflow.log-model.history"])
        assert history[0]["artifact_path"] == "model" and history[0]["run_id"] == m.run_id
        assert run.outputs.model_outputs == []  # no MLflow 3 logged model
        mv = client.get_model_version("legacy", str(m.version))
        assert (mv.source, mv.run_id, mv.model_id) == (m.source, m.run_id, None)
        loaded = mlflow.pyfunc.load_model(m.model_uri)
        assert loaded.predict(m.frame).tolist() == m.predictions
    d = _download(uri, m.alias_uri, tmp_path / "dl")
    assert {"MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt"} <= _files(d)
    mlm = _mlmodel(d)
    assert mlm["artifact_path"] == "model" and mlm["run_id"] == m.run_id and "model_id" not in mlm
    assert mlm["mlflow_version"].startswith("2.")
    sk = mlm["flavors"]["sklearn"]
    assert (sk["pickled_model"], sk["serialization_format"]) == ("model.pkl", "cloudpickle")
    assert predict_dir(d, m.frame, fresh_process=kind == "sqlite") == m.predictions
    if kind == "server":
        on_disk = backend.artifacts_on_disk(m.experiment_id, m.run_id, "artifacts", "model")
        assert (on_disk / "MLmodel").is_file()


def test_mlflow2_layout_with_a_runs_source(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri
    m = log_mlflow2_layout(uri, register_as="legacy-runs", source_style="runs")
    assert m.source == f"runs:/{m.run_id}/model"
    d = _download(uri, m.version_uri, tmp_path / "dl")
    assert _mlmodel(d)["artifact_path"] == "model"
    assert predict_dir(d, m.frame) == m.predictions
