"""MLflow importer rules that need no server: URI forms, credentials kept out, the parameters block."""

from __future__ import annotations

import pytest

from kitbridge.converters.importers.base import Provenance
from kitbridge.converters.importers.mlflow import MLflowSource, _ui_url, mlflow_parameters, public_uri
from kitbridge.errors import UsageError


@pytest.mark.parametrize(
    ("uri", "kind", "fields"),
    [
        ("runs:/abc123", "run", {"run_id": "abc123", "path": None}),
        ("runs:/abc123/model", "run", {"run_id": "abc123", "path": "model"}),
        ("runs:/abc123/model/sub/", "run", {"run_id": "abc123", "path": "model/sub"}),
        ("models:/iris/3", "version", {"name": "iris", "version": "3"}),
        ("models:/iris/latest", "version", {"name": "iris", "version": "latest"}),
        ("models:/team/iris/3", "version", {"name": "team/iris", "version": "3"}),
        ("models:/iris@champion", "alias", {"name": "iris", "alias": "champion"}),
        ("models:/m-0123456789abcdef", "logged-model", {"model_id": "m-0123456789abcdef"}),
        ("mlflow-artifacts:/1/models/m-1/artifacts", "artifacts", {}),
    ],
)
def test_mlflow_uris_parse(uri: str, kind: str, fields: dict[str, str | None]) -> None:
    src = MLflowSource.parse(uri)
    assert src.kind == kind
    for name, value in fields.items():
        assert getattr(src, name) == value


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("runs:/", "names no run"),
        ("models:/iris", "not a model URI"),
        ("models:/iris/Production", "not a model URI"),
        ("models:/iris@", "not a model URI"),
        ("mlflow-artifacts:/", "names no artifact path"),
        ("s3://bucket/model", "not an MLflow URI"),
    ],
)
def test_bad_mlflow_uris_are_usage_errors(uri: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        MLflowSource.parse(uri)


def test_credentials_never_leave_the_tracking_uri() -> None:
    assert (
        public_uri("https://bob:s3cret@mlflow.example.com:8443/prefix")
        == "https://mlflow.example.com:8443/prefix"
    )
    assert public_uri("https://token@mlflow.example.com") == "https://mlflow.example.com"
    assert public_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_ui_links_for_http_servers_only() -> None:
    version = {"mlflow.registered_name": "my model", "mlflow.registered_version": "2"}
    assert _ui_url("http://h:5000/", version) == "http://h:5000/#/models/my%20model/versions/2"
    run = {"mlflow.run_id": "r1", "mlflow.experiment_id": "7"}
    assert _ui_url("http://h:5000", run) == "http://h:5000/#/experiments/7/runs/r1"
    assert _ui_url("sqlite:///x.db", run) is None


def test_the_parameters_block_carries_the_provenance() -> None:
    prov = Provenance(
        source_uri="models:/iris@champion",
        params={"C": "1.0"},
        metrics={"loss": 0.2},
        tags={"team": "ml"},
        extra={
            "mlflow.tracking_uri": "http://h:5000",
            "mlflow.experiment_id": "1",
            "mlflow.run_id": "r1",
            "mlflow.run_name": "train",
            "mlflow.model_id": "m-1",
            "mlflow.registered_name": "iris",
            "mlflow.registered_version": "4",
            "mlflow.registered_alias": "champion",
            "mlflow.flavors": "python_function,sklearn",
            "mlflow.framework": "sklearn",
            "mlflow.signature": '{"inputs":[{"type":"tensor"}],"outputs":[]}',
        },
    )
    assert mlflow_parameters(prov) == {
        "trackingUri": "http://h:5000",
        "experimentId": "1",
        "run": {"id": "r1", "name": "train"},
        "modelId": "m-1",
        "registeredModel": {"name": "iris", "version": "4", "alias": "champion"},
        "flavors": ["python_function", "sklearn"],
        "framework": "sklearn",
        "params": {"C": "1.0"},
        "metrics": {"loss": 0.2},
        "tags": {"team": "ml"},
        "signature": {"inputs": [{"type": "tensor"}], "outputs": []},
    }
    assert mlflow_parameters(Provenance(source_uri="file:///x")) == {}


def test_without_mlflow_the_importer_says_how_to_install_it() -> None:
    """The extra is optional: a missing mlflow package is a usage error naming the install command."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['mlflow'] = None\n"  # what an install without the extra looks like
        "from kitbridge.converters.importers.mlflow import MLflowImporter\n"
        "from kitbridge.errors import UsageError\n"
        "try:\n"
        "    MLflowImporter().resolve('models:/iris/1', tracking_uri='sqlite:///x.db')\n"
        "except UsageError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs the mlflow package" in out and "pip install 'kitbridge[mlflow]'" in out
