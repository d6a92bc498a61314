"""Unpack a ModelKit from the local store into a directory: verify and plan everything, then write."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from kitbridge.errors import FormatError, UnpackError
from kitbridge.filters import Selection
from kitbridge.formats import kitops
from kitbridge.home import open_store
from kitbridge.kitfile import LayerEntry, clean_path, dump_kitfile
from kitbridge.layers.extract import LayerPlan, Unpacker
from kitbridge.modelkits import load_modelkit
from kitbridge.oci import digest as digests
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.reference import Reference
from kitbridge.oci.store import Store

# The Kitfile goes through the same verified, all-or-nothing path as a raw layer.
_KITFILE_MEDIA_TYPE = "application/vnd.kitops.modelkit.kitfile.v1.raw"


@dataclass(frozen=True)
class UnpackResult:
    """What ``unpack`` wrote: the reference and the relative paths of the files, in order."""

    reference: Reference
    directory: Path
    files: list[str]


def _layer_for(entry: LayerEntry, digest: str, layers: list[Descriptor], ref: Reference) -> Descriptor:
    for layer in layers:
        if layer.digest == digest:
            return layer
    raise FormatError(
        f"{ref}: the config names layer {digest} for {entry.kind} {entry.path!r}, "
        "but the manifest has no such layer",
        "the ModelKit is inconsistent; pack or pull it again",
    )


def unpack(
    reference: str | Reference,
    directory: str | os.PathLike[str],
    *,
    filters: list[str] | None = None,
    overwrite: bool = False,
    ignore_existing: bool = False,
    store: Store | None = None,
) -> UnpackResult:
    """Extract the selected parts of a stored ModelKit into ``directory``.

    Every selected layer is read and verified (digest, safe paths, no clobbering) before the first
    byte is written; any failure undoes everything this call wrote.
    """
    selection = Selection(filters)  # malformed filters fail before anything is read
    store = store or open_store()
    mk = load_modelkit(reference, store)
    kf = mk.kitfile
    entries = kf.layer_entries()
    infos = kf.layer_info()
    dest = Path(directory)
    files: list[str] = []
    with Unpacker(dest, overwrite=overwrite, ignore_existing=ignore_existing) as unpacker:
        plans: list[tuple[Descriptor, LayerPlan]] = []
        seen: set[tuple[str, str]] = set()
        for entry, (digest, _diff_id) in zip(entries, infos, strict=True):
            if not selection.wants(entry):
                continue
            if not digest:
                raise FormatError(
                    f"{mk.reference}: {entry.kind} {entry.path!r} has no layer digest in the config",
                    "the ModelKit is incomplete; pack it again",
                )
            layer = _layer_for(entry, digest, mk.manifest.layers, mk.reference)
            kind = kitops.parse_layer_media_type(layer.media_type)
            filepath = clean_path(entry.path) if kind.encoding == "raw" else None
            if (layer.digest, filepath or "") in seen:
                continue  # two entries can share one blob; extract it once
            seen.add((layer.digest, filepath or ""))
            with store.open_blob(layer.digest) as blob:
                plans.append((layer, unpacker.scan(blob, layer.media_type, layer.digest, filepath=filepath)))
        kitfile_bytes = b""
        if selection.wants_kitfile():
            kitfile_bytes = dump_kitfile(kf).encode("utf-8")
            kitfile_plan = unpacker.scan(
                io.BytesIO(kitfile_bytes),
                _KITFILE_MEDIA_TYPE,
                digests.of_bytes(kitfile_bytes),
                filepath="Kitfile",
            )
        if not plans and not kitfile_bytes:
            raise UnpackError(
                f"the filters select nothing in {mk.reference}", "check the types and names given to --filter"
            )
        dest.mkdir(parents=True, exist_ok=True)
        for layer, plan in plans:
            with store.open_blob(layer.digest) as blob:
                unpacker.extract(blob, plan)
            files.extend(e.path for e in plan.entries if e.kind == "file")
        if kitfile_bytes:
            unpacker.extract(io.BytesIO(kitfile_bytes), kitfile_plan)
            files.append("Kitfile")
    return UnpackResult(mk.reference, dest, files)
