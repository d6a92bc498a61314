"""ONNX models: onnxruntime behind an Open Inference Protocol v2 server (``/v2/health/ready``, ``/infer``)."""

from __future__ import annotations

import re
from typing import ClassVar

from kitbridge.converters.exporters.base import APP_DIR, ModelFacts, Plan
from kitbridge.converters.exporters.docker import images
from kitbridge.converters.exporters.docker.context import server_file

REQUIREMENTS = "onnxruntime>=1.18,<2\nnumpy>=1.26,<3\n"
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class OnnxRuntime:
    """kitbridge's own OIP (KServe v2) server on onnxruntime (CPU)."""

    name: ClassVar[str] = "onnxruntime"
    description: ClassVar[str] = "onnxruntime behind an Open Inference Protocol v2 server"

    def detect(self, facts: ModelFacts) -> str | None:
        if facts.model_path.lower().endswith(".onnx") or facts.model_format.lower() == "onnx":
            return "the model is an ONNX file"
        return None

    def plan(self, facts: ModelFacts, *, mode: str, port: int | None, base_image: str | None) -> Plan:
        port = port or 8080
        name = _NAME.sub("-", facts.name) or "model"
        return Plan(
            base_image=base_image or images.PYTHON,
            port=port,
            health_path="/v2/health/ready",
            entrypoint=["python3", f"{APP_DIR}/oip_server.py"],
            install=[f"RUN python3 -m pip install --no-cache-dir -r {APP_DIR}/requirements.txt"],
            files={"oip_server.py": server_file("oip_server.py"), "requirements.txt": REQUIREMENTS},
            env={"MODEL_FILE": facts.model_path, "MODEL_NAME": name},
            sample_request=(
                f"curl -s http://127.0.0.1:{port}/v2/models/{name}/infer \\\n"
                "  -H 'Content-Type: application/json' \\\n"
                f'  -d \'{{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32", '
                f'"data": [1, 2, 3, 4]}}]}}\'   # names, shapes and types: GET /v2/models/{name}'
            ),
            notes=[
                "Open Inference Protocol v2 (KServe): `GET /v2/models/"
                + name
                + "` describes inputs and outputs."
            ],
        )
