"""Licenses: which license a LICENSE/COPYING text is, and SPDX spellings of Hugging Face license ids.

Texts are matched on distinctive phrases (titles, notices, key clauses) after normalising case,
punctuation and whitespace, so reflowed, commented or excerpted copies still match; nothing is hashed.

Licenses that are not on the SPDX list get ``LicenseRef-<hf-id>`` ids built from the id Hugging Face
uses for them (``llama2`` -> ``LicenseRef-llama2``, ``gemma`` -> ``LicenseRef-gemma``,
``creativeml-openrail-m`` -> ``LicenseRef-creativeml-openrail-m``): valid in SPDX expressions, and
the Hub id is recovered by dropping the prefix (except ``openrail++``, whose ``+`` SPDX forbids:
``LicenseRef-openrail-plusplus``).

GNU licenses come back as ``-or-later`` when the text carries a notice granting "any later version"
(outside the license's own how-to appendix), otherwise as ``-only``: a bare copy of the GPL says nothing
about later versions, and ``-only`` is what the Hub's ``gpl-3.0`` and the deprecated SPDX ``GPL-3.0`` mean.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kitbridge.profile.hfconfig import read_small_text

MAX_LICENSE_TEXT = 1024 * 1024
"""Only this many characters of a text are examined: every license named here is far shorter."""

LICENSE_REF_PREFIX = "LicenseRef-"

LICENSE_FILE_RE = re.compile(
    r"^(?!.*\.(?:py|js|ts|json|ya?ml|html?|go|rs|c|h|cpp|java|sh|pdf|docx?)$)"
    r"(?:(?:un)?licen[cs]e|copying)(?:[-_.][\w.-]+)?$",
    re.IGNORECASE,
)
"""File names that hold a license text: LICENSE, LICENSE.md, LICENCE.txt, COPYING, LICENSE-MIT, ..."""


@dataclass(frozen=True)
class LicenseMatch:
    """A license recognised in a text."""

    spdx_id: str
    """SPDX id (``Apache-2.0``, ``GPL-3.0-or-later``) or ``LicenseRef-<hf-id>`` for non-SPDX licenses."""
    name: str
    """The license's full name."""
    confidence: float
    """0..1: how sure the match is (a title or notice alone ~0.9; several distinctive phrases more)."""
    phrase: str
    """The text that matched, as it appears in the input (whitespace collapsed)."""


_Hit = tuple[int, int, float]  # start, end (in the normalised text), confidence

# Distinctive phrases, normalised (lowercase words, single spaces). GNU titles include their version
# date, which no other license's text contains: the GPL-3.0 text names the AGPL, and the LGPL texts the
# GPL, without one.
_PHRASES: tuple[tuple[str, str, tuple[tuple[str, float], ...]], ...] = (
    (
        "Apache-2.0",
        "Apache License 2.0",
        (
            ("apache license version 2 0 january 2004", 0.95),
            ("licensed under the apache license version 2 0", 0.9),
            ("apache license version 2 0", 0.85),
        ),
    ),
    (
        "MIT",
        "MIT License",
        (
            (
                "permission is hereby granted free of charge to any person obtaining a copy of this software "
                "and associated documentation files",
                0.9,
            ),
            (
                "the above copyright notice and this permission notice shall be included in all copies or "
                "substantial portions of the software",
                0.6,
            ),
            ("mit license", 0.5),
        ),
    ),
    (
        "BSL-1.0",
        "Boost Software License 1.0",
        (
            ("boost software license version 1 0", 0.95),
            (
                "to any person or organization obtaining a copy of the software and accompanying "
                "documentation",
                0.85,
            ),
        ),
    ),
    (
        "ISC",
        "ISC License",
        (
            (
                # "and/or distribute" (current ISC text) and "and distribute" (older copies) both end so
                "distribute this software for any purpose with or without fee is hereby granted provided "
                "that the above copyright notice and this permission notice appear in all copies",
                0.9,
            ),
        ),
    ),
    ("AGPL-3.0", "", (("gnu affero general public license version 3 19 november 2007", 0.95),)),
    ("LGPL-3.0", "", (("gnu lesser general public license version 3 29 june 2007", 0.95),)),
    ("LGPL-2.1", "", (("gnu lesser general public license version 2 1 february 1999", 0.95),)),
    ("LGPL-2.0", "", (("gnu library general public license version 2 june 1991", 0.95),)),
    ("GPL-3.0", "", (("gnu general public license version 3 29 june 2007", 0.95),)),
    ("GPL-2.0", "", (("gnu general public license version 2 june 1991", 0.95),)),
    (
        "MPL-2.0",
        "Mozilla Public License 2.0",
        (
            ("mozilla public license version 2 0", 0.95),
            ("subject to the terms of the mozilla public license v 2 0", 0.9),
        ),
    ),
    (
        "CC0-1.0",
        "Creative Commons Zero v1.0 Universal",
        (("cc0 1 0 universal", 0.9), ("creative commons legal code cc0", 0.9)),
    ),
    (
        "Unlicense",
        "The Unlicense",
        (("this is free and unencumbered software released into the public domain", 0.95),),
    ),
    (
        "LicenseRef-creativeml-openrail-m",
        "CreativeML Open RAIL-M",
        (("creativeml open rail m", 0.95), ("creativeml openrail m", 0.9)),
    ),
    (
        "LicenseRef-openrail-plusplus",
        "CreativeML Open RAIL++-M",
        (("open rail plusplus m", 0.95), ("openrail plusplus m", 0.9)),
    ),
    (
        "LicenseRef-bigscience-openrail-m",
        "BigScience Open RAIL-M",
        (("bigscience open rail m", 0.95), ("bigscience openrail m", 0.9)),
    ),
    (
        "LicenseRef-bigscience-bloom-rail-1.0",
        "BigScience BLOOM RAIL 1.0",
        (("bigscience rail license v1 0", 0.95), ("bigscience bloom rail 1 0", 0.9)),
    ),
    (
        "LicenseRef-bigcode-openrail-m",
        "BigCode Open RAIL-M",
        (("bigcode open rail m", 0.95), ("bigcode openrail m", 0.9)),
    ),
    (
        "LicenseRef-openrail",
        "Open RAIL",
        (("open rail", 0.6), ("openrail", 0.6), ("responsible ai license", 0.6)),
    ),
    ("LicenseRef-llama2", "Llama 2 Community License Agreement", (("llama 2 community license", 0.95),)),
    (
        "LicenseRef-llama3",
        "Meta Llama 3 Community License Agreement",
        (("meta llama 3 community license", 0.95), ("llama 3 community license", 0.9)),
    ),
    (
        "LicenseRef-llama3.1",
        "Llama 3.1 Community License Agreement",
        (("llama 3 1 community license", 0.95),),
    ),
    (
        "LicenseRef-llama3.2",
        "Llama 3.2 Community License Agreement",
        (("llama 3 2 community license", 0.95),),
    ),
    (
        "LicenseRef-llama3.3",
        "Llama 3.3 Community License Agreement",
        (("llama 3 3 community license", 0.95),),
    ),
    ("LicenseRef-llama4", "Llama 4 Community License Agreement", (("llama 4 community license", 0.95),)),
    ("LicenseRef-gemma", "Gemma Terms of Use", (("gemma terms of use", 0.95),)),
    ("LicenseRef-deepseek", "DeepSeek License Agreement", (("deepseek license agreement", 0.9),)),
    ("LicenseRef-qwen", "Tongyi Qianwen License Agreement", (("tongyi qianwen license agreement", 0.9),)),
    (
        "LicenseRef-nvidia-open-model-license",
        "NVIDIA Open Model License Agreement",
        (("nvidia open model license", 0.9),),
    ),
)

_BSD_FAMILY = "redistribution and use in source and binary forms with or without modification are permitted"
_BSD_ENDORSE = "may be used to endorse or promote products derived from this software without specific prior"
_BSD_ADVERTISING = "all advertising materials mentioning features or use of this software must display"

_GNU_NAMES = {
    "GPL": "GNU General Public License",
    "LGPL": "GNU Lesser General Public License",
    "AGPL": "GNU Affero General Public License",
}
# A GNU notice: "... under the terms of the GNU General Public License as published by the Free Software
# Foundation, either version 3 of the License ..." or "... License version 2 as published by ...".
_GNU_NOTICE = re.compile(
    r"gnu (?:(lesser|library|affero) )?general public license (?:"
    r"as published by the free software foundation (?:either )?version ([23])(?: (1))? of the license"
    r"|(?:v|version )([23])(?: (1))? as published by the free software foundation)"
)
_GNU_PREFIX = {None: "GPL", "lesser": "LGPL", "library": "LGPL", "affero": "AGPL"}
_OR_LATER = "at your option any later version"
# The GNU texts end with a sample notice that says "or later": only notices before it count.
_APPENDIX = "how to apply these terms to your new"

# Creative Commons: one pattern for every variant and version, in the legal code's title or a notice.
_CC = re.compile(
    r"creative commons (?:legal code )?"
    r"(attribution(?: noncommercial)?(?: sharealike| noderivatives| noderivs)?) "
    r"([1-4]) ([05]) (?:international|unported|generic)"
    r"|(?<= )cc (by(?: nc)?(?: sa| nd)?) ([1-4]) ([05])(?= )"
)
_CC_PARTS = {
    "attribution": "BY",
    "by": "BY",
    "noncommercial": "NC",
    "nc": "NC",
    "sharealike": "SA",
    "sa": "SA",
    "noderivatives": "ND",
    "noderivs": "ND",
    "nd": "ND",
}
_CC_WORDS = {"BY": "Attribution", "NC": "NonCommercial", "SA": "ShareAlike", "ND": "NoDerivatives"}
_CC_WORDS = {"BY": "Attribution", "NC": "NonCommercial", "SA": "ShareAlike", "ND": "NoDerivatives"}

_TOKEN = re.compile(r"[A-Za-z0-9]+|\+\+")


class _Normalised:
    """A text as lowercase ASCII words separated by single spaces, padded with a space at both ends."""

    def __init__(self, text: str) -> None:
        self.text = text
        words: list[str] = []
        self.spans: list[tuple[int, int]] = []  # each word's span in ``text``
        self.offsets: list[int] = []  # each word's offset in ``norm``
        pos = 1
        for m in _TOKEN.finditer(text):
            word = "plusplus" if m.group() == "++" else m.group().lower()  # keeps RAIL++ apart from RAIL
            words.append(word)
            self.spans.append(m.span())
            self.offsets.append(pos)
            pos += len(word) + 1
        self.norm = " " + " ".join(words) + " "

    def find(self, phrase: str) -> int:
        """Offset of ``phrase`` as whole words, or -1."""
        i = self.norm.find(" " + phrase + " ")
        return i + 1 if i >= 0 else -1

    def original(self, start: int, end: int) -> str:
        """The input text behind ``norm[start:end]``, whitespace collapsed."""
        first = bisect.bisect_right(self.offsets, start) - 1
        last = bisect.bisect_right(self.offsets, end - 1) - 1
        return " ".join(self.text[self.spans[first][0] : self.spans[last][1]].split())


def _combine(confidences: list[float]) -> float:
    miss = 1.0
    for c in confidences:
        miss *= 1.0 - c
    return round(min(0.99, 1.0 - miss), 2)


def identify_license(text: str) -> LicenseMatch | None:
    """The license a LICENSE/COPYING/notice text is, or None when no known license's phrases are in it.

    The strongest evidence wins; between equals, the license stated first in the text (the project's
    own, not a third-party notice further down).
    """
    t = _Normalised(text[:MAX_LICENSE_TEXT])
    if t.norm == "  ":
        return None
    found: dict[str, tuple[str, list[_Hit]]] = {}

    def add(spdx_id: str, name: str, start: int, length: int, conf: float) -> None:
        found.setdefault(spdx_id, (name, []))[1].append((start, start + length, conf))

    for spdx_id, name, phrases in _PHRASES:
        for phrase, conf in phrases:
            pos = t.find(phrase)
            if pos >= 0:
                add(spdx_id, name, pos, len(phrase), conf)

    bsd = t.find(_BSD_FAMILY)
    if bsd >= 0:
        adv, endorse = t.find(_BSD_ADVERTISING), t.find(_BSD_ENDORSE)
        if adv >= 0:
            add("BSD-4-Clause", "BSD 4-Clause License", adv, len(_BSD_ADVERTISING), 0.9)
        elif endorse >= 0:
            add("BSD-3-Clause", "BSD 3-Clause License", endorse, len(_BSD_ENDORSE), 0.9)
        else:
            add("BSD-2-Clause", "BSD 2-Clause License", bsd, len(_BSD_FAMILY), 0.8)

    for m in _GNU_NOTICE.finditer(t.norm):
        major = m.group(2) or m.group(4)
        minor = m.group(3) or m.group(5) or "0"
        add(f"{_GNU_PREFIX[m.group(1)]}-{major}.{minor}", "", m.start(), m.end() - m.start(), 0.85)

    cc = _CC.search(t.norm)
    if cc:
        words, major, minor = cc.group(1, 2, 3) if cc.group(1) else cc.group(4, 5, 6)
        parts = [_CC_PARTS[w] for w in words.split()]
        name = "Creative Commons " + "-".join(_CC_WORDS[p] for p in parts) + f" {major}.{minor}"
        add(f"CC-{'-'.join(parts)}-{major}.{minor}", name, cc.start(), len(cc[0]), 0.9)

    best: tuple[float, int, LicenseMatch] | None = None
    for spdx_id, (name, hits) in found.items():
        conf = _combine([h[2] for h in hits])
        first = min(h[0] for h in hits)
        strongest = max(hits, key=lambda h: (h[2], -h[0]))
        full_id, full_name = _gnu_variant(spdx_id, t.norm) if not name else (spdx_id, name)
        match = LicenseMatch(full_id, full_name, conf, t.original(strongest[0], strongest[1]))
        if best is None or (conf, -first) > (best[0], -best[1]):
            best = (conf, first, match)
    return best[2] if best else None


def _gnu_variant(base: str, norm: str) -> tuple[str, str]:
    """``-or-later`` when a notice before the license's own appendix says so, else ``-only``; and the name."""
    family, version = base.split("-")
    name = f"{_GNU_NAMES[family]} v{version}"
    if family == "LGPL" and version == "2.0":
        name = f"GNU Library General Public License v{version}"
    cut = norm.find(_APPENDIX)
    if _OR_LATER in (norm if cut < 0 else norm[:cut]):
        return f"{base}-or-later", f"{name} or later"
    return f"{base}-only", f"{name} only"


def identify_license_file(path: str | os.PathLike[str]) -> LicenseMatch | None:
    """:func:`identify_license` on the start of a file; None when it cannot be read or matches nothing."""
    try:
        text, _ = read_small_text(Path(path), MAX_LICENSE_TEXT)
    except OSError:
        return None
    return identify_license(text)


def is_license_filename(name: str) -> bool:
    """Whether a file name (not a path) is one that holds a license text."""
    return bool(LICENSE_FILE_RE.match(name))


# --- Hugging Face card ids -> SPDX --------------------------------------------------------------------------

_SPDX_SPELLINGS = (
    *("0BSD", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-2.0", "Artistic-2.0", "BSL-1.0"),
    *("BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear", "BSD-4-Clause", "C-UDA-1.0", "CC0-1.0"),
    *("CC-BY-2.0", "CC-BY-2.5", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-ND-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0"),
    *("CC-BY-NC-2.0", "CC-BY-NC-3.0", "CC-BY-NC-4.0", "CC-BY-NC-ND-3.0", "CC-BY-NC-ND-4.0"),
    *("CC-BY-NC-SA-2.0", "CC-BY-NC-SA-3.0", "CC-BY-NC-SA-4.0"),
    *("CDLA-Permissive-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0", "ECL-2.0", "EPL-1.0", "EPL-2.0"),
    *("etalab-2.0", "EUPL-1.1", "EUPL-1.2", "GFDL-1.3-only", "GFDL-1.3-or-later"),
    *("GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC", "LGPLLR"),
    *("LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only"),
    *("LGPL-3.0-or-later", "LPPL-1.3c", "MIT", "MIT-0", "MPL-2.0", "MS-PL", "NCSA", "ODbL-1.0", "ODC-By-1.0"),
    *("OFL-1.1", "OSL-3.0", "PDDL-1.0", "PostgreSQL", "Unlicense", "WTFPL", "Zlib"),
)
_SPDX_BY_LOWER = {s.lower(): s for s in _SPDX_SPELLINGS}
_REF_BODY = re.compile(r"[A-Za-z0-9.-]+")

# Hugging Face ids that are not SPDX ids with different case.
_HF_TO_SPDX = {
    "gpl-2.0": "GPL-2.0-only",
    "gpl-3.0": "GPL-3.0-only",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-3.0": "LGPL-3.0-only",
    "agpl-3.0": "AGPL-3.0-only",
    "gpl-2.0+": "GPL-2.0-or-later",
    "gpl-3.0+": "GPL-3.0-or-later",
    "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3.0+": "LGPL-3.0-or-later",
    "odbl": "ODbL-1.0",
    "odc-by": "ODC-By-1.0",
    "pddl": "PDDL-1.0",
    "c-uda": "C-UDA-1.0",
    "lgpl-lr": "LGPLLR",
    "cc0": "CC0-1.0",
}

# Hugging Face ids of licenses that SPDX does not list: written as LicenseRef-<id>.
_HF_NON_SPDX = frozenset(
    {
        "openrail",
        "creativeml-openrail-m",
        "bigscience-openrail-m",
        "bigscience-bloom-rail-1.0",
        "bigcode-openrail-m",
        "llama2",
        "llama3",
        "llama3.1",
        "llama3.2",
        "llama3.3",
        "llama4",
        "gemma",
        "deepfloyd-if-license",
        "fair-noncommercial-research-license",
        "apple-ascl",
        "apple-amlr",
        "intel-research",
        "h-research",
        "grok2-community",
    }
)


def spdx_license_id(license_id: str) -> str | None:
    """The SPDX spelling of a license id from a model card (``apache-2.0`` -> ``Apache-2.0``), or None.

    SPDX ids in any case get their canonical spelling, Hub ids of GNU licenses their ``-only`` form,
    Hub ids of known non-SPDX licenses ``LicenseRef-<id>``, ``LicenseRef-*`` ids stay; None for
    anything else (``other``, ``unknown``, an id this table does not know).
    """
    s = license_id.strip()
    low = s.lower()
    if low in _SPDX_BY_LOWER:
        return _SPDX_BY_LOWER[low]
    if low in _HF_TO_SPDX:
        return _HF_TO_SPDX[low]
    if low == "openrail++":  # "+" is not allowed in a LicenseRef id
        return LICENSE_REF_PREFIX + "openrail-plusplus"
    if low in _HF_NON_SPDX:
        return LICENSE_REF_PREFIX + low
    if low.startswith(LICENSE_REF_PREFIX.lower()) and _REF_BODY.fullmatch(s[len(LICENSE_REF_PREFIX) :]):
        return LICENSE_REF_PREFIX + s[len(LICENSE_REF_PREFIX) :]
    return None


def normalize_license_id(license_id: str) -> str:
    """:func:`spdx_license_id`, or the id as given (stripped) when it is not one this module knows."""
    return spdx_license_id(license_id) or license_id.strip()


def license_ref(name: str) -> str | None:
    """A ``LicenseRef-`` id for a license known only by name (``My License`` -> ``LicenseRef-My-License``)."""
    body = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-.")
    return LICENSE_REF_PREFIX + body if body else None
