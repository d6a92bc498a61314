"""A Hugging Face model card (``README.md``): its YAML front matter and the start of its Markdown body.

The reader fails soft: broken YAML, a front matter that is not a mapping or fields of the wrong type
become ``warnings`` on the result, and whatever else could be read is kept.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kitbridge.profile.hfconfig import MAX_SMALL_FILE, StrPath, read_small_text
from kitbridge.profile.license import license_ref, spdx_license_id

DESCRIPTION_MAX = 300
"""The longest description taken from a card body, in characters."""

# ISO 639-1: the two-letter codes a ModelPack ``languages`` entry may be (the schema checks ^[a-z]{2}$).
_ISO_639_1 = frozenset(
    re.findall(
        r"[a-z]{2}",
        "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv "
        "cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr "
        "ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw "
        "ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv "
        "ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr "
        "ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi "
        "yo za zh zu ",
    )
)


@dataclass(frozen=True)
class ModelCard:
    """What a model card states: front-matter metadata, a title and a short description."""

    has_front_matter: bool = False
    """The file starts with a ``---`` YAML block that parsed to a non-empty mapping."""
    licenses: tuple[str, ...] = ()
    """``license`` as written (one id or a list): apache-2.0, mit, other, ..."""
    spdx_licenses: tuple[str, ...] = ()
    """The licenses as SPDX ids; ``other`` becomes ``LicenseRef-<license_name>``, ``unknown`` is dropped."""
    license_name: str | None = None
    """``license_name``: the name of an ``other`` license."""
    license_link: str | None = None
    """``license_link``: where an ``other`` license's text is."""
    pipeline_tag: str | None = None
    """``pipeline_tag``: the task (text-generation, sentence-similarity, ...)."""
    languages: tuple[str, ...] = ()
    """Valid ISO 639-1 codes from ``language``, lowercased, region dropped (``en-US`` -> ``en``)."""
    languages_raw: tuple[str, ...] = ()
    """``language`` as written."""
    base_models: tuple[str, ...] = ()
    """``base_model``: the model(s) this one derives from."""
    base_model_relation: str | None = None
    """``base_model_relation``: adapter, merge, quantized or finetune."""
    datasets: tuple[str, ...] = ()
    """``datasets``: training data ids."""
    tags: tuple[str, ...] = ()
    """``tags``."""
    library_name: str | None = None
    """``library_name``: transformers, sentence-transformers, diffusers, peft, ..."""
    model_name: str | None = None
    """``model_name``, else the first ``model-index`` entry's ``name``."""
    title: str | None = None
    """The body's first level-1 heading, as plain text."""
    description: str | None = None
    """The body's first paragraph of prose, as plain text (links and emphasis stripped), at most 300 chars."""
    front_matter: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
    """The parsed front matter as it is, for provenance only (values may be any YAML type)."""
    warnings: tuple[str, ...] = ()
    """Why something could not be read."""


_FRONT_OPEN = re.compile(r"\A(?:[ \t]*\n)*---[ \t]*\n")
_FRONT_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def _split_front_matter(text: str) -> tuple[str | None, str, list[str]]:
    m = _FRONT_OPEN.match(text)
    if not m:
        return None, text, []
    rest = text[m.end() :]
    empty = re.match(r"(?:---|\.\.\.)[ \t]*(?:\n|\Z)", rest)
    if empty:
        return "", rest[empty.end() :], []
    end = _FRONT_CLOSE.search(rest)
    if end is None:
        return None, rest, ["front matter has no closing '---' line, ignored"]
    return rest[: end.start()], rest[end.end() :], []


def _strs(value: object, key: str, warnings: list[str]) -> tuple[str, ...]:
    """A string or a list of strings (numbers accepted and written as text)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in items:
        if isinstance(v, bool) or v is None:
            if v is not None:
                warnings.append(f"'{key}' has a boolean entry, ignored")
            continue
        if isinstance(v, (str, int, float)):
            s = str(v).strip()
            if s and s not in out:
                out.append(s)
        else:
            warnings.append(f"'{key}' has an entry of type {type(v).__name__}, ignored")
    return tuple(out)


def _one_str(value: object, key: str, warnings: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    warnings.append(f"'{key}' is a {type(value).__name__}, not a string; ignored")
    return None


def _languages(value: object, warnings: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    raw: list[str] = []
    codes: list[str] = []
    for v in items:
        if v is False:  # YAML 1.1 reads an unquoted `no` (Norwegian) as false
            v = "no"
        if not isinstance(v, str):
            warnings.append(f"'language' has an entry of type {type(v).__name__}, ignored")
            continue
        raw.append(v)
        primary = re.split(r"[-_]", v.strip().lower(), maxsplit=1)[0]
        if primary in _ISO_639_1 and primary not in codes:
            codes.append(primary)
    return tuple(codes), tuple(raw)


def _spdx(licenses: tuple[str, ...], license_name: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for lic in licenses:
        low = lic.lower()
        if low == "unknown":
            continue
        if low == "other":
            spdx = (spdx_license_id(license_name) or license_ref(license_name)) if license_name else None
        else:
            spdx = spdx_license_id(lic) or license_ref(lic)
        if spdx and spdx not in out:
            out.append(spdx)
    return tuple(out)


def _model_name(meta: Mapping[str, object], warnings: list[str]) -> str | None:
    name = _one_str(meta.get("model_name"), "model_name", warnings)
    if name:
        return name
    index = meta.get("model-index")
    if isinstance(index, list) and index and isinstance(index[0], dict):
        return _one_str(index[0].get("name"), "model-index name", warnings)
    return None


# --- Markdown body ---------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HR = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_INLINE = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"!\[[^\]]*\]\[[^\]]*\]"), ""),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links
    (re.compile(r"\[([^\]]*)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"<!--.*?-->"), ""),
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),  # HTML tags
    (re.compile(r"`+([^`]*)`+"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"\*(?=\S)(.+?)(?<=\S)\*"), r"\1"),
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),  # not snake_case names
    (re.compile(r"~~(.+?)~~"), r"\1"),
)
# Backslash-escaped punctuation is parked in the Private Use Area while markup is stripped, then restored.
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_PARKED = re.compile("[\ue000-\ue07f]")


def plain_text(markdown: str) -> str:
    """Inline Markdown as plain text: links become their text, images, tags and emphasis markers go."""
    s = _ESCAPE.sub(lambda m: chr(0xE000 + ord(m.group(1))), markdown)
    for pattern, repl in _INLINE:
        s = pattern.sub(repl, s)
    s = _PARKED.sub(lambda m: chr(ord(m.group()) - 0xE000), s)
    return " ".join(html.unescape(s).split())


def _shorten(s: str, limit: int = DESCRIPTION_MAX) -> str:
    if len(s) <= limit:
        return s
    cut = s[: limit - 3]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "..."


def _title_and_description(body: str) -> tuple[str | None, str | None]:
    title: str | None = None
    description: str | None = None
    para: list[str] = []
    fence: str | None = None
    in_comment = False

    def flush() -> None:
        nonlocal description
        if description is None and para:
            text = plain_text(" ".join(para))
            if any(c.isalnum() for c in text):
                description = _shorten(text)
        para.clear()

    for line in body.splitlines():
        stripped = line.strip()
        if in_comment:
            in_comment = "-->" not in stripped
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith("<!--"):
            flush()
            in_comment = "-->" not in stripped[4:]
            continue
        if m := _FENCE.match(line):
            flush()
            fence = m.group(1)
            continue
        if not stripped:
            flush()
            continue
        if m := _ATX.match(line):
            flush()
            if m.group(1) == "#" and title is None:
                title = plain_text(m.group(2) or "") or None
            continue
        if para and re.fullmatch(r"=+", stripped):  # setext level-1 heading underline
            if title is None:
                title = plain_text(" ".join(para)) or None
            para.clear()
            continue
        if para and re.fullmatch(r"-+", stripped):  # setext level-2 heading underline
            para.clear()
            continue
        if _HR.match(line) or _LIST.match(line) or stripped[0] in "|<>":  # rules, lists, tables, HTML, quotes
            flush()
            continue
        if not para and line.startswith(("    ", "\t")):  # indented code (indented lines inside continue)
            continue
        para.append(stripped)
        if title is not None and description is not None:
            break
    flush()
    return title, description


def read_model_card(path: StrPath) -> ModelCard:
    """Read a model card ``README.md`` (or the one in directory ``path``); never raises."""
    p = Path(path)
    file = p / "README.md" if p.is_dir() else p
    warnings: list[str] = []
    try:
        text, truncated = read_small_text(file, MAX_SMALL_FILE)
    except OSError as e:
        return ModelCard(warnings=(f"{file.name}: cannot read ({e.strerror or e})",))
    if truncated:
        warnings.append(f"{file.name}: only the first {MAX_SMALL_FILE} bytes were read")
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    raw_front, body, w = _split_front_matter(text)
    warnings += [f"{file.name}: {s}" for s in w]
    meta: dict[str, object] = {}
    if raw_front is not None:
        try:
            loaded = yaml.safe_load(raw_front)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 2})" if mark is not None else ""
            problem = getattr(e, "problem", None) or type(e).__name__
            warnings.append(f"{file.name}: front matter is not valid YAML{where}: {problem}; ignored")
            loaded = None
        except (ValueError, TypeError, RecursionError) as e:
            warnings.append(f"{file.name}: front matter cannot be read ({e}); ignored")
            loaded = None
        if isinstance(loaded, dict):
            meta = {str(k): v for k, v in loaded.items()}
        elif loaded is not None:
            warnings.append(f"{file.name}: front matter is a {type(loaded).__name__}, not a mapping; ignored")

    return card_from_metadata(meta, body, warnings, file.name)


def card_from_metadata(
    meta: Mapping[str, object], body: str = "", warnings: Sequence[str] = (), name: str = "cardData"
) -> ModelCard:
    """A ModelCard from front-matter metadata (a README's, or the Hub API's ``cardData``) and a body."""
    fw: list[str] = []
    licenses = _strs(meta.get("license"), "license", fw)
    license_name = _one_str(meta.get("license_name"), "license_name", fw)
    languages, languages_raw = _languages(meta.get("language"), fw)
    title, description = _title_and_description(body)
    return ModelCard(
        has_front_matter=bool(meta),
        licenses=licenses,
        spdx_licenses=_spdx(licenses, license_name),
        license_name=license_name,
        license_link=_one_str(meta.get("license_link"), "license_link", fw),
        pipeline_tag=_one_str(meta.get("pipeline_tag"), "pipeline_tag", fw),
        languages=languages,
        languages_raw=languages_raw,
        base_models=_strs(meta.get("base_model"), "base_model", fw),
        base_model_relation=_one_str(meta.get("base_model_relation"), "base_model_relation", fw),
        datasets=_strs(meta.get("datasets"), "datasets", fw),
        tags=_strs(meta.get("tags"), "tags", fw),
        library_name=_one_str(meta.get("library_name"), "library_name", fw),
        model_name=_model_name(meta, fw),
        title=title,
        description=description,
        front_matter=dict(meta),
        warnings=tuple([*warnings, *(f"{name}: front matter {s}" for s in fw)]),
    )
