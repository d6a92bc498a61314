"""Default base images, each pinned by digest (override with --base-image or --build-arg BASE_IMAGE)."""

PYTHON = "docker.io/library/python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"  # noqa: E501
"""Official Python 3.11 on Debian 12 (slim): MLflow, onnxruntime and the CPU transformers server."""
LLAMACPP = "ghcr.io/ggml-org/llama.cpp:server@sha256:092d1291f2bcf59ff727fa3af855fb9bd4759d6bff860f6fbfd5e3e377e12625"  # noqa: E501
"""llama.cpp's own server image (``/app/llama-server``, curl for the health check)."""
VLLM = "docker.io/vllm/vllm-openai@sha256:0a51ea5b4ae2dc5d81890e5173f54203d2a3ae0cfffe51b8fd2afd4391bfd967"
"""vLLM's OpenAI-compatible server image (CUDA)."""
