"""Which files of a Hugging Face repo an import takes: globs, one copy of the weights, one GGUF quantization.

Repos often carry the same weights several times -- ``model.safetensors`` beside
``pytorch_model.bin``, ``tf_model.h5``, ``flax_model.msgpack``, ``rust_model.ot`` -- and GGUF repos
carry a dozen quantizations of one model. A ModelKit wants one copy, in the safe format, so:

* where a directory holds safetensors weights, the other frameworks' copies of those weights in the
  same directory are left out, unless an ``--include`` glob asks for them by a pattern that does not
  also match the safetensors files (``--include '*.bin'`` keeps the ``.bin``; ``--include '*'`` does not);
* git plumbing (``.gitattributes``) is left out unless an ``--include`` glob names it;
* a repo (after the globs) with GGUF files of more than one quantization needs ``--quant`` to pick
  one; projector files (``mmproj-*.gguf``) belong to every quantization and are always kept.

Pure functions over relative paths, so the rules are tested without a Hub.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from kitbridge.converters.importers.local import PathFilter, PathGlob
from kitbridge.errors import UsageError

_PICKLE_WEIGHT = re.compile(r"(?:.*_)?(?:pytorch_model|adapter_model)(?:[-.].*)?\.bin")
"""transformers/diffusers/peft pickle weight files and shards (``pytorch_model-00001-of-00002.bin``)."""
_FRAMEWORK_COPY = re.compile(
    r"(?:tf_model.*\.h5|flax_model.*\.msgpack|rust_model\.ot|.*\.(?:h5|msgpack)\.index\.json"
    r"|(?:.*_)?pytorch_model.*\.bin\.index\.json)"
)
"""Other frameworks' copies of the weights, and the shard indexes that go with the pickle copies."""
_SAME_STEM_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
_GIT_METADATA = frozenset({".gitattributes", ".gitignore", ".gitmodules"})
"""Repo plumbing, not model content: left out unless an ``--include`` glob names it."""

_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(?:UD-)?("
    r"I?Q[1-8](?:_[0-9])?(?:_[A-Z0-9]+)*|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|FP16|F32|FP32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")


def gguf_quant(path: str) -> str | None:
    """The quantization a GGUF file's path names (``Q4_K_M``, ``IQ3_XXS``, ``F16``...), upper case.

    Looks at the file stem (shard suffix removed) and then its folders, so both
    ``model.Q4_K_M.gguf`` and ``Q4_K_M/model-00001-of-00002.gguf`` say Q4_K_M.
    """
    p = PurePosixPath(path)
    if p.suffix.lower() != ".gguf":
        return None
    for part in (_SHARD.sub("", p.stem), *reversed(p.parent.parts)):
        found = _QUANT.findall(part.replace(".", "-"))
        if found:
            return str(found[-1]).upper()
    return None


def is_projector(path: str) -> bool:
    """A multimodal projector (``mmproj-*.gguf``): needed by every quantization of the model."""
    return PurePosixPath(path).name.lower().startswith("mmproj")


@dataclass(frozen=True)
class Selection:
    """The files an import takes, and the ones it leaves out with the reason."""

    files: list[str]
    left_out: dict[str, str] = field(default_factory=dict)
    """path -> why: ``excluded``, ``not included``, ``duplicate of X.safetensors``, ``quantization Q8_0``."""
    quant: str | None = None
    """The GGUF quantization kept, when the repo has GGUF files."""


def _duplicates(paths: Sequence[str]) -> dict[str, str]:
    """Files that repeat safetensors weights of the same directory: path -> the safetensors file."""
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        by_dir.setdefault(str(PurePosixPath(p).parent), []).append(p)
    out: dict[str, str] = {}
    for files in by_dir.values():
        safetensors = sorted(f for f in files if f.endswith(".safetensors"))
        if not safetensors:
            continue
        stems = {PurePosixPath(f).with_suffix("").as_posix(): f for f in safetensors}
        for f in files:
            name = PurePosixPath(f).name
            same_stem = (
                f.endswith(_SAME_STEM_SUFFIXES) and PurePosixPath(f).with_suffix("").as_posix() in stems
            )
            if same_stem:
                out[f] = stems[PurePosixPath(f).with_suffix("").as_posix()]
            elif _PICKLE_WEIGHT.fullmatch(name) or _FRAMEWORK_COPY.fullmatch(name):
                out[f] = safetensors[0]
    return out


def _asked_for(path: str, include: Sequence[PathGlob], safetensors: Sequence[str]) -> bool:
    """An include glob matches the file but none of the safetensors files: the user wants this copy."""
    return any(g.matches(path) and not any(g.matches(s) for s in safetensors) for g in include)


def select_files(
    paths: Sequence[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    quant: str | None = None,
    repo: str = "the repo",
) -> Selection:
    """Apply the globs, drop duplicate weight copies, keep one GGUF quantization (see the module doc)."""
    filt = PathFilter.compile(include, exclude)
    left_out: dict[str, str] = {}
    kept: list[str] = []
    for p in paths:
        if filt.excluded(p):
            left_out[p] = "excluded"
        elif not filt.keeps(p):
            left_out[p] = "not included"
        else:
            kept.append(p)
    dupes = _duplicates(kept)
    safetensors = [p for p in kept if p.endswith(".safetensors")]
    for p, original in dupes.items():
        if not _asked_for(p, filt.include, safetensors):
            left_out[p] = f"duplicate of {original}"
    for p in kept:
        if PurePosixPath(p).name in _GIT_METADATA and not any(g.matches(p) for g in filt.include):
            left_out[p] = "git metadata"
    kept = [p for p in kept if p not in left_out]

    quants = {p: q for p in kept if (q := gguf_quant(p)) is not None and not is_projector(p)}
    available = sorted(set(quants.values()))
    chosen: str | None = None
    if quant is not None:
        want = quant.strip().upper().removeprefix("UD-")
        if want not in available:
            have = ", ".join(available) or "none"
            raise UsageError(
                f"{repo} has no GGUF quantization {quant!r} (available: {have})",
                "pick one of the available quantizations with --quant",
            )
        chosen = want
    elif len(available) > 1:
        raise UsageError(
            f"{repo} has {len(available)} GGUF quantizations: {', '.join(available)}",
            "pick one with --quant (for example --quant " + available[0] + ")",
        )
    elif available:
        chosen = available[0]
    if chosen is not None:
        for p, q in quants.items():
            if q != chosen:
                left_out[p] = f"quantization {q}"
        kept = [p for p in kept if p not in left_out]
    return Selection(kept, left_out, chosen)
