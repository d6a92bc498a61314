"""What an artifact was made from, recorded on its manifest: source, revision, options, kitbridge version.

Imports and conversions write these annotations; batch jobs read them back to skip an artifact that is
already in place, made from the same source revision with the same options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitbridge.formats import mediatypes as mt


def options_key(**options: Any) -> str:
    """A canonical text of the options that shape an artifact (``format=modelpack;include=*.json``).

    Recorded on the manifest so a later run can tell whether an existing artifact was made the same way.
    Empty and None values are left out; lists are joined with ``,`` in the order given.
    """
    parts = []
    for key in sorted(options):
        value = options[key]
        if value in (None, "", (), [], False):
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{key}={text}")
    return ";".join(parts)


def provenance_annotations(source: str, revision: str | None, options: str) -> dict[str, str]:
    """The manifest annotations that say what an artifact was made from (see formats.mediatypes)."""
    from kitbridge import __version__

    out = {mt.ANN_SOURCE: source, mt.ANN_OPTIONS: options, mt.ANN_TOOL_VERSION: __version__}
    if revision:
        out[mt.ANN_SOURCE_REVISION] = revision
    return out


def same_provenance(annotations: Mapping[str, str], source: str, revision: str | None, options: str) -> bool:
    """Whether a manifest's annotations say it was made from this source revision with these options."""
    return (
        annotations.get(mt.ANN_SOURCE) == source
        and annotations.get(mt.ANN_SOURCE_REVISION, "") == (revision or "")
        and annotations.get(mt.ANN_OPTIONS, "") == options
    )
