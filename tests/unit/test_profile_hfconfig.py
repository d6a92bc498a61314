"""Hugging Face JSON configs read as data: config.json, adapter_config, modules.json, model_index.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kitbridge.profile.hfconfig import (
    MAX_SMALL_FILE,
    classify_hf_file,
    read_adapter_config,
    read_diffusers_index,
    read_hf_config,
    read_st_modules,
    task_io_types,
)

# The real sentence-transformers/all-MiniLM-L6-v2 config.json.
MINILM_CONFIG = {
    "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 384,
    "initializer_range": 0.02,
    "intermediate_size": 1536,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 6,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.8.2",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}

LLAMA_AWQ_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": 128009,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.40.1",
    "use_cache": True,
    "vocab_size": 128256,
    "quantization_config": {
        "bits": 4,
        "group_size": 128,
        "modules_to_not_convert": None,
        "quant_method": "awq",
        "version": "gemm",
        "zero_point": True,
    },
}


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


# --- config.json ---------------------------------------------------------------------------------------


def test_bert_config_gives_family_architecture_sizes_and_feature_extraction(tmp_path: Path) -> None:
    cfg = read_hf_config(write_json(tmp_path / "config.json", MINILM_CONFIG))
    assert cfg.library == "transformers"
    assert cfg.family == "bert"
    assert cfg.architectures == ("BertModel",)
    assert cfg.architecture == "BertModel"
    assert cfg.task == "feature-extraction"
    assert (cfg.context_length, cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (
        512,
        384,
        6,
        30522,
    )
    assert (cfg.num_attention_heads, cfg.intermediate_size) == (12, 1536)
    assert cfg.transformers_version == "4.8.2"
    assert cfg.name_or_path == "nreimers/MiniLM-L6-H384-uncased"
    assert cfg.precision is None  # no dtype recorded
    assert cfg.quantization is None
    assert cfg.warnings == ()


def test_config_in_a_directory_is_found_by_name(tmp_path: Path) -> None:
    write_json(tmp_path / "config.json", MINILM_CONFIG)
    assert read_hf_config(tmp_path).family == "bert"


def test_llama_awq_config_gives_quantization_bits_and_dtype(tmp_path: Path) -> None:
    cfg = read_hf_config(write_json(tmp_path / "config.json", LLAMA_AWQ_CONFIG))
    assert (cfg.family, cfg.architecture, cfg.task) == ("llama", "LlamaForCausalLM", "text-generation")
    assert cfg.quantization == "awq"
    assert cfg.quantization_bits == 4
    assert cfg.precision == "float16"
    assert cfg.context_length == 8192


@pytest.mark.parametrize(
    ("qc", "method", "bits"),
    [
        (
            {
                "quant_method": "bitsandbytes",
                "load_in_4bit": True,
                "load_in_8bit": False,
                "bnb_4bit_quant_type": "nf4",
            },
            "bitsandbytes-4bit",
            4,
        ),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": False, "load_in_8bit": True},
            "bitsandbytes-8bit",
            8,
        ),
        ({"load_in_8bit": True}, "bitsandbytes-8bit", 8),  # written before quant_method existed
        ({"quant_method": "GPTQ", "bits": 8, "group_size": 128, "desc_act": False}, "gptq", 8),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "fp8", 8),
        ({"quant_method": "compressed-tensors", "format": "pack-quantized"}, "compressed-tensors", None),
        ({"bits": 4}, None, None),  # nothing says which method
    ],
)
def test_quantization_config_methods(tmp_path: Path, qc: dict[str, object], method: str, bits: int) -> None:
    data = dict(LLAMA_AWQ_CONFIG, quantization_config=qc)
    cfg = read_hf_config(write_json(tmp_path / "config.json", data))
    assert (cfg.quantization, cfg.quantization_bits) == (method, bits)


@pytest.mark.parametrize(
    ("fields", "precision"),
    [
        ({"torch_dtype": "bfloat16"}, "bfloat16"),
        ({"dtype": "bfloat16", "torch_dtype": "float32"}, "bfloat16"),  # transformers 5 writes `dtype`
        ({"torch_dtype": "torch.float16"}, "float16"),
        ({"torch_dtype": "float32"}, "float32"),
        ({"torch_dtype": "auto"}, None),
        ({"text_config": {"torch_dtype": "bfloat16"}}, "bfloat16"),
    ],
)
def test_dtype_becomes_a_precision_word(tmp_path: Path, fields: dict[str, object], precision: str) -> None:
    data = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", **fields}
    assert read_hf_config(write_json(tmp_path / "config.json", data)).precision == precision


def test_gpt2_uses_n_positions_and_n_embd(tmp_path: Path) -> None:
    data = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    }
    cfg = read_hf_config(write_json(tmp_path / "config.json", data))
    assert cfg.task == "text-generation"
    assert (cfg.context_length, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (
        1024,
        768,
        12,
        12,
    )


@pytest.mark.parametrize(
    ("arch", "model_type", "extra", "task"),
    [
        ("BertForSequenceClassification", "bert", {}, "text-classification"),
        ("DistilBertForTokenClassification", "distilbert", {}, "token-classification"),
        ("RobertaForQuestionAnswering", "roberta", {}, "question-answering"),
        ("BertForMaskedLM", "bert", {}, "fill-mask"),
        ("T5ForConditionalGeneration", "t5", {"is_encoder_decoder": True}, "text2text-generation"),
        ("T5WithLMHeadModel", "t5", {}, "text2text-generation"),
        ("BartForConditionalGeneration", "bart", {}, "text2text-generation"),
        (
            "LlavaForConditionalGeneration",
            "llava",
            {"vision_config": {"model_type": "clip_vision_model"}},
            "image-to-text",
        ),
        (
            "Gemma3ForConditionalGeneration",
            "gemma3",
            {"vision_config": {"hidden_size": 1152}},
            "image-to-text",
        ),
        ("WhisperForConditionalGeneration", "whisper", {}, "automatic-speech-recognition"),
        ("Wav2Vec2ForCTC", "wav2vec2", {}, "automatic-speech-recognition"),
        ("ViTForImageClassification", "vit", {}, "image-classification"),
        ("DetrForObjectDetection", "detr", {}, "object-detection"),
        ("CLIPModel", "clip", {}, "zero-shot-image-classification"),
        ("Dinov2Model", "dinov2", {}, "image-feature-extraction"),
        ("Qwen2ForCausalLM", "qwen2", {}, "text-generation"),
        ("SomethingUnusual", "custom", {}, None),
    ],
)
def test_task_is_guessed_from_the_architecture_name(
    tmp_path: Path, arch: str, model_type: str, extra: dict[str, object], task: str | None
) -> None:
    data = {"architectures": [arch], "model_type": model_type, **extra}
    assert read_hf_config(write_json(tmp_path / "config.json", data)).task == task


def test_multimodal_config_takes_sizes_from_text_config(tmp_path: Path) -> None:
    data = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {
            "hidden_size": 2560,
            "num_hidden_layers": 34,
            "max_position_embeddings": 131072,
            "vocab_size": 262208,
            "torch_dtype": "bfloat16",
        },
        "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27},
        "transformers_version": "4.50.0.dev0",
    }
    cfg = read_hf_config(write_json(tmp_path / "config.json", data))
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.context_length, cfg.vocab_size) == (
        2560,
        34,
        131072,
        262208,
    )
    assert cfg.precision == "bfloat16"
    assert cfg.has_vision is True
    assert cfg.has_audio is False


def test_remote_code_is_reported_and_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "IMPORTED"
    (tmp_path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (tmp_path / "configuration_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    data = {
        "architectures": ["EvilForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
        },
        "model_type": "evil",
    }
    cfg = read_hf_config(write_json(tmp_path / "config.json", data))
    assert cfg.has_remote_code is True
    assert cfg.task == "text-generation"
    assert not marker.exists()


def test_diffusers_component_config_is_recognised(tmp_path: Path) -> None:
    data = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.27.0", "in_channels": 4}
    cfg = read_hf_config(write_json(tmp_path / "unet" / "config.json", data))
    assert (cfg.library, cfg.architecture, cfg.transformers_version, cfg.task) == (
        "diffusers",
        "UNet2DConditionModel",
        "0.27.0",
        None,
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"architectures": ["BertModel"],', "not valid JSON (line 1"),
        ("[1, 2, 3]", "expected a JSON object, got list"),
        ("", "not valid JSON"),
    ],
)
def test_malformed_config_is_a_warning_not_a_crash(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "config.json").write_text(content)
    cfg = read_hf_config(tmp_path / "config.json")
    assert cfg.family is None
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith("config.json: ")
    assert fragment in cfg.warnings[0]


def test_wrongly_typed_fields_are_ignored(tmp_path: Path) -> None:
    data = {"architectures": "BertModel", "model_type": 7, "hidden_size": "384", "num_hidden_layers": True}
    cfg = read_hf_config(write_json(tmp_path / "config.json", data))
    assert cfg.architectures == ("BertModel",)  # a lone string is taken as a one-element list
    assert (cfg.family, cfg.hidden_size, cfg.num_hidden_layers) == (None, None, None)


def test_missing_config_is_a_warning(tmp_path: Path) -> None:
    cfg = read_hf_config(tmp_path / "nope" / "config.json")
    assert cfg.warnings and "cannot read" in cfg.warnings[0]


def test_oversized_config_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "config.json"
    big.write_text('{"model_type": "bert", "pad": "' + "x" * MAX_SMALL_FILE + '"}')
    cfg = read_hf_config(big)
    assert cfg.family is None
    assert "larger than" in cfg.warnings[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.json")
    cfg = read_hf_config(tmp_path / "config.json")
    assert "not a regular file" in cfg.warnings[0]


# --- adapter_config.json ---------------------------------------------------------------------------------


def test_lora_adapter_config(tmp_path: Path) -> None:
    data = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": 8,
        "rank_pattern": {},
        "revision": None,
        "target_modules": ["q_proj", "v_proj", "k_proj", "o_proj"],
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    cfg = read_adapter_config(write_json(tmp_path / "adapter_config.json", data))
    assert cfg.peft_type == "LORA"
    assert cfg.base_model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (8, 16.0, 0.05)
    assert cfg.target_modules == ("q_proj", "v_proj", "k_proj", "o_proj")
    assert (cfg.task_type, cfg.task) == ("CAUSAL_LM", "text-generation")
    assert cfg.modules_to_save == ()
    assert cfg.use_dora is False
    assert cfg.warnings == ()


def test_adapter_target_modules_may_be_one_string(tmp_path: Path) -> None:
    data = {
        "peft_type": "LORA",
        "r": 16,
        "target_modules": "all-linear",
        "task_type": "SEQ_CLS",
        "use_dora": True,
    }
    cfg = read_adapter_config(write_json(tmp_path / "adapter_config.json", data))
    assert cfg.target_modules == ("all-linear",)
    assert cfg.task == "text-classification"
    assert cfg.use_dora is True


def test_broken_adapter_config_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{'peft_type': 'LORA'}")
    cfg = read_adapter_config(tmp_path)
    assert cfg.peft_type is None
    assert "not valid JSON" in cfg.warnings[0]


# --- sentence-transformers -------------------------------------------------------------------------------

MINILM_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def minilm_st_tree(root: Path) -> Path:
    write_json(root / "modules.json", MINILM_MODULES)
    write_json(
        root / "config_sentence_transformers.json",
        {"__version__": {"sentence_transformers": "2.0.0", "transformers": "4.6.1", "pytorch": "1.8.1"}},
    )
    write_json(root / "sentence_bert_config.json", {"max_seq_length": 256, "do_lower_case": False})
    write_json(
        root / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": 384,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    return root


def test_minilm_modules_in_order_with_versions_pooling_and_dimension(tmp_path: Path) -> None:
    info = read_st_modules(minilm_st_tree(tmp_path) / "modules.json")
    assert info.module_types == ("Transformer", "Pooling", "Normalize")
    assert [m.path for m in info.modules] == ["", "1_Pooling", "2_Normalize"]
    assert info.modules[1].type == "sentence_transformers.models.Pooling"
    assert (info.sentence_transformers_version, info.transformers_version, info.pytorch_version) == (
        "2.0.0",
        "4.6.1",
        "1.8.1",
    )
    assert info.max_seq_length == 256
    assert info.pooling_mode == "mean"
    assert info.embedding_dimension == 384
    assert info.normalized is True
    assert info.warnings == ()  # 2_Normalize has no folder on disk, and needs none


def test_dense_module_sets_the_embedding_dimension(tmp_path: Path) -> None:
    modules = [
        *MINILM_MODULES[:2],
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    write_json(tmp_path / "modules.json", modules)
    write_json(
        tmp_path / "1_Pooling" / "config.json",
        {"word_embedding_dimension": 1024, "pooling_mode_cls_token": True},
    )
    write_json(tmp_path / "2_Dense" / "config.json", {"in_features": 1024, "out_features": 256, "bias": True})
    info = read_st_modules(tmp_path)
    assert info.module_types == ("Transformer", "Pooling", "Dense")
    assert info.pooling_mode == "cls"
    assert info.embedding_dimension == 256
    assert info.normalized is False


def test_module_path_escaping_the_model_folder_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "config.json"
    write_json(secret, {"word_embedding_dimension": 999, "pooling_mode_max_tokens": True})
    model = tmp_path / "model"
    write_json(model / "modules.json", [{"idx": 0, "name": "0", "path": "../outside", "type": "x.Pooling"}])
    info = read_st_modules(model)
    assert info.embedding_dimension is None
    assert info.modules[0].path == ""
    assert "leaves the model folder" in info.warnings[0]


def test_broken_pooling_config_keeps_the_modules(tmp_path: Path) -> None:
    minilm_st_tree(tmp_path)
    (tmp_path / "1_Pooling" / "config.json").write_text("{nope")
    info = read_st_modules(tmp_path)
    assert info.module_types == ("Transformer", "Pooling", "Normalize")
    assert info.embedding_dimension is None
    assert info.warnings[0].startswith("1_Pooling/config.json: not valid JSON")


def test_modules_json_that_is_not_a_list_is_a_warning(tmp_path: Path) -> None:
    write_json(tmp_path / "modules.json", {"0": "Transformer"})
    info = read_st_modules(tmp_path)
    assert info.modules == ()
    assert "expected a JSON list" in info.warnings[0]


# --- diffusers ---------------------------------------------------------------------------------------------

SD15_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "requires_safety_checker": True,
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "image_encoder": [None, None],
}


def test_diffusers_index_lists_components_in_order(tmp_path: Path) -> None:
    info = read_diffusers_index(write_json(tmp_path / "model_index.json", SD15_INDEX))
    assert info.pipeline_class == "StableDiffusionPipeline"
    assert info.diffusers_version == "0.6.0"
    assert info.task == "text-to-image"
    names = [c.name for c in info.components]
    assert names == [
        "feature_extractor",
        "safety_checker",
        "scheduler",
        "text_encoder",
        "tokenizer",
        "unet",
        "vae",
        "image_encoder",
    ]
    unet = info.components[names.index("unet")]
    assert (unet.library, unet.class_name) == ("diffusers", "UNet2DConditionModel")
    empty = info.components[-1]
    assert (empty.library, empty.class_name) == (None, None)


@pytest.mark.parametrize(
    ("cls", "task"),
    [
        ("StableDiffusionImg2ImgPipeline", "image-to-image"),
        ("StableDiffusionXLInpaintPipeline", "image-to-image"),
        ("StableVideoDiffusionPipeline", "image-to-video"),
        ("TextToVideoSDPipeline", "text-to-video"),
        ("AudioLDMPipeline", "text-to-audio"),
        ("FluxPipeline", "text-to-image"),
    ],
)
def test_diffusers_task_from_pipeline_class(tmp_path: Path, cls: str, task: str) -> None:
    info = read_diffusers_index(write_json(tmp_path / "model_index.json", {"_class_name": cls}))
    assert info.task == task


# --- file roles and task types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "role"),
    [
        ("config.json", "weight-config"),
        ("generation_config.json", "weight-config"),
        ("adapter_config.json", "weight-config"),
        ("preprocessor_config.json", "weight-config"),
        ("unet/config.json", "weight-config"),
        ("scheduler/scheduler_config.json", "weight-config"),
        ("./config.json", "weight-config"),
        ("tokenizer.json", "tokenizer"),
        ("tokenizer_config.json", "tokenizer"),
        ("special_tokens_map.json", "tokenizer"),
        ("vocab.txt", "tokenizer"),
        ("vocab.json", "tokenizer"),
        ("merges.txt", "tokenizer"),
        ("spiece.model", "tokenizer"),
        ("tokenizer.model", "tokenizer"),
        ("added_tokens.json", "tokenizer"),
        ("sentencepiece.bpe.model", "tokenizer"),
        ("tokenizer/vocab.json", "tokenizer"),
        ("modules.json", "st-config"),
        ("sentence_bert_config.json", "st-config"),
        ("config_sentence_transformers.json", "st-config"),
        ("1_Pooling/config.json", "st-config"),
        ("2_Dense/config.json", "st-config"),
        ("model.safetensors.index.json", "index"),
        ("pytorch_model.bin.index.json", "index"),
        ("unet/diffusion_pytorch_model.safetensors.index.json", "index"),
        ("model.safetensors", None),
        ("README.md", None),
        ("data_config.json", None),
        ("2_Dense/model.safetensors", None),
        ("my.index.json", None),
    ],
)
def test_classify_hf_file(rel: str, role: str | None) -> None:
    assert classify_hf_file(rel) == role


def test_task_io_types_map_pipeline_tags_to_modelpack_types() -> None:
    assert task_io_types("text-generation") == (("text",), ("text",))
    assert task_io_types("sentence-similarity") == (("text",), ("embedding",))
    assert task_io_types("automatic-speech-recognition") == (("audio",), ("text",))
    assert task_io_types("image-text-to-text") == (("image", "text"), ("text",))
    assert task_io_types("no-such-task") == ((), ())
    assert task_io_types(None) == ((), ())
