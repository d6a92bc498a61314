"""Reads model files without executing them: safetensors/GGUF/ONNX headers, configs, cards, licenses."""

from kitbridge.profile.profiler import ModelProfile, model_parameters, profile_files

__all__ = ["ModelProfile", "model_parameters", "profile_files"]
