"""GGUF models: llama.cpp's server (OpenAI-compatible ``/v1/...``, ``/health``)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import ClassVar

from kitbridge.converters.exporters.base import MODEL_DIR, ModelFacts, Plan
from kitbridge.converters.exporters.docker import images


class LlamaCppRuntime:
    """``llama-server`` from llama.cpp's own image, reading the GGUF file from the model folder."""

    name: ClassVar[str] = "llamacpp"
    description: ClassVar[str] = "llama.cpp server for GGUF models"

    def detect(self, facts: ModelFacts) -> str | None:
        if facts.header[:4] == b"GGUF":
            return f"{facts.model_path} starts with the GGUF magic"
        if facts.model_path.lower().endswith(".gguf") or facts.model_format.lower() == "gguf":
            return "the model is a GGUF file"
        return None

    def plan(self, facts: ModelFacts, *, mode: str, port: int | None, base_image: str | None) -> Plan:
        port = port or 8080
        model = f"{MODEL_DIR}/{facts.model_path}"
        args = ["/app/llama-server", "--model", model, "--host", "0.0.0.0", "--port", str(port)]
        projector = next((f for f in facts.files if PurePosixPath(f).name.lower().startswith("mmproj")), None)
        if projector:
            args += ["--mmproj", f"{MODEL_DIR}/{projector}"]
        return Plan(
            base_image=base_image or images.LLAMACPP,
            port=port,
            health_path="/health",
            entrypoint=args,
            env={"LLAMA_ARG_ALIAS": facts.name},
            healthcheck=["curl", "-fsS", f"http://127.0.0.1:{port}/health"],
            sample_request=(
                f"curl -s http://127.0.0.1:{port}/v1/chat/completions \\\n"
                "  -H 'Content-Type: application/json' \\\n"
                f'  -d \'{{"messages": [{{"role": "user", "content": "Hello"}}]}}\''
            ),
            notes=["CPU by default; for a GPU build use a CUDA llama.cpp server image as BASE_IMAGE."],
        )
