"""Hugging Face importer rules that need no Hub: which files an import takes, the hf:// URI, the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitbridge.converters.importers.hf_select import gguf_quant, select_files
from kitbridge.converters.importers.huggingface import HFSource, HubSettings
from kitbridge.errors import UsageError

TRANSFORMERS_REPO = [
    ".gitattributes",
    "README.md",
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
    "rust_model.ot",
    "training_args.bin",
    "onnx/model.onnx",
]


@pytest.mark.parametrize(
    ("path", "quant"),
    [
        ("model.Q4_K_M.gguf", "Q4_K_M"),
        ("Llama-3-8B-Instruct-IQ3_XXS.gguf", "IQ3_XXS"),
        ("Q8_0/model-00001-of-00002.gguf", "Q8_0"),
        ("tinyllama-1.1b-chat-v1.0.Q5_K_S.gguf", "Q5_K_S"),
        ("model-f16.gguf", "F16"),
        ("x.bf16.gguf", "BF16"),
        ("gemma-3-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("model.gguf", None),
        ("model.Q4_K_M.bin", None),
    ],
)
def test_gguf_quantization_is_read_from_the_file_name_or_its_folder(path: str, quant: str | None) -> None:
    assert gguf_quant(path) == quant


def test_safetensors_win_over_other_copies_of_the_same_weights() -> None:
    sel = select_files(TRANSFORMERS_REPO)
    assert sel.files == [
        "README.md",
        "config.json",
        "model.safetensors",
        "training_args.bin",
        "onnx/model.onnx",
    ]
    for dup in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot"):
        assert sel.left_out[dup] == "duplicate of model.safetensors"
    assert sel.left_out[".gitattributes"] == "git metadata"


def test_sharded_pickles_and_their_index_are_duplicates_of_sharded_safetensors() -> None:
    repo = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
        "pytorch_model.bin.index.json",
    ]
    sel = select_files(repo)
    assert sel.files == repo[:3]


def test_a_directory_without_safetensors_keeps_its_pickle() -> None:
    sel = select_files(["model.safetensors", "adapter/pytorch_model.bin", "adapter/adapter_model.bin"])
    assert sel.files == ["model.safetensors", "adapter/pytorch_model.bin", "adapter/adapter_model.bin"]


def test_an_include_that_names_the_duplicate_keeps_it_but_a_catch_all_does_not() -> None:
    assert select_files(["model.safetensors", "pytorch_model.bin"], include=["*.bin"]).files == [
        "pytorch_model.bin"
    ]
    both = select_files(["model.safetensors", "pytorch_model.bin"], include=["*.bin", "*.safetensors"])
    assert both.files == ["model.safetensors", "pytorch_model.bin"]
    assert select_files(["model.safetensors", "pytorch_model.bin"], include=["*"]).files == [
        "model.safetensors"
    ]
    assert select_files([".gitattributes", "a.txt"], include=[".gitattributes"]).files == [".gitattributes"]


def test_include_and_exclude_globs_give_their_reason() -> None:
    sel = select_files(["a.json", "b.txt", "sub/c.json"], include=["*.json"], exclude=["sub/"])
    assert sel.files == ["a.json"]
    assert sel.left_out == {"b.txt": "not included", "sub/c.json": "excluded"}


GGUF_REPO = ["README.md", "m.Q4_K_M.gguf", "m.Q8_0.gguf", "m.F16.gguf", "mmproj-m-f16.gguf"]


def test_several_quantizations_need_quant_and_the_error_lists_them() -> None:
    with pytest.raises(UsageError) as e:
        select_files(GGUF_REPO, repo="org/m-GGUF")
    assert "org/m-GGUF has 3 GGUF quantizations: F16, Q4_K_M, Q8_0" in str(e.value)
    assert "--quant" in str(e.value)


def test_quant_keeps_one_quantization_and_the_projector() -> None:
    sel = select_files(GGUF_REPO, quant="q8_0")
    assert sel.files == ["README.md", "m.Q8_0.gguf", "mmproj-m-f16.gguf"]
    assert sel.quant == "Q8_0"
    assert sel.left_out["m.Q4_K_M.gguf"] == "quantization Q4_K_M"


def test_an_unknown_quant_lists_what_there_is() -> None:
    with pytest.raises(UsageError, match=r"no GGUF quantization 'Q2_K' \(available: F16, Q4_K_M, Q8_0\)"):
        select_files(GGUF_REPO, quant="Q2_K")


def test_globs_that_leave_one_quantization_need_no_quant() -> None:
    sel = select_files(GGUF_REPO, include=["*Q4_K_M*"])
    assert sel.files == ["m.Q4_K_M.gguf"]
    assert sel.quant == "Q4_K_M"


@pytest.mark.parametrize(
    ("source", "repo_id", "repo_type", "revision"),
    [
        ("hf://org/name", "org/name", "model", None),
        ("hf://org/name@v1.0", "org/name", "model", "v1.0"),
        ("hf://models/org/name@refs/pr/1", "org/name", "model", "refs/pr/1"),
        ("hf://datasets/org/data", "org/data", "dataset", None),
        ("HF://org/name/", "org/name", "model", None),
    ],
)
def test_hf_sources_parse(source: str, repo_id: str, repo_type: str, revision: str | None) -> None:
    s = HFSource.parse(source)
    assert (s.repo_id, s.repo_type, s.revision) == (repo_id, repo_type, revision)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hf://name", "does not name a repo as ORG/NAME"),
        ("hf://a/b/c", "does not name a repo as ORG/NAME"),
        ("hf://org/name@", "empty revision"),
        ("hf://spaces/org/app", "is a Space"),
        ("hf://org/../x", "does not name a repo"),
    ],
)
def test_bad_hf_sources_are_usage_errors(source: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        HFSource.parse(source)


def test_revision_option_must_agree_with_the_uri() -> None:
    assert HFSource.parse("hf://org/name", "dev").revision == "dev"
    assert HFSource.parse("hf://org/name@dev", "dev").revision == "dev"
    with pytest.raises(UsageError, match="contradicts"):
        HFSource.parse("hf://org/name@main", "dev")


def test_settings_follow_huggingface_hub_env_vars(tmp_path: Path) -> None:
    home = tmp_path / "hf"
    s = HubSettings.from_env({"HF_HOME": str(home), "HF_ENDPOINT": "http://mirror:1/"})
    assert (s.endpoint, s.cache_dir, s.offline, s.token) == ("http://mirror:1", home / "hub", False, None)
    assert s.token_source == f"no token ($HF_TOKEN is not set and there is no {home / 'token'})"
    assert "authorization" not in s.headers()

    home.mkdir()
    (home / "token").write_text("hf_file\n")
    s = HubSettings.from_env({"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert (s.token, s.offline) == ("hf_file", True)
    assert s.token_source == f"the token file {home / 'token'} (hf auth login)"
    assert s.headers()["authorization"] == "Bearer hf_file"

    s = HubSettings.from_env(
        {"HF_HOME": str(home), "HF_TOKEN": "hf_env", "HF_HUB_CACHE": str(tmp_path / "c")}
    )
    assert (s.token, s.token_source, s.cache_dir) == ("hf_env", "$HF_TOKEN", tmp_path / "c")
    assert HubSettings.from_env({}).endpoint == "https://huggingface.co"
