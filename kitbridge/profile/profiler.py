"""Combine every detector into one ModelProfile: what a folder of model files *is*.

Only headers and small metadata files are read; nothing is executed or unpickled. Every detector
fails soft here: a file it cannot read becomes a warning, never a crash, because a profile is a
best effort on top of packing (which needs none of it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kitbridge.errors import KitbridgeError
from kitbridge.profile import gguf, hfconfig, license, mlmodel, modelcard, onnx, pickle_scan, safetensors
from kitbridge.profile.params import param_size, precision_mix

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
_WEIGHT_ORDER = ("safetensors", "gguf", "onnx", "pytorch", "pickle")
_TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class ModelProfile:
    """What kitbridge learned about a model from its files (every field may be unknown)."""

    format: str = ""  # safetensors, gguf, onnx, pytorch (pickle), …
    framework: str = ""  # sentence-transformers, transformers, diffusers, peft, llama.cpp, onnx, …
    library: str = ""  # the library the framework builds on (transformers under sentence-transformers)
    weights: tuple[str, ...] = ()  # relative paths of the main weight files, shards in order
    parameter_count: int | None = None  # trained parameters (buffers such as position_ids excluded)
    param_size: str = ""  # model-spec paramSize, e.g. 22.7M
    precision: str = ""  # model-spec precision, e.g. float32 or "bfloat16,float32"
    quantization: str = ""  # awq, gptq, bitsandbytes-4bit, Q4_K_M, …
    architecture: str = ""  # e.g. BertModel, LlamaForCausalLM, llama (GGUF)
    family: str = ""  # e.g. bert, llama
    task: str = ""  # e.g. sentence-similarity, text-generation
    context_length: int | None = None
    license: str = ""  # SPDX id (or LicenseRef-…)
    languages: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    title: str = ""  # the model card's first heading
    description: str = ""  # the model card's first paragraph
    roles: dict[str, str] = field(default_factory=dict)  # relative path -> weights/weight-config/tokenizer/…
    unsafe_pickles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> dangerous imports
    warnings: tuple[str, ...] = ()


def _exists(root: Path, rel: str) -> Path | None:
    p = root / rel
    return p if p.is_file() else None


def profile_files(root: str | os.PathLike[str], files: Sequence[str]) -> ModelProfile:
    """Profile the model in ``root`` given its relative file paths (as an importer listed them)."""
    base = Path(root)
    warnings: list[str] = []
    facts: dict[str, Any] = {}
    roles: dict[str, str] = {}
    unsafe: dict[str, tuple[str, ...]] = {}
    top = [f for f in files if "/" not in f]

    def soft(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (KitbridgeError, OSError, ValueError) as e:
            warnings.append(f"{what}: {e}")
            return None

    for rel in files:
        role = hfconfig.classify_hf_file(rel)
        if role in ("weight-config", "st-config", "index"):
            roles[rel] = "weight-config"
        elif role == "tokenizer":
            roles[rel] = "tokenizer"

    # --- weights: the richest format present decides ------------------------------------------------
    by_kind: dict[str, list[str]] = {k: [] for k in _WEIGHT_ORDER}
    for rel in files:
        low = rel.lower()
        if low.endswith(".safetensors"):
            by_kind["safetensors"].append(rel)
        elif low.endswith(".gguf"):
            by_kind["gguf"].append(rel)
        elif low.endswith(".onnx"):
            by_kind["onnx"].append(rel)
        elif low.endswith(PICKLE_SUFFIXES) and not rel.startswith("."):
            # .bin/.pt/.pth/.ckpt are torch checkpoints; .pkl/.joblib are plain pickles (sklearn, MLflow).
            by_kind["pytorch" if low.endswith(_TORCH_SUFFIXES) else "pickle"].append(rel)
    precision = ""
    for kind in _WEIGHT_ORDER:
        if not by_kind[kind]:
            continue
        paths = sorted(by_kind[kind])
        facts.setdefault("format", kind)
        facts.setdefault("weights", tuple(paths))
        if kind == "safetensors":
            # A root-level set (one file or shards) is the model; nested ones are often adapters or variants.
            main = [p for p in paths if "/" not in p] or paths
            info = soft("safetensors", safetensors.profile_safetensors_set, [base / p for p in main])
            if info is not None:
                facts.setdefault("weights", tuple(main))
                facts.setdefault("parameter_count", info.parameters)
                precision = precision or precision_mix(info.bytes_by_dtype)
        elif kind == "gguf":
            info = soft("gguf", gguf.read_gguf, base / paths[0])
            if info is not None:
                facts.setdefault("parameter_count", info.parameters)
                facts.setdefault("quantization", info.quantization or "")
                facts.setdefault("architecture", info.architecture or "")
                facts.setdefault("family", info.architecture or "")
                facts.setdefault("context_length", info.context_length)
                facts.setdefault("framework", "llama.cpp")
                precision = precision or info.precision
        elif kind == "onnx":
            info = soft("onnx", onnx.read_onnx, base / paths[0])
            if info is not None:
                facts.setdefault("parameter_count", info.parameters)
                facts.setdefault("framework", "onnx")
                precision = precision or precision_mix(info.bytes_by_type)
        for rel in paths:
            roles.setdefault(rel, "weights")
    for rel in by_kind["pytorch"] + by_kind["pickle"]:
        scan = soft(f"pickle scan of {rel}", pickle_scan.scan_pickle, base / rel)
        if scan is not None and scan.dangerous:
            found = tuple(f"{i.module}.{i.name}" for i in scan.dangerous)
            unsafe[rel] = found
            warnings.append(f"{rel} is a pickle that imports {', '.join(found)}: never load it")

    # --- metadata files ----------------------------------------------------------------------------------
    if "config.json" in top:
        cfg = hfconfig.read_hf_config(base / "config.json")
        warnings.extend(cfg.warnings)
        facts.setdefault("architecture", cfg.architecture or "")
        facts.setdefault("family", cfg.family or "")
        facts.setdefault("task", cfg.task or "")
        facts.setdefault("quantization", cfg.quantization or "")
        facts.setdefault("context_length", cfg.context_length)
        facts.setdefault("library", cfg.library or "")
        precision = precision or (cfg.precision or "")
    if "modules.json" in top:
        facts["framework"] = "sentence-transformers"
    elif "model_index.json" in top:
        facts.setdefault("framework", "diffusers")
    elif "adapter_config.json" in top:
        ad = hfconfig.read_adapter_config(base / "adapter_config.json")
        facts.setdefault("framework", "peft")
        if ad.base_model:
            facts["base_models"] = (ad.base_model,)
    if "MLmodel" in top:
        roles["MLmodel"] = "weight-config"  # how to load the model: it travels with the weights
        ml = mlmodel.read_mlmodel(base / "MLmodel")
        warnings.extend(ml.warnings)
        facts.setdefault("framework", ml.framework or "mlflow")
        for rel in ml.files:
            roles.setdefault(rel, "weights")
    if facts.get("library") and not facts.get("framework"):
        facts["framework"] = facts["library"]
    card_path = next((base / f for f in top if f.lower() == "readme.md"), None)
    if card_path is not None:
        card = modelcard.read_model_card(card_path)
        warnings.extend(card.warnings)
        facts.setdefault("task", "")
        facts["task"] = card.pipeline_tag or facts["task"]
        if card.spdx_licenses:
            facts["license"] = card.spdx_licenses[0]
        facts["languages"] = tuple(card.languages)
        facts.setdefault("base_models", tuple(card.base_models))
        facts["datasets"] = tuple(card.datasets)
        facts["tags"] = tuple(card.tags)
        facts["title"] = card.title or ""
        facts["description"] = card.description or ""
    if not facts.get("license"):
        for rel in top:
            if license.is_license_filename(rel):
                match = license.identify_license_file(base / rel)
                if match is not None:
                    facts["license"] = match.spdx_id
                    break
    count = facts.get("parameter_count")
    return ModelProfile(
        format=facts.get("format", ""),
        framework=facts.get("framework", ""),
        library=facts.get("library", ""),
        weights=facts.get("weights", ()),
        parameter_count=count,
        param_size=param_size(count) if count else "",
        precision=precision,
        quantization=facts.get("quantization") or "",
        architecture=facts.get("architecture") or "",
        family=facts.get("family") or "",
        task=facts.get("task") or "",
        context_length=facts.get("context_length"),
        license=facts.get("license", ""),
        languages=facts.get("languages", ()),
        base_models=facts.get("base_models", ()),
        datasets=facts.get("datasets", ()),
        tags=facts.get("tags", ()),
        title=facts.get("title", ""),
        description=facts.get("description", ""),
        roles=roles,
        unsafe_pickles=unsafe,
        warnings=tuple(warnings),
    )


def model_parameters(p: ModelProfile, revision: str | None = None) -> dict[str, Any]:
    """The Kitfile ``model.parameters`` block: the facts a reader of the Kitfile wants at a glance."""
    out: dict[str, Any] = {}
    for key, value in (
        ("paramSize", p.param_size),
        ("parameterCount", p.parameter_count),
        ("precision", p.precision),
        ("quantization", p.quantization),
        ("architecture", p.architecture),
        ("family", p.family),
        ("task", p.task),
        ("contextLength", p.context_length),
        ("languages", list(p.languages)),
        ("baseModel", p.base_models[0] if p.base_models else ""),
        ("sourceRevision", revision or ""),
    ):
        if value not in ("", None, []):
            out[key] = value
    if p.unsafe_pickles:
        out["unsafePickleImports"] = {k: list(v) for k, v in p.unsafe_pickles.items()}
    return out


def stem_name(path: str) -> str:
    """A file or folder name without its suffix (for a default model name)."""
    return PurePosixPath(path).stem
