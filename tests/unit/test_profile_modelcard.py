"""Model cards: YAML front matter (tolerating junk), title and description from the Markdown body."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitbridge.profile.modelcard import DESCRIPTION_MAX, plain_text, read_model_card

# The start of the real sentence-transformers/all-MiniLM-L6-v2 README.md (datasets list shortened).
MINILM_README = """---
language: en
license: apache-2.0
library_name: sentence-transformers
tags:
- sentence-transformers
- feature-extraction
- sentence-similarity
- transformers
datasets:
- s2orc
- flax-sentence-embeddings/stackexchange_xml
- ms_marco
- embedding-data/QQP
pipeline_tag: sentence-similarity
---


# all-MiniLM-L6-v2
This is a [sentence-transformers](https://www.SBERT.net) model: It maps sentences & paragraphs to a 384 \
dimensional dense vector space and can be used for tasks like clustering or semantic search.

## Usage (Sentence-Transformers)
Using this model becomes easy when you have [sentence-transformers](https://www.SBERT.net) installed:

```
pip install -U sentence-transformers
```
"""


def card(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "README.md"
    p.write_text(text, encoding="utf-8")
    return p


def test_minilm_card_front_matter_and_body(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, MINILM_README))
    assert c.has_front_matter is True
    assert c.licenses == ("apache-2.0",)
    assert c.spdx_licenses == ("Apache-2.0",)
    assert c.languages == ("en",)
    assert c.languages_raw == ("en",)
    assert c.library_name == "sentence-transformers"
    assert c.tags == ("sentence-transformers", "feature-extraction", "sentence-similarity", "transformers")
    assert c.datasets == (
        "s2orc",
        "flax-sentence-embeddings/stackexchange_xml",
        "ms_marco",
        "embedding-data/QQP",
    )
    assert c.pipeline_tag == "sentence-similarity"
    assert c.title == "all-MiniLM-L6-v2"
    assert c.description == (
        "This is a sentence-transformers model: It maps sentences & paragraphs to a 384 dimensional dense "
        "vector space and can be used for tasks like clustering or semantic search."
    )
    assert c.front_matter["license"] == "apache-2.0"
    assert c.warnings == ()


def test_directory_finds_readme(tmp_path: Path) -> None:
    card(tmp_path, MINILM_README)
    assert read_model_card(tmp_path).title == "all-MiniLM-L6-v2"


def test_card_without_front_matter_still_gives_title_and_description(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, "# My Model\n\nA **small** model that does _one_ thing well.\n"))
    assert c.has_front_matter is False
    assert c.licenses == ()
    assert c.title == "My Model"
    assert c.description == "A small model that does one thing well."
    assert c.warnings == ()


def test_broken_yaml_is_a_warning_and_the_body_is_still_read(tmp_path: Path) -> None:
    text = "---\nlicense: mit\ntags: [a, b\nlanguage: en\n---\n# Title\n\nBody text.\n"
    c = read_model_card(card(tmp_path, text))
    assert c.has_front_matter is False
    assert c.licenses == ()
    assert (c.title, c.description) == ("Title", "Body text.")
    assert len(c.warnings) == 1
    assert c.warnings[0].startswith("README.md: front matter is not valid YAML (line ")


def test_unclosed_front_matter_is_a_warning(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, "---\nlicense: mit\n\nSome text that never ends the block.\n"))
    assert c.licenses == ()
    assert "no closing '---'" in c.warnings[0]


def test_front_matter_that_is_not_a_mapping_is_ignored(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, "---\n- license\n- mit\n---\nHello.\n"))
    assert c.has_front_matter is False
    assert "not a mapping" in c.warnings[0]
    assert c.description == "Hello."


def test_empty_front_matter_is_fine(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, "---\n---\n# T\n"))
    assert (c.has_front_matter, c.title, c.warnings) == (False, "T", ())


def test_list_license_and_other_license_name(tmp_path: Path) -> None:
    text = (
        "---\nlicense:\n- apache-2.0\n- other\n- cc-by-nc-4.0\n- unknown\n"
        "license_name: llama3\nlicense_link: LICENSE\n---\n"
    )
    c = read_model_card(card(tmp_path, text))
    assert c.licenses == ("apache-2.0", "other", "cc-by-nc-4.0", "unknown")
    assert c.spdx_licenses == ("Apache-2.0", "LicenseRef-llama3", "CC-BY-NC-4.0")
    assert (c.license_name, c.license_link) == ("llama3", "LICENSE")


def test_other_license_with_a_free_form_name_gets_a_licenseref(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, "---\nlicense: other\nlicense_name: Acme Model License v1\n---\n"))
    assert c.spdx_licenses == ("LicenseRef-Acme-Model-License-v1",)


@pytest.mark.parametrize(
    ("yaml_value", "codes", "raw"),
    [
        ("en", ("en",), ("en",)),
        ("EN", ("en",), ("EN",)),
        ("[en, fr, de]", ("en", "fr", "de"), ("en", "fr", "de")),
        ("[en-US, zh-Hans, pt_BR]", ("en", "zh", "pt"), ("en-US", "zh-Hans", "pt_BR")),
        ("[en, multilingual, code, eng, xx]", ("en",), ("en", "multilingual", "code", "eng", "xx")),
        ("[en, no]", ("en", "no"), ("en", "no")),  # YAML 1.1 reads a bare `no` as false
        ("[en, en-GB]", ("en",), ("en", "en-GB")),
    ],
)
def test_languages_keep_valid_two_letter_codes(
    tmp_path: Path, yaml_value: str, codes: tuple[str, ...], raw: tuple[str, ...]
) -> None:
    c = read_model_card(card(tmp_path, f"---\nlanguage: {yaml_value}\n---\n"))
    assert c.languages == codes
    assert c.languages_raw == raw
    assert all(len(code) == 2 and code.islower() for code in c.languages)


def test_base_model_string_or_list_and_model_index_name(tmp_path: Path) -> None:
    text = """---
base_model:
- mistralai/Mistral-7B-v0.1
- HuggingFaceH4/zephyr-7b-beta
base_model_relation: merge
model-index:
- name: zephyr-merge
  results: []
---
"""
    c = read_model_card(card(tmp_path, text))
    assert c.base_models == ("mistralai/Mistral-7B-v0.1", "HuggingFaceH4/zephyr-7b-beta")
    assert c.base_model_relation == "merge"
    assert c.model_name == "zephyr-merge"

    c = read_model_card(card(tmp_path, "---\nbase_model: meta-llama/Llama-3.1-8B\nmodel_name: mine\n---\n"))
    assert (c.base_models, c.model_name) == (("meta-llama/Llama-3.1-8B",), "mine")


def test_fields_of_the_wrong_type_are_warnings(tmp_path: Path) -> None:
    text = "---\nlicense: {name: mit}\npipeline_tag: [a, b]\ntags: [ok, {x: 1}]\n---\n"
    c = read_model_card(card(tmp_path, text))
    assert c.licenses == ()
    assert c.pipeline_tag is None
    assert c.tags == ("ok",)
    assert len(c.warnings) == 3
    assert all(w.startswith("README.md: front matter ") for w in c.warnings)


def test_description_skips_comments_badges_code_tables_and_html(tmp_path: Path) -> None:
    text = """---
license: mit
---
<!-- This model card has been generated automatically according to the information the Trainer had access to.
You should probably proofread and complete it, then remove this comment. -->

[![Build](https://img.shields.io/badge/build-passing-green)](https://ci.example)

<p align="center"><img src="logo.png"></p>

```python
print("not a description")
```

| col | col |
|-----|-----|

# Fancy *Model* `v2`

> [!NOTE]
> A note, not a description.

- a list item

This model is a fine-tuned version of [distilbert-base-uncased](https://huggingface.co/distilbert-base-uncased)
on the **imdb** dataset. It uses `snake_case_names` and a ~~struck~~ word &amp; an entity.
"""
    c = read_model_card(card(tmp_path, text))
    assert c.title == "Fancy Model v2"
    assert c.description == (
        "This model is a fine-tuned version of distilbert-base-uncased on the imdb dataset. "
        "It uses snake_case_names and a struck word & an entity."
    )


def test_setext_heading_is_a_title(tmp_path: Path) -> None:
    c = read_model_card(card(tmp_path, "Great Model\n===========\n\nIt is great.\n"))
    assert (c.title, c.description) == ("Great Model", "It is great.")


def test_long_description_is_cut_at_a_word(tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(200))
    c = read_model_card(card(tmp_path, f"# T\n\n{words}\n"))
    assert c.description is not None
    assert len(c.description) <= DESCRIPTION_MAX
    assert c.description.endswith("...")
    assert words.startswith(c.description[:-3])
    assert c.description[:-3].split()[-1] in words.split()  # no word cut in half


def test_missing_card_is_a_warning(tmp_path: Path) -> None:
    c = read_model_card(tmp_path / "README.md")
    assert c.title is None
    assert "cannot read" in c.warnings[0]


def test_crlf_and_bom_are_tolerated(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_bytes(b"\xef\xbb\xbf---\r\nlicense: mit\r\nlanguage: fr\r\n---\r\n# Titre\r\n\r\nBonjour.\r\n")
    c = read_model_card(p)
    assert (c.spdx_licenses, c.languages, c.title, c.description) == (("MIT",), ("fr",), "Titre", "Bonjour.")


def test_plain_text_strips_inline_markdown() -> None:
    assert plain_text("See [the docs](https://x.y) and ![img](a.png) <b>now</b>") == "See the docs and now"
    assert plain_text("**bold** *it* _em_ `code` \\*literal\\*") == "bold it em code *literal*"
