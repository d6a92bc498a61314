"""Kitfile generation: kit's layer assignment by name and size, kitbridge's additions, facts, writing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitbridge.converters.importers.base import Provenance, SourceFile, SourceTree
from kitbridge.converters.importers.local import LocalImporter
from kitbridge.errors import KitfileError
from kitbridge.kitfile import Kitfile, dump_kitfile, load_kitfile, read_kitfile, validate_kitfile
from kitbridge.kitfile.generate import GenerationFacts, generate_kitfile, write_kitfile


def layout(kf: Kitfile) -> dict[str, Any]:
    """Which path landed where: the part of a Kitfile the layer assignment decides."""
    out: dict[str, Any] = {}
    if kf.model is not None:
        out["model"] = kf.model.path
        out["parts"] = [(p.path, p.type) for p in kf.model.parts]
    for key, entries in (
        ("code", kf.code),
        ("datasets", kf.datasets),
        ("docs", kf.docs),
        ("prompts", kf.prompts),
    ):
        if entries:
            out[key] = [e.path for e in entries]
    if kf.mcp_servers:
        out["mcpServers"] = [(s.name, s.path) for s in kf.mcp_servers]
    return out


def sized(files: dict[str, int]) -> SourceTree:
    return SourceTree(
        Path("/nonexistent"),
        [SourceFile(p, Path("/nonexistent") / p, size) for p, size in files.items()],
        Provenance("file:///nonexistent"),
    )


def gen(files: list[str] | SourceTree, **facts: Any) -> Kitfile:
    return generate_kitfile(files, name="t", facts=GenerationFacts(**facts) if facts else None)


# --- kit's rules ----------------------------------------------------------------------------------------


def test_an_empty_tree_gives_only_the_package() -> None:
    kf = gen([], description="nothing here")
    assert kf.manifest_version == "1.0.0"
    assert kf.package.name == "t"
    assert kf.package.description == "nothing here"
    assert layout(kf) == {}
    assert dump_kitfile(kf) == "manifestVersion: 1.0.0\npackage:\n  name: t\n  description: nothing here\n"


def test_root_files_are_assigned_by_extension_and_unknown_ones_make_one_catch_all_code_entry() -> None:
    kf = gen(
        ["w.onnx", "w2.npz", "train.parquet", "eval.zip", "guide.adoc", "paper.pdf", "run.sh", "Makefile"]
    )
    assert layout(kf) == {
        "model": "w.onnx",
        "parts": [("w2.npz", "")],
        "code": ["."],
        "datasets": ["eval.zip", "train.parquet"],
        "docs": ["guide.adoc", "paper.pdf"],
    }


def test_a_single_unknown_root_file_also_gets_the_catch_all() -> None:
    assert layout(gen(["net.ckpt", "notes.rst"])) == {"model": "net.ckpt", "parts": [], "code": ["."]}


def test_readme_and_license_prefixes_are_docs_with_descriptions_whatever_the_extension() -> None:
    kf = gen(["readme.txt", "LICENSE-MODEL", "License.json", "guide.md"])
    assert [(d.path, d.description) for d in kf.docs] == [
        ("LICENSE-MODEL", "License file"),
        ("License.json", "License file"),
        ("guide.md", ""),
        ("readme.txt", "Readme file"),
    ]
    assert kf.code == []  # LICENSE-MODEL has no known extension but is not "unknown"


def test_metadata_files_become_model_parts_when_there_is_a_model() -> None:
    kf = gen(["zz.yaml", "net.tflite", "labels.txt", "meta.xml", "rows.csv"])
    assert layout(kf) == {
        "model": "net.tflite",
        "parts": [("labels.txt", ""), ("meta.xml", ""), ("zz.yaml", "")],
        "datasets": ["rows.csv"],
    }


def test_metadata_files_become_datasets_when_there_is_no_model() -> None:
    kf = gen(["stats.json", "rows.csv", "schema.yaml"])
    assert layout(kf) == {"datasets": ["rows.csv", "schema.yaml", "stats.json"]}


def test_equal_sized_model_files_make_the_first_in_path_order_the_model() -> None:
    kf = gen(sized({"part-c.pt": 100, "part-a.pt": 100, "part-b.pt": 90}))
    assert kf.model is not None
    assert kf.model.path == "part-a.pt"
    assert kf.model.name == ""  # kit names a model only when one file stands out
    assert [p.path for p in kf.model.parts] == ["part-b.pt", "part-c.pt"]


def test_a_model_file_over_one_and_a_half_times_the_mean_is_the_model_and_named_after_it() -> None:
    kf = gen(sized({"adapter-1.gguf": 10, "adapter-2.gguf": 10, "zz-base.gguf": 41}))
    assert kf.model is not None
    assert (kf.model.path, kf.model.name) == ("zz-base.gguf", "zz-base")
    assert [p.path for p in kf.model.parts] == ["adapter-1.gguf", "adapter-2.gguf"]
    # mean 20 -> threshold 30: 30 itself does not stand out
    kf = gen(sized({"adapter-1.gguf": 10, "adapter-2.gguf": 20, "zz-base.gguf": 30}))
    assert kf.model is not None
    assert kf.model.path == "adapter-1.gguf"


def test_a_single_model_file_is_named_after_its_path_without_extension() -> None:
    kf = gen(["classifier.joblib", "Kitfile"])
    assert kf.model is not None
    assert (kf.model.name, kf.model.path) == ("classifier", "classifier.joblib")


@pytest.mark.parametrize("name", ["Kitfile", "kitfile", ".kitfile", ".kitignore"])
def test_kitfiles_and_kitignore_at_the_root_are_never_entries(name: str) -> None:
    assert layout(gen([name, "m.h5"])) == {"model": "m.h5", "parts": []}


def test_pytorch_bin_files_are_weights_only_by_name() -> None:
    kf = gen(["pytorch_model.bin", "random.bin"])
    assert layout(kf) == {"model": "pytorch_model.bin", "parts": [], "code": ["."]}


def test_top_level_directories_are_one_entry_each_by_their_contents() -> None:
    kf = gen(
        [
            "build/out.o",
            "docs/anything.bin",
            "lib/x.csv",
            "pkg/y",
            "src/main.go",
            "checkpoints/step-1.pt",
            "checkpoints/step-2.pt",
            "checkpoints/trainer_state.yaml",
            "corpus/a.parquet",
            "corpus/b.parquet",
            "corpus/index.json",
            "manuals/a.md",
            "manuals/b.html",
            "assorted/a.md",
            "assorted/b.csv",
            "nested/inner/x.csv",
            "meta-only/info.json",
        ]
    )
    assert layout(kf) == {
        "model": "checkpoints/step-1.pt",
        "parts": [("checkpoints/step-2.pt", ""), ("checkpoints/trainer_state.yaml", "")],
        "code": ["assorted/", "build/", "lib/", "meta-only/", "nested/", "pkg/", "src/"],
        "datasets": ["corpus/"],
        "docs": ["docs/", "manuals/"],
    }


def test_model_files_in_a_mixed_directory_are_still_the_model() -> None:
    kf = gen(["bundle/net.onnx", "bundle/notes.md"])
    assert layout(kf) == {"model": "bundle/net.onnx", "parts": [], "code": ["bundle/"]}
    assert kf.model is not None
    assert kf.model.name == "bundle/net"


def test_prompt_files_by_name_and_prompt_directories() -> None:
    kf = gen(
        [
            "Agents.md",
            "claude.md",
            "SKILL.md",
            "review.prompt.md",
            "system.prompt",
            "x.prompt.pdf",
            "prompt.md",
            "prompt-notes.txt",
            "README.md",
            "templates/a.prompt.txt",
            "templates/b.prompt.yaml",
            "half/c.prompt",
            "half/readme.html",
        ]
    )
    assert layout(kf) == {
        "prompts": [
            "Agents.md",
            "SKILL.md",
            "claude.md",
            "review.prompt.md",
            "system.prompt",
            "x.prompt.pdf",
            "templates/",
        ],
        "docs": ["README.md", "prompt.md"],
        "code": ["half/"],
        "datasets": ["prompt-notes.txt"],
    }


def test_mcp_bundles_are_one_server_each_named_after_their_path() -> None:
    kf = gen(["tools.mcpb", "servers/db.mcpb", "servers/fs.mcpb", "mixed/web.mcpb", "mixed/web.md"])
    assert layout(kf) == {
        "mcpServers": [
            ("tools", "tools.mcpb"),
            ("mixed/web", "mixed/web.mcpb"),
            ("servers/db", "servers/db.mcpb"),
            ("servers/fs", "servers/fs.mcpb"),
        ],
        "code": ["mixed/"],
    }


# --- what kitbridge adds --------------------------------------------------------------------------------


def test_sharded_weights_first_shard_is_the_model_and_every_other_shard_its_own_part() -> None:
    # The last shard is small and the size rule alone would pick nothing special; the first shard is
    # the model whatever the sizes and the listing order.
    kf = gen(
        sized(
            {
                "model-00003-of-00003.safetensors": 10,
                "model-00002-of-00003.safetensors": 500,
                "model-00001-of-00003.safetensors": 400,
                "model.safetensors.index.json": 3,
            }
        )
    )
    assert layout(kf) == {
        "model": "model-00001-of-00003.safetensors",
        "parts": [
            ("model-00002-of-00003.safetensors", ""),
            ("model-00003-of-00003.safetensors", ""),
            ("model.safetensors.index.json", "config"),
        ],
    }
    huge_other = sized({"model-00001-of-00002.bin.pt": 5, "model-00002-of-00002.bin.pt": 5, "z.pt": 100})
    kf = gen(huge_other)
    assert kf.model is not None
    assert kf.model.path == "model-00001-of-00002.bin.pt"


def test_shards_in_a_subdirectory_keep_one_entry_per_shard() -> None:
    kf = gen([f"llm/pytorch_model-0000{i}-of-00004.bin" for i in (4, 2, 3, 1)] + ["llm/config.json"])
    assert layout(kf) == {
        "model": "llm/pytorch_model-00001-of-00004.bin",
        "parts": [
            ("llm/pytorch_model-00002-of-00004.bin", ""),
            ("llm/pytorch_model-00003-of-00004.bin", ""),
            ("llm/pytorch_model-00004-of-00004.bin", ""),
            ("llm/config.json", "config"),
        ],
    }


def test_tokenizer_and_config_files_are_typed_parts_and_never_the_model() -> None:
    kf = gen(
        sized(
            {
                "tokenizer.json": 10_000_000,
                "adapter_model.safetensors": 1_000,
                "adapter_config.json": 500,
                "tokenizer.model": 400_000,
                "generation_config.json": 100,
                "chat_template.jinja": 100,
                "merges.txt": 5_000,
            }
        )
    )
    assert layout(kf) == {
        "model": "adapter_model.safetensors",
        "parts": [
            ("adapter_config.json", "config"),
            ("chat_template.jinja", "tokenizer"),
            ("generation_config.json", "config"),
            ("merges.txt", "tokenizer"),
            ("tokenizer.json", "tokenizer"),
            ("tokenizer.model", "tokenizer"),
        ],
    }
    assert kf.code == []  # tokenizer.model and the template are known, so no catch-all


def test_a_directory_of_only_tokenizer_and_config_files_joins_the_model() -> None:
    kf = gen(["model.safetensors", "tok/tokenizer.json", "tok/vocab.txt", "1_Pooling/config.json"])
    assert layout(kf) == {
        "model": "model.safetensors",
        "parts": [
            ("1_Pooling/config.json", "config"),
            ("tok/tokenizer.json", "tokenizer"),
            ("tok/vocab.txt", "tokenizer"),
        ],
    }


def test_python_files_and_notebooks_are_code_entries() -> None:
    kf = gen(["model.gguf", "handler.py", "explore.ipynb", "tools/a.py", "tools/b.py"])
    assert layout(kf) == {
        "model": "model.gguf",
        "parts": [],
        "code": ["explore.ipynb", "handler.py", "tools/"],
    }


def test_notice_copying_and_model_cards_are_docs() -> None:
    kf = gen(["NOTICE", "COPYING", "MODEL_CARD.md", "m.gguf"])
    assert [(d.path, d.description) for d in kf.docs] == [
        ("COPYING", "License file"),
        ("MODEL_CARD.md", "Model card"),
        ("NOTICE", "Notice file"),
    ]
    assert kf.code == []


def test_facts_fill_package_and_model_metadata() -> None:
    facts = GenerationFacts(
        description="A tiny BERT",
        license="Apache-2.0",
        authors=("Ana", "Bo"),
        version="1.2",
        model_name="tiny-bert",
        model_description="BERT, 4 layers",
        framework="transformers",
        format="safetensors",
        parameters={"architecture": "BertModel", "paramSize": "4.4M"},
    )
    kf = generate_kitfile(["model.safetensors", "config.json"], name="tiny", facts=facts)
    assert kf.package.name == "tiny"
    assert (kf.package.description, kf.package.license, kf.package.version) == (
        "A tiny BERT",
        "Apache-2.0",
        "1.2",
    )
    assert kf.package.authors == ["Ana", "Bo"]
    assert kf.model is not None
    assert (kf.model.name, kf.model.framework, kf.model.format) == (
        "tiny-bert",
        "transformers",
        "safetensors",
    )
    assert kf.model.description == "BERT, 4 layers"
    assert kf.model.parameters == {"architecture": "BertModel", "paramSize": "4.4M"}


def test_roles_from_facts_or_the_importer_override_the_name() -> None:
    tree = SourceTree(
        Path("/x"),
        [
            SourceFile("MLmodel", Path("/x/MLmodel"), 10, role="weight-config"),
            SourceFile("model.pkl", Path("/x/model.pkl"), 10),
            SourceFile("data/sample.bin", Path("/x/data/sample.bin"), 10),
            SourceFile("weights.dat", Path("/x/weights.dat"), 10),
            SourceFile("notes.json", Path("/x/notes.json"), 10),
            SourceFile("LICENSE.py", Path("/x/LICENSE.py"), 10),
        ],
        Provenance("runs:/abc/model"),
    )
    facts = GenerationFacts(
        roles={
            "weights.dat": "weights",
            "data/sample.bin": "dataset",
            "notes.json": "doc",
            "LICENSE.py": "code",
        }
    )
    kf = generate_kitfile(tree, name="t", facts=facts)
    assert layout(kf) == {
        "model": "model.pkl",
        "parts": [("weights.dat", ""), ("MLmodel", "config")],
        "code": ["LICENSE.py"],
        "datasets": ["data/"],
        "docs": ["notes.json"],
    }


def test_a_hugging_face_repo_reads_like_a_person_wrote_it(tmp_path: Path) -> None:
    root = tmp_path / "minilm"
    for rel, size in {
        "model.safetensors": 90_000,
        "config.json": 600,
        "tokenizer.json": 400,
        "tokenizer_config.json": 300,
        "special_tokens_map.json": 100,
        "vocab.txt": 200,
        "modules.json": 300,
        "1_Pooling/config.json": 100,
        "README.md": 1000,
        "train_script.py": 100,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * size)
    tree = LocalImporter().resolve(str(root))
    facts = GenerationFacts(description="Sentence embeddings", license="Apache-2.0", framework="transformers")
    kf = generate_kitfile(tree, name="all-minilm-l6-v2", facts=facts)
    assert dump_kitfile(kf) == (
        "manifestVersion: 1.0.0\n"
        "package:\n"
        "  name: all-minilm-l6-v2\n"
        "  description: Sentence embeddings\n"
        "  license: Apache-2.0\n"
        "model:\n"
        "  name: model\n"
        "  path: model.safetensors\n"
        "  framework: transformers\n"
        "  parts:\n"
        "    - path: config.json\n"
        "      type: config\n"
        "    - path: modules.json\n"
        "      type: config\n"
        "    - path: special_tokens_map.json\n"
        "      type: tokenizer\n"
        "    - path: tokenizer.json\n"
        "      type: tokenizer\n"
        "    - path: tokenizer_config.json\n"
        "      type: tokenizer\n"
        "    - path: vocab.txt\n"
        "      type: tokenizer\n"
        "    - path: 1_Pooling/config.json\n"
        "      type: config\n"
        "code:\n"
        "  - path: train_script.py\n"
        "docs:\n"
        "  - path: README.md\n"
        "    description: Readme file\n"
    )
    assert load_kitfile(dump_kitfile(kf)) == kf


def test_the_result_always_validates_and_paths_must_be_relative() -> None:
    validate_kitfile(gen(["a/b/c.gguf", "a/b/d.gguf", "x.csv"]))
    for bad in ["/abs/model.gguf", "../up.gguf", "a//b.gguf", "a/./b.gguf", ""]:
        with pytest.raises(KitfileError, match="cannot generate a Kitfile entry"):
            gen([bad])
    assert layout(gen(["./m.gguf", "m.gguf"])) == {"model": "m.gguf", "parts": []}


# --- writing --------------------------------------------------------------------------------------------


def test_write_kitfile_writes_a_loadable_kitfile(tmp_path: Path) -> None:
    kf = gen(["m.gguf", "README.md"])
    path = write_kitfile(tmp_path, kf)
    assert path == tmp_path / "Kitfile"
    assert read_kitfile(tmp_path) == kf
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["Kitfile"]  # no temporary left behind


@pytest.mark.parametrize("existing", ["Kitfile", "kitfile", ".kitfile"])
def test_write_kitfile_keeps_an_existing_kitfile_unless_forced(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("manifestVersion: 1.0.0\n")
    kf = gen(["m.gguf"])
    with pytest.raises(KitfileError, match="already exists") as info:
        write_kitfile(tmp_path, kf)
    assert info.value.hint is not None
    assert "--force" in info.value.hint
    assert (tmp_path / existing).read_text() == "manifestVersion: 1.0.0\n"
    write_kitfile(tmp_path, kf, force=True)
    assert read_kitfile(tmp_path / "Kitfile") == kf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Kitfile"]


def test_write_kitfile_refuses_an_invalid_kitfile_and_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KitfileError, match="invalid Kitfile"):
        write_kitfile(tmp_path, Kitfile(manifest_version="2.0"))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KitfileError, match="not a directory"):
        write_kitfile(tmp_path / "missing", gen([]))
