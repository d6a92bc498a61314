"""Unpack a ModelKit from the local store into a directory: verify and plan everything, then write."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kitbridge import transfer
from kitbridge.errors import NotFoundError, UnpackError
from kitbridge.filters import Selection
from kitbridge.home import open_store
from kitbridge.kitfile import LayerEntry, clean_path, dump_kitfile
from kitbridge.layers.extract import LayerPlan, Unpacker, layer_encoding
from kitbridge.modelkits import MAX_DOCUMENT_BYTES, ModelKit, kitfile_of, layer_for, load_modelkit
from kitbridge.oci import digest as digests
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.reference import Reference
from kitbridge.oci.store import Store
from kitbridge.progress import NoProgress, Progress
from kitbridge.transfer import RegistryOptions

# The Kitfile goes through the same verified, all-or-nothing path as a raw layer.
_KITFILE_MEDIA_TYPE = "application/vnd.kitops.modelkit.kitfile.v1.raw"


@dataclass(frozen=True)
class UnpackResult:
    """What ``unpack`` wrote: the reference and the relative paths of the files, in order."""

    reference: Reference
    directory: Path
    files: list[str]


def _selected(mk: ModelKit, selection: Selection) -> list[tuple[LayerEntry, Descriptor, str | None]]:
    """(entry, layer, raw file path or None) for each selected entry, each blob/path once."""
    out = []
    seen: set[tuple[str, str]] = set()
    for entry, (digest, _diff_id) in zip(mk.kitfile.layer_entries(), mk.kitfile.layer_info(), strict=True):
        if not selection.wants(entry):
            continue
        layer = layer_for(entry, digest, mk.manifest.layers, mk.reference)
        encoding, _compression = layer_encoding(layer.media_type)
        filepath = clean_path(entry.path) if encoding == "raw" else None
        if (layer.digest, filepath or "") in seen:
            continue  # two entries can share one blob; extract it once
        seen.add((layer.digest, filepath or ""))
        out.append((entry, layer, filepath))
    return out


def _unpack_modelkit(
    mk: ModelKit,
    store: Store,
    selection: Selection,
    dest: Path,
    *,
    overwrite: bool,
    ignore_existing: bool,
) -> UnpackResult:
    files: list[str] = []
    with Unpacker(dest, overwrite=overwrite, ignore_existing=ignore_existing) as unpacker:
        plans: list[tuple[Descriptor, LayerPlan]] = []
        for _entry, layer, filepath in _selected(mk, selection):
            with store.open_blob(layer.digest) as blob:
                plans.append((layer, unpacker.scan(blob, layer.media_type, layer.digest, filepath=filepath)))
        kitfile_bytes = b""
        if selection.wants_kitfile():
            kitfile_bytes = dump_kitfile(mk.kitfile).encode("utf-8")
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


def unpack(
    reference: str | Reference,
    directory: str | os.PathLike[str],
    *,
    filters: list[str] | None = None,
    overwrite: bool = False,
    ignore_existing: bool = False,
    store: Store | None = None,
    options: RegistryOptions | None = None,
    progress: Progress | None = None,
) -> UnpackResult:
    """Extract the selected parts of a ModelKit into ``directory``.

    A reference that is not in the local store but names a registry is read from there, fetching
    only the layers the filters select. Every selected layer is read and verified (digest, safe
    paths, no clobbering) before the first byte is written; any failure undoes everything.
    """
    selection = Selection(filters)  # malformed filters fail before anything is read
    store = store or open_store()
    ref = reference if isinstance(reference, Reference) else Reference.parse(reference)
    dest = Path(directory)
    try:
        store.resolve(ref)
    except NotFoundError:
        if ref.registry == "localhost":
            raise
        return _unpack_remote(
            ref,
            store,
            selection,
            dest,
            options or RegistryOptions(),
            progress,
            overwrite=overwrite,
            ignore_existing=ignore_existing,
        )
    mk = load_modelkit(ref, store)
    return _unpack_modelkit(mk, store, selection, dest, overwrite=overwrite, ignore_existing=ignore_existing)


def _unpack_remote(
    ref: Reference,
    store: Store,
    selection: Selection,
    dest: Path,
    options: RegistryOptions,
    progress: Progress | None,
    *,
    overwrite: bool,
    ignore_existing: bool,
) -> UnpackResult:
    # The fetched blobs land in the store unreferenced (a cache gc may clear later); holding the
    # writer lock keeps gc away until the unpack has read them.
    progress = progress or NoProgress()
    with transfer.client_for(ref, options) as client, store.writing():
        data, desc, manifest = transfer.fetch_manifest(client, ref)
        fetch = partial(
            transfer.fetch_blobs, client, ref, store=store, concurrency=options.concurrency, progress=progress
        )
        fetch([manifest.config])
        config = store.read_bytes(manifest.config.digest, limit=MAX_DOCUMENT_BYTES)
        mk = ModelKit(ref, desc, data, manifest, kitfile_of(ref, manifest, config))
        fetch([layer for _e, layer, _f in _selected(mk, selection)])
        return _unpack_modelkit(
            mk, store, selection, dest, overwrite=overwrite, ignore_existing=ignore_existing
        )
