"""Real MLflow models, logged with the real mlflow client, for importer tests.

Every ``log_*`` function takes a tracking URI (``http://127.0.0.1:<port>`` of an :class:`MLflowServer`, or
``sqlite:///<dir>/mlflow.db``), points the fluent API at it only for the duration of the call (the previous
tracking URI and the ``MLFLOW_TRACKING_URI`` environment variable are restored afterwards), ends every run
it started (except :func:`start_unfinished_run`'s, on purpose) and returns a :class:`LoggedModel` with what
a test needs: ids, URIs, the registered name/version/alias, the input frame and the original model's
predictions on it.

MLflow 3 facts these rely on: a logged model lives at ``<experiment artifact root>/models/m-<id>/artifacts``,
not under the run's artifacts; ``log_model`` takes ``name=`` (``artifact_path`` is deprecated); the
registry's ``source`` for it is ``models:/m-<id>``; sklearn's default serialization is skops
(``model.skops``). :func:`log_mlflow2_layout` writes what MLflow 2 wrote instead: the model under the run's
artifacts at ``model/`` with ``model.pkl``.

For a SQLite tracking URI the experiment is created with its artifact root next to the database
(``<db dir>/mlartifacts``), never the default ``./mlruns`` of the working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

# Before mlflow is imported: no usage telemetry from the test process, no tqdm bars in test output.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import cloudpickle
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
import yaml
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.telemetry import set_telemetry_client
from mlflow.tracking._tracking_service import utils as _tracking_utils
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

# Re-evaluated with the variables set above: drops a telemetry client made by an earlier mlflow import.
set_telemetry_client()  # type: ignore[no-untyped-call]

DEFAULT_EXPERIMENT = "kitbridge-tests"
TREE_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]  # skops refuses to load a tree unless told to trust this
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MLFLOW2_VERSION = "2.16.2"  # what log_mlflow2_layout's MLmodel claims to have been written by
LOSS_HISTORY = [0.9, 0.5, 0.2]  # "loss" is logged at steps 0, 1, 2: its final value is 0.2
PYFUNC_MODULE = "kb_affine_model"  # the code file of log_pyfunc_with_code: <PYFUNC_MODULE>.py
PYFUNC_CODE = '''"""A pyfunc model whose class lives in this file (logged with code_paths)."""

import mlflow.pyfunc


class AffineModel(mlflow.pyfunc.PythonModel):
    """Deterministic: y = x * 2 + 1 on the column "x"."""

    def predict(self, context, model_input, params=None):
        return (model_input["x"] * 2 + 1).tolist()
'''


@dataclass
class LoggedModel:
    """What a test needs to find, import and check one logged model."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    run_name: str
    name: str  # the logged model's name (MLflow 3) or its artifact path in the run (MLflow 2: "model")
    model_id: str | None  # "m-<hex>" for an MLflow 3 logged model; None for the MLflow 2 layout
    model_uri: str  # loadable by mlflow.pyfunc.load_model: "models:/m-<hex>" or "runs:/<run>/model"
    frame: pd.DataFrame  # the input the predictions were made on
    predictions: list[Any]  # the original in-memory model's predictions on frame, as plain Python
    registered_name: str | None = None
    version: str | None = None
    alias: str | None = None
    source: str | None = None  # the registered version's source, as the registry stores it
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # final (last-step) values
    metric_history: dict[str, list[float]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # the tags the logger set (not mlflow.* ones)
    flavor: str = "sklearn"  # "sklearn" or "python_function" (a pure pyfunc model)
    # the serialized model's file name: model.skops, model.pkl or python_model.pkl
    model_file: str | None = None

    @property
    def version_uri(self) -> str:
        """``models:/<name>/<version>``."""
        if self.registered_name is None or self.version is None:
            raise ValueError("this model is not registered")
        return f"models:/{self.registered_name}/{self.version}"

    @property
    def alias_uri(self) -> str:
        """``models:/<name>@<alias>``."""
        if self.registered_name is None or self.alias is None:
            raise ValueError("this model has no alias")
        return f"models:/{self.registered_name}@{self.alias}"


@dataclass
class TwoModels:
    """One run holding two logged models."""

    run_id: str
    models: dict[str, LoggedModel]  # by logged-model name: "model-a", "model-b"


# --- plumbing --------------------------------------------------------------------------------------------


def sqlite_uri(directory: Path) -> str:
    """A direct (server-less) tracking URI: ``sqlite:///<directory>/mlflow.db``."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[MlflowClient]:
    """Point mlflow's fluent API at ``uri`` for the block; restore the previous URI and env afterwards.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` (for subprocesses): that variable is
    put back exactly as it was, so CLI subprocesses started later by other tests do not inherit it.
    """
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_uri = getattr(_tracking_utils, "_tracking_uri", None)  # None: never set explicitly
    mlflow.set_tracking_uri(uri)
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        mlflow.set_tracking_uri(saved_uri)  # type: ignore[arg-type]  # None unsets (mlflow handles it)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def experiment_id(client: MlflowClient, uri: str, name: str = DEFAULT_EXPERIMENT) -> str:
    """The id of experiment ``name``, created if missing (for SQLite, with artifacts next to the db)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    artifact_location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        artifact_location = (db.parent / "mlartifacts").absolute().as_uri()
    return str(client.create_experiment(name, artifact_location=artifact_location))


def iris_like(seed: int = 0, per_class: int = 50) -> tuple[pd.DataFrame, np.ndarray]:
    """Iris-shaped synthetic data (4 float features, 3 classes), generated, never downloaded."""
    rng = np.random.default_rng(seed)
    means = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    sds = np.array([0.35, 0.35, 0.45, 0.2])
    X = np.vstack([rng.normal(m, sds, size=(per_class, 4)) for m in means]).round(2)
    y = np.repeat(np.arange(3), per_class)
    return pd.DataFrame(X, columns=FEATURES), y


def _sample(X: pd.DataFrame) -> pd.DataFrame:
    """A fixed 9-row input frame with rows of every class."""
    return X.iloc[[0, 7, 21, 50, 63, 88, 100, 120, 149]].reset_index(drop=True)


def to_list(pred: Any) -> list[Any]:
    """Predictions as plain Python values (numpy/pandas scalars converted) for exact comparisons."""
    if isinstance(pred, pd.DataFrame):
        pred = pred.iloc[:, 0] if pred.shape[1] == 1 else pred.to_numpy()
    if isinstance(pred, (pd.Series, np.ndarray)):
        return list(pred.tolist())
    return [v.item() if isinstance(v, np.generic) else v for v in pred]


def _log_run_data(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | Sequence[float]],
    tags: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, float], dict[str, list[float]]]:
    """Log params, metrics (a sequence: steps 0..n-1) and tags with the client; return what was set."""
    for k, v in params.items():
        client.log_param(run_id, k, v)
    history: dict[str, list[float]] = {}
    for k, mv in metrics.items():
        values = [float(mv)] if isinstance(mv, (int, float)) else [float(x) for x in mv]
        for step, value in enumerate(values):
            client.log_metric(run_id, k, value, step=step)
        history[k] = values
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    return {k: str(v) for k, v in params.items()}, {k: v[-1] for k, v in history.items()}, history


def pins(*dists: str) -> list[str]:
    """``name==<installed version>`` for each distribution."""
    return [f"{d}=={dist_version(d)}" for d in dists]


def sklearn_requirements(serialization: str = "skops") -> list[str]:
    """What MLflow's inference finds for an sklearn model (without the test runner's own imports)."""
    return pins("mlflow", "numpy", "pandas", "scikit-learn", "scipy", serialization)


def _register(
    client: MlflowClient, name: str, version: str, alias: str | None
) -> tuple[str, str | None, str]:
    if alias is not None:
        client.set_registered_model_alias(name, alias, version)
    mv = client.get_model_version(name, version)
    return str(mv.version), alias, str(mv.source)


def _fit_sklearn(kind: str = "logreg", seed: int = 0) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    X, y = iris_like(seed)
    model: Any
    if kind == "logreg":
        model = LogisticRegression(C=1.0, max_iter=500)
    elif kind == "tree":
        model = DecisionTreeClassifier(max_depth=3, random_state=seed)
    else:
        raise ValueError(kind)
    model.fit(X, y)
    return model, X, _sample(X)


# --- 1. an sklearn model (MLflow 3 layout) ---------------------------------------------------------------


def log_sklearn(
    uri: str,
    *,
    name: str = "iris-model",
    serialization: str = "skops",
    register_as: str | None = None,
    alias: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float | Sequence[float]] | None = None,
    tags: Mapping[str, str] | None = None,
    run_name: str = "train-iris",
    experiment: str = DEFAULT_EXPERIMENT,
    estimator: str = "logreg",
    infer_requirements: bool = False,
) -> LoggedModel:
    """A LogisticRegression on iris-like data, logged with ``mlflow.sklearn.log_model(name=...)``.

    ``estimator="tree"``: a DecisionTreeClassifier instead (skops needs ``skops_trusted_types`` for it).
    The run gets params (hyperparameters plus ``params``), metrics (``loss`` at 3 steps, ``accuracy``,
    plus ``metrics``) and tags (``team``, ``purpose`` plus ``tags``). ``serialization`` is
    ``"skops"`` (model.skops, MLflow 3's default) or ``"cloudpickle"`` (model.pkl).

    ``infer_requirements=True`` lets MLflow infer requirements.txt (it loads the model in a subprocess:
    ~2.5 s a model, and it lists whatever the test process imported, e.g. pytest); by default the pins of
    :func:`sklearn_requirements` are passed as ``pip_requirements``.
    """
    if serialization not in ("skops", "cloudpickle"):
        raise ValueError(f"serialization must be skops or cloudpickle, not {serialization!r}")
    if alias is not None and register_as is None:
        raise ValueError("an alias needs register_as")
    model, X, frame = _fit_sklearn(estimator)
    predictions = to_list(model.predict(frame))
    hyper = {k: v for k, v in model.get_params().items() if k in ("C", "max_iter", "solver", "max_depth")}
    with tracking(uri) as client:
        exp = experiment_id(client, uri, experiment)
        with mlflow.start_run(experiment_id=exp, run_name=run_name) as run:
            run_id = run.info.run_id
            p, m, h = _log_run_data(
                client,
                run_id,
                {**hyper, **(params or {})},
                {"loss": LOSS_HISTORY, "accuracy": float(model.score(X, iris_like()[1])), **(metrics or {})},
                {"team": "kitbridge", "purpose": "tests", **(tags or {})},
            )
            info = mlflow.sklearn.log_model(
                model,
                name=name,
                serialization_format=serialization,
                skops_trusted_types=TREE_TRUSTED_TYPES
                if estimator == "tree" and serialization == "skops"
                else None,
                input_example=frame.head(3),
                signature=infer_signature(frame, model.predict(frame)),
                registered_model_name=register_as,
                pip_requirements=None if infer_requirements else sklearn_requirements(serialization),
            )
        version = source = None
        if register_as is not None:
            version, alias, source = _register(client, register_as, str(info.registered_model_version), alias)
    return LoggedModel(
        tracking_uri=uri,
        experiment_id=exp,
        run_id=run_id,
        run_name=run_name,
        name=name,
        model_id=info.model_id,
        model_uri=info.model_uri,
        frame=frame,
        predictions=predictions,
        registered_name=register_as,
        version=version,
        alias=alias,
        source=source,
        params=p,
        metrics=m,
        metric_history=h,
        tags={"team": "kitbridge", "purpose": "tests", **(tags or {})},
        model_file="model.skops" if serialization == "skops" else "model.pkl",
    )


# --- 2. a pyfunc model whose class is in a code file -----------------------------------------------------


def log_pyfunc_with_code(
    uri: str,
    *,
    name: str = "affine-model",
    register_as: str | None = None,
    alias: str | None = None,
    run_name: str = "affine",
    experiment: str = DEFAULT_EXPERIMENT,
    infer_requirements: bool = False,
) -> LoggedModel:
    """A ``mlflow.pyfunc.PythonModel`` defined in ``kb_affine_model.py`` (logged with ``code_paths``).

    The instance is cloudpickled by reference to its module, so loading it back needs the code file the
    model carries under ``code/``; predict returns ``x * 2 + 1`` for the column ``x``. The module is
    removed from ``sys.modules`` and ``sys.path`` after logging, so a later load really uses that copy.
    """
    if alias is not None and register_as is None:
        raise ValueError("an alias needs register_as")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.5, -3.0, 10.0]})
    predictions = [x * 2 + 1 for x in frame["x"].tolist()]
    with tempfile.TemporaryDirectory(prefix="kb-pyfunc-code-") as code_dir:
        code_file = Path(code_dir) / f"{PYFUNC_MODULE}.py"
        code_file.write_text(PYFUNC_CODE)
        sys.path.insert(0, code_dir)
        try:
            sys.modules.pop(PYFUNC_MODULE, None)
            module = __import__(PYFUNC_MODULE)
            python_model = module.AffineModel()
            with tracking(uri) as client:
                exp = experiment_id(client, uri, experiment)
                with mlflow.start_run(experiment_id=exp, run_name=run_name) as run:
                    run_id = run.info.run_id
                    p, m, h = _log_run_data(
                        client, run_id, {"slope": 2, "intercept": 1}, {}, {"kind": "pyfunc"}
                    )
                    info = mlflow.pyfunc.log_model(
                        name=name,
                        python_model=python_model,
                        code_paths=[str(code_file)],
                        input_example=frame.head(2),
                        signature=infer_signature(frame, predictions),
                        registered_model_name=register_as,
                        pip_requirements=None
                        if infer_requirements
                        else pins("mlflow", "cloudpickle", "pandas"),
                    )
                version = source = None
                if register_as is not None:
                    version, alias, source = _register(
                        client, register_as, str(info.registered_model_version), alias
                    )
        finally:
            sys.modules.pop(PYFUNC_MODULE, None)
            with contextlib.suppress(ValueError):
                sys.path.remove(code_dir)
    return LoggedModel(
        tracking_uri=uri,
        experiment_id=exp,
        run_id=run_id,
        run_name=run_name,
        name=name,
        model_id=info.model_id,
        model_uri=info.model_uri,
        frame=frame,
        predictions=predictions,
        registered_name=register_as,
        version=version,
        alias=alias,
        source=source,
        params=p,
        metrics=m,
        metric_history=h,
        tags={"kind": "pyfunc"},
        flavor="python_function",
        model_file="python_model.pkl",
    )


# --- 3. two logged models in one run ---------------------------------------------------------------------


def log_two_models_in_one_run(
    uri: str, *, run_name: str = "two-models", experiment: str = DEFAULT_EXPERIMENT
) -> TwoModels:
    """One run with "model-a" (LogisticRegression) and "model-b" (DecisionTree), both skops.

    model-b's MLmodel lists ``skops_trusted_types: [sklearn.tree._tree.Tree]``: MLflow 3 (skops 0.16) refuses
    to save a tree in skops format without it (it test-loads the file while saving).
    """
    fitted = {"model-a": _fit_sklearn("logreg"), "model-b": _fit_sklearn("tree")}
    out: dict[str, LoggedModel] = {}
    with tracking(uri) as client:
        exp = experiment_id(client, uri, experiment)
        with mlflow.start_run(experiment_id=exp, run_name=run_name) as run:
            run_id = run.info.run_id
            p, m, h = _log_run_data(client, run_id, {"models": 2}, {"loss": LOSS_HISTORY}, {})
            for name, (model, _X, frame) in fitted.items():
                info = mlflow.sklearn.log_model(
                    model,
                    name=name,
                    skops_trusted_types=TREE_TRUSTED_TYPES if name == "model-b" else None,
                    pip_requirements=sklearn_requirements(),
                    input_example=frame.head(3),
                    signature=infer_signature(frame, model.predict(frame)),
                )
                out[name] = LoggedModel(
                    tracking_uri=uri,
                    experiment_id=exp,
                    run_id=run_id,
                    run_name=run_name,
                    name=name,
                    model_id=info.model_id,
                    model_uri=info.model_uri,
                    frame=frame,
                    predictions=to_list(model.predict(frame)),
                    params=p,
                    metrics=m,
                    metric_history=h,
                    model_file="model.skops",
                )
    return TwoModels(run_id=run_id, models=out)


# --- 4. a run left RUNNING, with a model ------------------------------------------------------------------


def start_unfinished_run(
    uri: str,
    *,
    name: str = "wip-model",
    run_name: str = "still-running",
    experiment: str = DEFAULT_EXPERIMENT,
) -> LoggedModel:
    """A run created with ``client.create_run`` and never terminated, with a model logged to it.

    The logged model is created with ``mlflow.initialize_logged_model(source_run_id=..., experiment_id=...)``
    and filled with ``mlflow.sklearn.log_model(..., run_id=<id>, model_id=<id>)`` (MLflow 3's
    ``Model.log`` takes the run explicitly), then finalized READY; the fluent API never makes the run
    active and nothing ends it: its status stays RUNNING (checked before returning).
    """
    model, _X, frame = _fit_sklearn("logreg")
    with tracking(uri) as client:
        exp = experiment_id(client, uri, experiment)
        run = client.create_run(exp, run_name=run_name)
        run_id = run.info.run_id
        p, m, h = _log_run_data(client, run_id, {"C": model.C}, {"loss": LOSS_HISTORY[:2]}, {"wip": "yes"})
        # With run_id but no active run, log_model would create the logged model in the *default*
        # experiment (MLflow 3.17 takes the experiment from the active run or the default one, not
        # from run_id): create it in the run's experiment first and hand log_model its id.
        logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id, experiment_id=exp, params=p)
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            run_id=run_id,
            model_id=logged.model_id,
            pip_requirements=sklearn_requirements(),
            input_example=frame.head(3),
            signature=infer_signature(frame, model.predict(frame)),
        )
        if client.get_logged_model(logged.model_id).status != LoggedModelStatus.READY:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        status = client.get_run(run_id).info.status
        if status != "RUNNING":
            raise AssertionError(f"the unfinished run {run_id} is {status}, not RUNNING")
        if mlflow.active_run() is not None:
            raise AssertionError("start_unfinished_run left an active fluent run behind")
    return LoggedModel(
        tracking_uri=uri,
        experiment_id=exp,
        run_id=run_id,
        run_name=run_name,
        name=name,
        model_id=info.model_id,
        model_uri=info.model_uri,
        frame=frame,
        predictions=to_list(model.predict(frame)),
        params=p,
        metrics=m,
        metric_history=h,
        tags={"wip": "yes"},
        model_file="model.skops",
    )


# --- 5. a model in the MLflow 2 layout (under the run's artifacts) ---------------------------------------


def mlflow2_model_dir(directory: Path, model: Any, frame: pd.DataFrame, run_id: str) -> dict[str, Any]:
    """Write the files MLflow 2.x's ``mlflow.sklearn.log_model(model, "model")`` wrote; returns the MLmodel.

    MLmodel (``artifact_path: model``, ``run_id``, python_function + sklearn flavors with
    ``pickled_model: model.pkl`` and ``serialization_format: cloudpickle``, ``mlflow_version: 2.x``,
    ``utc_time_created``, ``model_uuid``, signature, input example info), ``model.pkl`` (cloudpickle),
    ``conda.yaml``, ``python_env.yaml``, ``requirements.txt``, ``input_example.json``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "model.pkl", "wb") as f:
        cloudpickle.dump(model, f)
    py = platform.python_version()
    reqs = [f"mlflow=={MLFLOW2_VERSION}", f"cloudpickle=={cloudpickle.__version__}"]
    reqs += [f"numpy=={np.__version__}", f"pandas=={pd.__version__}", f"scikit-learn=={sklearn.__version__}"]
    (directory / "requirements.txt").write_text("\n".join(reqs))
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [f"python={py}", "pip<=24.0", {"pip": reqs}],
        "name": "mlflow-env",
    }
    (directory / "conda.yaml").write_text(yaml.safe_dump(conda, default_flow_style=False))
    python_env = {
        "python": py,
        "build_dependencies": ["pip==24.0", "setuptools==69.5.1", "wheel==0.43.0"],
        "dependencies": ["-r requirements.txt"],
    }
    (directory / "python_env.yaml").write_text(yaml.safe_dump(python_env, default_flow_style=False))
    example = frame.head(3)
    (directory / "input_example.json").write_text(
        json.dumps({"columns": list(example.columns), "data": example.to_numpy().tolist()})
    )
    signature = infer_signature(frame, model.predict(frame))
    mlmodel: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": py,
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "cloudpickle",
                "sklearn_version": sklearn.__version__,
            },
        },
        "mlflow_version": MLFLOW2_VERSION,
        "model_size_bytes": 0,
        "model_uuid": uuid.uuid4().hex,
        "run_id": run_id,
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "pandas_orient": "split",
            "type": "dataframe",
        },
        "signature": signature.to_dict(),
        "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    mlmodel["model_size_bytes"] = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    (directory / "MLmodel").write_text(yaml.safe_dump(mlmodel, default_flow_style=False))
    return mlmodel


def log_mlflow2_layout(
    uri: str,
    *,
    register_as: str | None = None,
    alias: str | None = None,
    source_style: str = "artifact",
    run_name: str = "mlflow2-run",
    experiment: str = DEFAULT_EXPERIMENT,
) -> LoggedModel:
    """A FINISHED run whose model is under the run's artifacts at ``model/``, as MLflow 2 logged it.

    Uploaded with ``client.log_artifacts(run_id, dir, artifact_path="model")``; the run also gets MLflow 2's
    ``mlflow.log-model.history`` tag. When ``register_as`` is given the model is registered with
    ``create_registered_model`` + ``create_model_version(run_id=...)``; ``source_style="artifact"`` uses
    ``<run artifact_uri>/model`` (what MLflow 2's ``register_model("runs:/...")`` stored: it resolved the
    runs: URI), ``"runs"`` stores ``runs:/<run_id>/model`` verbatim.
    """
    if source_style not in ("artifact", "runs"):
        raise ValueError(f"source_style must be artifact or runs, not {source_style!r}")
    if alias is not None and register_as is None:
        raise ValueError("an alias needs register_as")
    model, X, frame = _fit_sklearn("logreg")
    predictions = to_list(model.predict(frame))
    with tracking(uri) as client:
        exp = experiment_id(client, uri, experiment)
        run = client.create_run(exp, run_name=run_name)
        run_id = run.info.run_id
        try:
            p, m, h = _log_run_data(
                client,
                run_id,
                {"C": model.C, "max_iter": model.max_iter},
                {"loss": LOSS_HISTORY, "accuracy": float(model.score(X, iris_like()[1]))},
                {"mlflow_major": "2"},
            )
            with tempfile.TemporaryDirectory(prefix="kb-mlflow2-") as tmp:
                mlmodel = mlflow2_model_dir(Path(tmp) / "model", model, frame, run_id)
                client.log_artifacts(run_id, str(Path(tmp) / "model"), artifact_path="model")
            history = {k: v for k, v in mlmodel.items() if k in ("run_id", "artifact_path", "model_uuid")}
            history["utc_time_created"] = mlmodel["utc_time_created"]
            history["flavors"] = mlmodel["flavors"]
            client.set_tag(run_id, "mlflow.log-model.history", json.dumps([history]))
        finally:
            client.set_terminated(run_id, "FINISHED")
        version = source = None
        if register_as is not None:
            with contextlib.suppress(MlflowException):  # already exists: add a version
                client.create_registered_model(register_as)
            src = f"{run.info.artifact_uri}/model" if source_style == "artifact" else f"runs:/{run_id}/model"
            mv = client.create_model_version(register_as, source=src, run_id=run_id)
            version, alias, source = _register(client, register_as, str(mv.version), alias)
    return LoggedModel(
        tracking_uri=uri,
        experiment_id=exp,
        run_id=run_id,
        run_name=run_name,
        name="model",
        model_id=None,
        model_uri=f"runs:/{run_id}/model",
        frame=frame,
        predictions=predictions,
        registered_name=register_as,
        version=version,
        alias=alias,
        source=source,
        params=p,
        metrics=m,
        metric_history=h,
        tags={"mlflow_major": "2"},
        model_file="model.pkl",
    )


# --- checking a model directory --------------------------------------------------------------------------

_PREDICT_SCRIPT = r"""
import json, sys
import numpy as np, pandas as pd
import mlflow.pyfunc
req = json.load(sys.stdin)
frame = pd.DataFrame(req["data"], columns=req["columns"]).astype(req["dtypes"])
pred = mlflow.pyfunc.load_model(req["path"]).predict(frame)
if isinstance(pred, pd.DataFrame):
    pred = pred.iloc[:, 0] if pred.shape[1] == 1 else pred.to_numpy()
if isinstance(pred, (pd.Series, np.ndarray)):
    pred = pred.tolist()
pred = [v.item() if isinstance(v, np.generic) else v for v in pred]
sys.stdout.write("\n@@PREDICTIONS@@" + json.dumps(pred))
"""


def predict_dir(path: Path | str, frame: pd.DataFrame, *, fresh_process: bool = False) -> list[Any]:
    """Load the MLflow model directory with ``mlflow.pyfunc.load_model`` and predict ``frame``.

    ``fresh_process=True`` does it in a new interpreter (same venv, working directory ``path``'s parent),
    where nothing the tests imported (e.g. a pyfunc model's code module) is available: the directory must
    be self-sufficient.
    """
    if not fresh_process:
        return to_list(mlflow.pyfunc.load_model(str(path)).predict(frame))
    req = {
        "path": str(Path(path).absolute()),
        "columns": list(frame.columns),
        "data": frame.to_numpy().tolist(),
        "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run(
        [sys.executable, "-c", _PREDICT_SCRIPT],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        cwd=Path(path).absolute().parent,
        env=env,
        timeout=300,
    )
    if p.returncode != 0 or "@@PREDICTIONS@@" not in p.stdout:
        raise RuntimeError(
            f"loading {path} in a fresh interpreter failed ({p.returncode}):\n{p.stderr[-4000:]}"
        )
    return list(json.loads(p.stdout.rsplit("@@PREDICTIONS@@", 1)[1]))
