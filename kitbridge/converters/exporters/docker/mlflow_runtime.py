"""MLflow models: MLflow's pyfunc scoring server (``/ping``, ``/health``, ``/version``, ``/invocations``)."""

from __future__ import annotations

import json
import re
from typing import ClassVar

from kitbridge.converters.exporters.base import APP_DIR, MODEL_DIR, ModelFacts, Plan
from kitbridge.converters.exporters.docker import images

_VERSION = re.compile(r"\d+(\.\d+){1,2}([a-z0-9.+-]*)?")


class MLflowRuntime:
    """``mlflow models serve --env-manager local`` over the model's own requirements.txt."""

    name: ClassVar[str] = "mlflow"
    description: ClassVar[str] = "MLflow pyfunc scoring server"

    def detect(self, facts: ModelFacts) -> str | None:
        if facts.mlflow:
            return "the ModelKit came from MLflow (model.parameters.mlflow)"
        if facts.has_file("MLmodel"):
            return "the model has an MLmodel file"
        return None

    def plan(self, facts: ModelFacts, *, mode: str, port: int | None, base_image: str | None) -> Plan:
        port = port or 8080
        version = str(facts.mlflow.get("mlflowVersion") or "")
        mlflow_req = f"mlflow=={version}" if _VERSION.fullmatch(version) else "mlflow>=2.16,<4"
        install = [
            "# The model's own requirements (MLflow wrote them when it logged it), then MLflow itself.",
            f"RUN python3 -m pip install --no-cache-dir -r {APP_DIR}/model-requirements.txt "
            f"&& python3 -m pip install --no-cache-dir '{mlflow_req}'",
        ]
        frame = json.dumps({"dataframe_split": {"columns": ["..."], "data": [["..."]]}})
        return Plan(
            base_image=base_image or images.PYTHON,
            port=port,
            health_path="/health",
            entrypoint=[
                "mlflow",
                "models",
                "serve",
                "-m",
                MODEL_DIR,
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
                "--env-manager",
                "local",
            ],
            install=install,
            build_files={"model-requirements.txt": "requirements.txt"},
            sample_request=(
                f"curl -s http://127.0.0.1:{port}/invocations -H 'Content-Type: application/json' \\\n"
                f"  -d '{frame}'   # see serving_input_example.json in the model for a real one"
            ),
            notes=[
                "The scoring server also answers `/ping` and `/version`; `/invocations` takes exactly one of "
                "`dataframe_split`, `dataframe_records`, `instances` or `inputs` (or CSV)."
            ],
        )
