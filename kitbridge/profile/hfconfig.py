"""Hugging Face JSON configs read as data: ``config.json``, PEFT, sentence-transformers and diffusers files.

Nothing here imports or runs model code: ``auto_map``, ``trust_remote_code`` and class names are only
strings. Every reader fails soft: a missing, oversized or malformed file gives a result whose
``warnings`` say why, never an exception.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_SMALL_FILE = 4 * 1024 * 1024
"""The most bytes any profile reader takes from one config, card or metadata file."""

StrPath = str | os.PathLike[str]


def read_small_text(path: StrPath, max_bytes: int = MAX_SMALL_FILE) -> tuple[str, bool]:
    """The first ``max_bytes`` of a regular file as UTF-8 text, and whether the file was longer.

    Raises OSError when the file is missing, unreadable or not a regular file (a FIFO would block).
    """
    p = Path(path)
    if not stat.S_ISREG(os.stat(p).st_mode):
        raise OSError(f"{p.name} is not a regular file")
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    truncated = len(data) > max_bytes
    return data[:max_bytes].decode("utf-8-sig", errors="replace"), truncated


def load_json_file(path: StrPath, max_bytes: int = MAX_SMALL_FILE) -> tuple[object, list[str]]:
    """A small JSON file parsed, or None with the warnings that say why it could not be."""
    name = Path(path).name
    try:
        text, truncated = read_small_text(path, max_bytes)
    except OSError as e:
        return None, [f"{name}: cannot read ({e.strerror or e})"]
    if truncated:
        return None, [f"{name}: larger than {max_bytes} bytes, not read"]
    try:
        return json.loads(text), []
    except json.JSONDecodeError as e:
        return None, [f"{name}: not valid JSON (line {e.lineno}: {e.msg})"]
    except (ValueError, RecursionError) as e:
        return None, [f"{name}: not valid JSON ({e})"]


def _load_json_object(path: StrPath) -> tuple[dict[str, object], list[str]]:
    data, warnings = load_json_file(path)
    if data is None:
        return {}, warnings
    if not isinstance(data, dict):
        return {}, [f"{Path(path).name}: expected a JSON object, got {type(data).__name__}"]
    return data, warnings


def _file_in(path: StrPath, default_name: str) -> Path:
    p = Path(path)
    return p / default_name if p.is_dir() else p


def _str(v: object) -> str | None:
    return v.strip() or None if isinstance(v, str) else None


def _int(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _float(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _str_tuple(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,) if v.strip() else ()
    if isinstance(v, (list, tuple)):
        return tuple(s for s in v if isinstance(s, str) and s.strip())
    return ()


# --- config.json -----------------------------------------------------------------------------------------

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float64": "float64",
    "double": "float64",
    "fp64": "float64",
    "int8": "int8",
    "uint8": "uint8",
}

# Multimodal configs keep the language model's sizes in a nested config.
_NESTED = ("text_config", "llm_config", "language_config", "decoder")

_VISION_TYPES = frozenset(
    {
        *("vit", "deit", "beit", "swin", "swinv2", "convnext", "convnextv2", "dinov2", "detr", "yolos"),
        *("clip", "siglip", "siglip2", "chinese_clip", "altclip", "owlvit", "owlv2", "blip", "blip-2"),
        *("llava", "llava_next", "llava_onevision", "idefics", "idefics2", "idefics3", "paligemma"),
        *("pix2struct", "git", "vision-encoder-decoder", "qwen2_vl", "qwen2_5_vl", "mllama", "florence2"),
        *("kosmos-2", "donut-swin", "segformer", "mask2former", "sam", "dpt", "smolvlm"),
    }
)
_AUDIO_TYPES = frozenset(
    {
        *("whisper", "wav2vec2", "wav2vec2-bert", "hubert", "wavlm", "speech_to_text", "speecht5"),
        *("seamless_m4t", "seamless_m4t_v2", "musicgen", "bark", "encodec", "clap", "unispeech"),
        *("audio-spectrogram-transformer", "unispeech-sat", "data2vec-audio"),
    }
)
_ZERO_SHOT_IMAGE_TYPES = frozenset({"clip", "siglip", "siglip2", "chinese_clip", "altclip", "owlvit"})

# Checked in order: the first suffix an architecture name ends with decides the task.
_ARCH_TASKS: tuple[tuple[str, str], ...] = (
    ("ForCausalLM", "text-generation"),
    ("WithLMHeadModel", "text2text-generation"),  # T5WithLMHeadModel, before the LMHeadModel rule
    ("LMHeadModel", "text-generation"),  # GPT2LMHeadModel and other pre-ForCausalLM names
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForSeq2SeqLM", "text2text-generation"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "image-segmentation"),
    ("ForInstanceSegmentation", "image-segmentation"),
    ("ForUniversalSegmentation", "image-segmentation"),
    ("ForDepthEstimation", "depth-estimation"),
    ("ForMaskGeneration", "mask-generation"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForAudioClassification", "audio-classification"),
    ("ForImageTextToText", "image-text-to-text"),
    ("ForVision2Seq", "image-to-text"),
    ("ForVisualQuestionAnswering", "visual-question-answering"),
    ("ForTextToSpeech", "text-to-speech"),
    ("ForTextToWaveform", "text-to-speech"),
)

TASK_IO_TYPES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text-generation": (("text",), ("text",)),
    "text2text-generation": (("text",), ("text",)),
    "summarization": (("text",), ("text",)),
    "translation": (("text",), ("text",)),
    "question-answering": (("text",), ("text",)),
    "table-question-answering": (("text",), ("text",)),
    "fill-mask": (("text",), ("text",)),
    "text-classification": (("text",), ("other",)),
    "token-classification": (("text",), ("other",)),
    "zero-shot-classification": (("text",), ("other",)),
    "multiple-choice": (("text",), ("other",)),
    "feature-extraction": (("text",), ("embedding",)),
    "sentence-similarity": (("text",), ("embedding",)),
    "text-ranking": (("text",), ("other",)),
    "image-classification": (("image",), ("other",)),
    "zero-shot-image-classification": (("image", "text"), ("other",)),
    "object-detection": (("image",), ("other",)),
    "zero-shot-object-detection": (("image", "text"), ("other",)),
    "image-segmentation": (("image",), ("image",)),
    "mask-generation": (("image",), ("image",)),
    "depth-estimation": (("image",), ("image",)),
    "image-feature-extraction": (("image",), ("embedding",)),
    "image-to-text": (("image",), ("text",)),
    "image-text-to-text": (("image", "text"), ("text",)),
    "visual-question-answering": (("image", "text"), ("text",)),
    "document-question-answering": (("image", "text"), ("text",)),
    "text-to-image": (("text",), ("image",)),
    "image-to-image": (("image", "text"), ("image",)),
    "image-to-video": (("image", "text"), ("video",)),
    "text-to-video": (("text",), ("video",)),
    "video-classification": (("video",), ("other",)),
    "automatic-speech-recognition": (("audio",), ("text",)),
    "audio-classification": (("audio",), ("other",)),
    "text-to-speech": (("text",), ("audio",)),
    "text-to-audio": (("text",), ("audio",)),
    "audio-to-audio": (("audio",), ("audio",)),
}
"""ModelPack ``capabilities`` input/output types for a Hugging Face pipeline tag."""


def task_io_types(task: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(inputTypes, outputTypes) for a pipeline tag; two empty tuples when the tag is unknown or None."""
    return TASK_IO_TYPES.get(task or "", ((), ()))


@dataclass(frozen=True)
class HfConfig:
    """What a ``config.json`` says about a model (transformers; diffusers and timm configs in part)."""

    library: str | None = None
    """Which library wrote it: ``transformers``, ``diffusers`` or ``timm``; None when unknown."""
    architectures: tuple[str, ...] = ()
    """``architectures`` as written (class names, never imported)."""
    architecture: str | None = None
    """The first architecture (``BertModel``), or a diffusers ``_class_name`` / timm ``architecture``."""
    family: str | None = None
    """``model_type``: bert, llama, mistral, qwen2, gpt2, t5, ..."""
    task: str | None = None
    """A pipeline tag guessed from the architecture name (``text-generation``, ``feature-extraction``...)."""
    precision: str | None = None
    """``dtype`` / ``torch_dtype`` as a plain word: float32, float16, bfloat16, ...; None for ``auto``."""
    quantization: str | None = None
    """``quantization_config.quant_method`` lowercased (awq, gptq, fp8, bitsandbytes-4bit, ...)."""
    quantization_bits: int | None = None
    """Bits per quantized weight when the quantization config says (``bits``, ``load_in_4bit``...)."""
    context_length: int | None = None
    """``max_position_embeddings`` / ``n_positions`` / ``max_seq_len`` / ``seq_length`` / ``n_ctx``."""
    hidden_size: int | None = None
    """``hidden_size`` / ``n_embd`` / ``d_model``."""
    num_hidden_layers: int | None = None
    """``num_hidden_layers`` / ``n_layer`` / ``num_layers``."""
    num_attention_heads: int | None = None
    """``num_attention_heads`` / ``n_head`` / ``num_heads``."""
    intermediate_size: int | None = None
    """``intermediate_size`` / ``n_inner`` / ``d_ff``."""
    vocab_size: int | None = None
    """``vocab_size``."""
    transformers_version: str | None = None
    """``transformers_version`` (or ``_diffusers_version`` for a diffusers component config)."""
    name_or_path: str | None = None
    """``_name_or_path``: where the model was loaded from when it was saved (often its base model)."""
    is_encoder_decoder: bool = False
    """``is_encoder_decoder``."""
    has_vision: bool = False
    """A vision tower is configured (``vision_config``) or the model type is a vision one."""
    has_audio: bool = False
    """An audio encoder is configured (``audio_config``) or the model type is a speech/audio one."""
    has_remote_code: bool = False
    """``auto_map`` is set: loading it needs code from the repo (never run here)."""
    warnings: tuple[str, ...] = ()
    """Why something could not be read."""


def normalize_dtype(value: object) -> str | None:
    """A torch dtype spelling (``torch.bfloat16``, ``bf16``, ``half``) as a plain word; None for auto."""
    s = _str(value)
    if s is None:
        return None
    s = s.lower().removeprefix("torch.")
    if s == "auto":
        return None
    return _DTYPES.get(s, s)


def _quantization(data: Mapping[str, object]) -> tuple[str | None, int | None]:
    qc = data.get("quantization_config")
    if not isinstance(qc, dict):
        qc = data.get("compression_config")
        if not isinstance(qc, dict):
            return None, None
    method = _str(qc.get("quant_method"))
    in4, in8 = qc.get("load_in_4bit") is True, qc.get("load_in_8bit") is True
    if method is None and (in4 or in8):
        method = "bitsandbytes"  # configs written before quant_method existed
    if method is None:
        return None, None
    method = method.lower()
    bits = _int(qc.get("bits")) or _int(qc.get("w_bit")) or _int(qc.get("weight_bits"))
    if method == "bitsandbytes":
        if in4:
            method, bits = "bitsandbytes-4bit", 4
        elif in8:
            method, bits = "bitsandbytes-8bit", 8
    elif "fp8" in method:
        bits = bits or 8
    return method, bits


def _guess_task(arch: str | None, model_type: str | None, vision: bool, audio: bool) -> str | None:
    if arch is None:
        return None
    if arch.endswith("ForConditionalGeneration"):
        if audio:
            return "automatic-speech-recognition"
        if vision:
            return "image-to-text"
        return "text2text-generation"
    for suffix, task in _ARCH_TASKS:
        if arch.endswith(suffix):
            return task
    if arch.endswith("Model"):
        if model_type in _ZERO_SHOT_IMAGE_TYPES:
            return "zero-shot-image-classification"
        return "image-feature-extraction" if vision and not audio else "feature-extraction"
    return None


def read_hf_config(path: StrPath) -> HfConfig:
    """Read a ``config.json`` (or the one in directory ``path``) without importing anything it names."""
    file = _file_in(path, "config.json")
    data, warnings = _load_json_object(file)
    if not data:
        return HfConfig(warnings=tuple(warnings))

    nested = [d for k in _NESTED if isinstance(d := data.get(k), dict)]
    scopes: list[Mapping[str, object]] = [data, *nested]

    def first_int(*keys: str) -> int | None:
        for scope in scopes:
            for k in keys:
                v = _int(scope.get(k))
                if v is not None:
                    return v
        return None

    architectures = _str_tuple(data.get("architectures"))
    model_type = _str(data.get("model_type"))
    library: str | None = None
    architecture = architectures[0] if architectures else None
    version = _str(data.get("transformers_version"))
    if architectures or model_type or version:
        library = "transformers"
    elif _str(data.get("_diffusers_version")):
        library, version = "diffusers", _str(data.get("_diffusers_version"))
        architecture = _str(data.get("_class_name"))
    elif _str(data.get("architecture")) and isinstance(data.get("pretrained_cfg"), dict):
        library, architecture = "timm", _str(data.get("architecture"))
    elif "architectures" in data and not isinstance(data.get("architectures"), list):
        warnings.append(f"{file.name}: 'architectures' is not a list")

    dtype_raw = data.get("dtype") or data.get("torch_dtype")
    if dtype_raw is None:
        for scope in nested:
            dtype_raw = scope.get("dtype") or scope.get("torch_dtype")
            if dtype_raw is not None:
                break
    quantization, bits = _quantization(data)
    vision = isinstance(data.get("vision_config"), dict) or (model_type or "") in _VISION_TYPES
    audio = isinstance(data.get("audio_config"), dict) or (model_type or "") in _AUDIO_TYPES
    task = _guess_task(architecture, model_type, vision, audio) if library == "transformers" else None
    return HfConfig(
        library=library,
        architectures=architectures,
        architecture=architecture,
        family=model_type,
        task=task,
        precision=normalize_dtype(dtype_raw),
        quantization=quantization,
        quantization_bits=bits,
        context_length=first_int(
            "max_position_embeddings",
            "n_positions",
            "max_seq_len",
            "seq_length",
            "max_sequence_length",
            "n_ctx",
        ),
        hidden_size=first_int("hidden_size", "n_embd", "d_model", "dim"),
        num_hidden_layers=first_int("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
        num_attention_heads=first_int("num_attention_heads", "n_head", "num_heads", "n_heads"),
        intermediate_size=first_int("intermediate_size", "n_inner", "d_ff", "ffn_dim"),
        vocab_size=first_int("vocab_size", "padded_vocab_size"),
        transformers_version=version,
        name_or_path=_str(data.get("_name_or_path")),
        is_encoder_decoder=data.get("is_encoder_decoder") is True,
        has_vision=vision,
        has_audio=audio,
        has_remote_code=isinstance(data.get("auto_map"), dict) and bool(data.get("auto_map")),
        warnings=tuple(warnings),
    )


# --- adapter_config.json (PEFT) --------------------------------------------------------------------------

_PEFT_TASKS = {
    "CAUSAL_LM": "text-generation",
    "SEQ_2_SEQ_LM": "text2text-generation",
    "SEQ_CLS": "text-classification",
    "TOKEN_CLS": "token-classification",
    "QUESTION_ANS": "question-answering",
    "FEATURE_EXTRACTION": "feature-extraction",
}


@dataclass(frozen=True)
class AdapterConfig:
    """What a PEFT ``adapter_config.json`` says about an adapter and the model it adapts."""

    peft_type: str | None = None
    """``peft_type`` as written: LORA, ADALORA, IA3, LOHA, LOKR, PROMPT_TUNING, ..."""
    base_model: str | None = None
    """``base_model_name_or_path``: the model the adapter must be loaded onto."""
    revision: str | None = None
    """``revision`` of the base model, when recorded."""
    task_type: str | None = None
    """``task_type`` as written (CAUSAL_LM, SEQ_CLS, ...)."""
    task: str | None = None
    """``task_type`` as a pipeline tag (CAUSAL_LM -> text-generation)."""
    r: int | None = None
    """LoRA rank ``r``."""
    lora_alpha: float | None = None
    """``lora_alpha``."""
    lora_dropout: float | None = None
    """``lora_dropout``."""
    target_modules: tuple[str, ...] = ()
    """``target_modules``: module names, or one regex / ``all-linear`` string."""
    modules_to_save: tuple[str, ...] = ()
    """``modules_to_save``: modules trained in full and stored with the adapter."""
    use_dora: bool = False
    """``use_dora``: weight-decomposed LoRA."""
    peft_version: str | None = None
    """``peft_version``, which newer PEFT releases record."""
    warnings: tuple[str, ...] = ()
    """Why something could not be read."""


def read_adapter_config(path: StrPath) -> AdapterConfig:
    """Read a PEFT ``adapter_config.json`` (or the one in directory ``path``)."""
    file = _file_in(path, "adapter_config.json")
    data, warnings = _load_json_object(file)
    if not data:
        return AdapterConfig(warnings=tuple(warnings))
    task_type = _str(data.get("task_type"))
    alpha = _float(data.get("lora_alpha"))
    return AdapterConfig(
        peft_type=_str(data.get("peft_type")),
        base_model=_str(data.get("base_model_name_or_path")),
        revision=_str(data.get("revision")),
        task_type=task_type,
        task=_PEFT_TASKS.get((task_type or "").upper()),
        r=_int(data.get("r")),
        lora_alpha=alpha,
        lora_dropout=_float(data.get("lora_dropout")),
        target_modules=_str_tuple(data.get("target_modules")),
        modules_to_save=_str_tuple(data.get("modules_to_save")),
        use_dora=data.get("use_dora") is True,
        peft_version=_str(data.get("peft_version")),
        warnings=tuple(warnings),
    )


# --- sentence-transformers -------------------------------------------------------------------------------

_POOLING_MODES = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)


@dataclass(frozen=True)
class StModule:
    """One entry of a sentence-transformers ``modules.json``."""

    idx: int | None
    """``idx``: the position in the pipeline."""
    name: str
    """``name``."""
    path: str
    """``path``: the module's folder relative to the model root (``""`` for the root)."""
    type: str
    """``type``: the full class path, e.g. ``sentence_transformers.models.Pooling`` (never imported)."""

    @property
    def kind(self) -> str:
        """The class name alone: Transformer, Pooling, Normalize, Dense, ..."""
        return self.type.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class SentenceTransformersInfo:
    """A sentence-transformers pipeline: ``modules.json`` and the small configs beside it."""

    modules: tuple[StModule, ...] = ()
    """The modules in pipeline order."""
    sentence_transformers_version: str | None = None
    """``__version__.sentence_transformers`` from ``config_sentence_transformers.json``."""
    transformers_version: str | None = None
    """``__version__.transformers`` from ``config_sentence_transformers.json``."""
    pytorch_version: str | None = None
    """``__version__.pytorch`` from ``config_sentence_transformers.json``."""
    similarity_fn_name: str | None = None
    """``similarity_fn_name`` (cosine, dot, ...), written by sentence-transformers 3+."""
    max_seq_length: int | None = None
    """``max_seq_length`` from ``sentence_bert_config.json``."""
    pooling_mode: str | None = None
    """The Pooling module's mode (mean, cls, max, lasttoken, ...; ``+``-joined when several)."""
    embedding_dimension: int | None = None
    """Output vector size: the last Dense ``out_features``, else Pooling ``word_embedding_dimension``."""
    warnings: tuple[str, ...] = ()
    """Why something could not be read."""

    @property
    def module_types(self) -> tuple[str, ...]:
        """The module class names in order, e.g. ``("Transformer", "Pooling", "Normalize")``."""
        return tuple(m.kind for m in self.modules)

    @property
    def normalized(self) -> bool:
        """The pipeline ends its vectors with a Normalize module (unit length)."""
        return "Normalize" in self.module_types


def _safe_subdir(rel: str) -> bool:
    if rel == "":
        return True
    p = PurePosixPath(rel)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in rel and ":" not in rel


def read_st_modules(path: StrPath) -> SentenceTransformersInfo:
    """Read ``modules.json`` (or the one in directory ``path``) and the sentence-transformers files by it."""
    file = _file_in(path, "modules.json")
    root = file.parent
    data, warnings = load_json_file(file)
    modules: list[StModule] = []
    if data is not None and not isinstance(data, list):
        warnings.append(f"{file.name}: expected a JSON list, got {type(data).__name__}")
    for i, entry in enumerate(data if isinstance(data, list) else []):
        type_ = _str(entry.get("type")) if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or type_ is None:
            warnings.append(f"{file.name}: entry {i} has no 'type', skipped")
            continue
        rel = _str(entry.get("path")) or ""
        if not _safe_subdir(rel):
            warnings.append(f"{file.name}: entry {i} path {rel!r} leaves the model folder, ignored")
            rel = ""
        name = entry.get("name")
        label = str(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else str(i)
        modules.append(StModule(_int(entry.get("idx")), label, rel, type_))

    st_versions: dict[str, str] = {}
    similarity = None
    st_cfg_file = root / "config_sentence_transformers.json"
    if st_cfg_file.exists():
        st_cfg, w = _load_json_object(st_cfg_file)
        warnings += w
        ver = st_cfg.get("__version__")
        if isinstance(ver, dict):
            st_versions = {k: v for k, v in ver.items() if isinstance(v, str)}
        similarity = _str(st_cfg.get("similarity_fn_name"))

    max_seq = None
    sbert_file = root / "sentence_bert_config.json"
    if sbert_file.exists():
        sbert, w = _load_json_object(sbert_file)
        warnings += w
        max_seq = _int(sbert.get("max_seq_length"))

    pooling_mode = None
    dim = None
    for m in modules:
        cfg_file = root / m.path / "config.json"
        if m.kind not in ("Pooling", "Dense") or not m.path or not cfg_file.exists():
            continue
        cfg, w = _load_json_object(cfg_file)
        warnings += [f"{m.path}/{s}" for s in w]
        if m.kind == "Pooling":
            modes = [word for key, word in _POOLING_MODES if cfg.get(key) is True]
            pooling_mode = _str(cfg.get("pooling_mode")) or ("+".join(modes) or None)
            dim = _int(cfg.get("word_embedding_dimension")) or dim
        else:
            dim = _int(cfg.get("out_features")) or dim

    return SentenceTransformersInfo(
        modules=tuple(modules),
        sentence_transformers_version=st_versions.get("sentence_transformers"),
        transformers_version=st_versions.get("transformers"),
        pytorch_version=st_versions.get("pytorch"),
        similarity_fn_name=similarity,
        max_seq_length=max_seq,
        pooling_mode=pooling_mode,
        embedding_dimension=dim,
        warnings=tuple(warnings),
    )


# --- diffusers model_index.json --------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffusersComponent:
    """One component of a diffusers pipeline: its folder name and the class that loads it."""

    name: str
    """The component (and folder) name: unet, vae, text_encoder, tokenizer, scheduler, ..."""
    library: str | None
    """The library the class comes from (diffusers, transformers); None for an empty slot."""
    class_name: str | None
    """The class name (UNet2DConditionModel, CLIPTextModel, ...); None for an empty slot."""


@dataclass(frozen=True)
class DiffusersInfo:
    """What a diffusers ``model_index.json`` says about a pipeline."""

    pipeline_class: str | None = None
    """``_class_name``: the pipeline class, e.g. StableDiffusionPipeline (never imported)."""
    diffusers_version: str | None = None
    """``_diffusers_version``."""
    name_or_path: str | None = None
    """``_name_or_path``, when recorded."""
    components: tuple[DiffusersComponent, ...] = ()
    """The ``{name: [library, class]}`` entries, in file order."""
    task: str | None = None
    """A pipeline tag guessed from the pipeline class name (text-to-image, image-to-image, ...)."""
    warnings: tuple[str, ...] = ()
    """Why something could not be read."""


def _diffusers_task(cls: str | None) -> str | None:
    if not cls:
        return None
    if any(s in cls for s in ("ImageToVideo", "Img2Vid", "StableVideoDiffusion", "I2V")):
        return "image-to-video"
    if any(s in cls for s in ("Img2Img", "ImageToImage", "Inpaint", "Upscale", "Pix2Pix", "ImageVariation")):
        return "image-to-image"
    if "Video" in cls:
        return "text-to-video"
    if any(s in cls for s in ("Audio", "Music")):
        return "text-to-audio"
    return "text-to-image" if cls.endswith("Pipeline") else None


def read_diffusers_index(path: StrPath) -> DiffusersInfo:
    """Read a diffusers ``model_index.json`` (or the one in directory ``path``)."""
    file = _file_in(path, "model_index.json")
    data, warnings = _load_json_object(file)
    if not data:
        return DiffusersInfo(warnings=tuple(warnings))
    components = []
    for name, value in data.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        lib, cls = (v if isinstance(v, str) else None for v in value)
        components.append(DiffusersComponent(name, lib, cls))
    pipeline = _str(data.get("_class_name"))
    return DiffusersInfo(
        pipeline_class=pipeline,
        diffusers_version=_str(data.get("_diffusers_version")),
        name_or_path=_str(data.get("_name_or_path")),
        components=tuple(components),
        task=_diffusers_task(pipeline),
        warnings=tuple(warnings),
    )


# --- file roles ------------------------------------------------------------------------------------------

_WEIGHT_CONFIG = frozenset(
    {
        "config.json",
        "generation_config.json",
        "adapter_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "image_processor_config.json",
        "video_preprocessor_config.json",
        "feature_extractor_config.json",
        "scheduler_config.json",
        "model_index.json",
        "quantize_config.json",
        "quant_config.json",
        "params.json",
    }
)
_TOKENIZER = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "tokenizer.model",
        "added_tokens.json",
        "sentencepiece.bpe.model",
        "sentencepiece.model",
        "source.spm",
        "target.spm",
        "bpe.codes",
        "tekken.json",
        "chat_template.json",
        "chat_template.jinja",
    }
)
_ST_CONFIG = frozenset({"modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"})
# sentence-transformers module folders: 1_Pooling, 2_Dense, 3_Normalize, ...
_ST_MODULE_CONFIG = re.compile(r"^\d+_[A-Za-z][A-Za-z0-9]*/config\.json$")
_SHARD_INDEX = re.compile(r"\.(safetensors|bin|pt|pth|msgpack|h5|ckpt)\.index\.json$")


def classify_hf_file(relpath: str) -> str | None:
    """The role of a well-known Hugging Face file by its path in the repo.

    ``weight-config`` (config.json, generation_config.json, adapter_config.json, ...), ``tokenizer``,
    ``st-config`` (sentence-transformers pipeline files, ``1_Pooling/config.json``), ``index``
    (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``); None for anything else,
    weights included (those are recognised by their headers, not their names).
    """
    rel = relpath.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    name = rel.rsplit("/", 1)[-1]
    if _ST_MODULE_CONFIG.match(rel) or name in _ST_CONFIG:
        return "st-config"
    if _SHARD_INDEX.search(name):
        return "index"
    if name in _TOKENIZER or name.endswith(".tiktoken"):
        return "tokenizer"
    if name in _WEIGHT_CONFIG:
        return "weight-config"
    return None
