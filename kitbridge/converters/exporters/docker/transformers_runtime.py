"""Transformers LLMs on CPU: kitbridge's small OpenAI-style completions server (vLLM's fallback)."""

from __future__ import annotations

from typing import ClassVar

from kitbridge.converters.exporters.base import APP_DIR, ModelFacts, Plan
from kitbridge.converters.exporters.docker import images
from kitbridge.converters.exporters.docker.context import server_file
from kitbridge.converters.exporters.docker.vllm import is_llm

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
REQUIREMENTS = "transformers>=4.45,<6\nsafetensors>=0.4,<1\naccelerate>=0.34,<2\n"


class TransformersRuntime:
    """A CPU server for causal LMs with transformers; never chosen by ``auto`` (vLLM is)."""

    name: ClassVar[str] = "transformers"
    description: ClassVar[str] = "transformers on CPU (OpenAI-style /v1/completions)"

    def detect(self, facts: ModelFacts) -> str | None:
        return is_llm(facts)

    def plan(self, facts: ModelFacts, *, mode: str, port: int | None, base_image: str | None) -> Plan:
        port = port or 8080
        return Plan(
            base_image=base_image or images.PYTHON,
            port=port,
            health_path="/health",
            entrypoint=["python3", f"{APP_DIR}/generate_server.py"],
            install=[
                "# CPU-only torch from PyTorch's own index (no CUDA wheels), then transformers.",
                f"RUN python3 -m pip install --no-cache-dir --index-url {TORCH_CPU_INDEX} 'torch>=2.3,<3' "
                f"&& python3 -m pip install --no-cache-dir -r {APP_DIR}/requirements.txt",
            ],
            files={"generate_server.py": server_file("generate_server.py"), "requirements.txt": REQUIREMENTS},
            env={"MODEL_NAME": facts.name},
            sample_request=(
                f"curl -s http://127.0.0.1:{port}/v1/completions -H 'Content-Type: application/json' \\\n"
                f'  -d \'{{"prompt": "Hello", "max_tokens": 16}}\''
            ),
            notes=["CPU inference, one request at a time: for throughput use the vllm runtime on a GPU."],
        )
