"""Transformers LLMs (safetensors): vLLM's OpenAI-compatible server (GPU)."""

from __future__ import annotations

from typing import ClassVar

from kitbridge.converters.exporters.base import MODEL_DIR, ModelFacts, Plan
from kitbridge.converters.exporters.docker import images

GENERATIVE_TASKS = frozenset({"text-generation", "text2text-generation", "image-text-to-text"})


def is_llm(facts: ModelFacts) -> str | None:
    """Why the model looks like a transformers LLM (a causal-LM architecture or a generation task)."""
    arch = str(facts.config.get("architecture") or "")
    task = str(facts.config.get("task") or "")
    weights = facts.model_path.lower().endswith(".safetensors") or facts.model_format == "safetensors"
    if not weights or not facts.has_file("config.json"):
        return None
    if arch.endswith(("ForCausalLM", "ForConditionalGeneration")):
        return f"safetensors weights with a {arch} config"
    if task in GENERATIVE_TASKS:
        return f"safetensors weights for {task}"
    return None


class VllmRuntime:
    """``vllm serve`` on the model folder; needs an NVIDIA GPU at run time."""

    name: ClassVar[str] = "vllm"
    description: ClassVar[str] = "vLLM OpenAI-compatible server (GPU)"

    def detect(self, facts: ModelFacts) -> str | None:
        return is_llm(facts)

    def plan(self, facts: ModelFacts, *, mode: str, port: int | None, base_image: str | None) -> Plan:
        port = port or 8000
        return Plan(
            base_image=base_image or images.VLLM,
            port=port,
            health_path="/health",
            entrypoint=[
                "vllm",
                "serve",
                MODEL_DIR,
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
                "--served-model-name",
                facts.name,
            ],
            env={"VLLM_NO_USAGE_STATS": "1"},
            sample_request=(
                f"curl -s http://127.0.0.1:{port}/v1/completions -H 'Content-Type: application/json' \\\n"
                f'  -d \'{{"model": "{facts.name}", "prompt": "Hello", "max_tokens": 16}}\''
            ),
            notes=[
                "vLLM needs an NVIDIA GPU: `docker run --gpus all …` "
                "(podman: `--device nvidia.com/gpu=all`). "
                "Without one, export with `--runtime transformers` for a CPU server."
            ],
        )
