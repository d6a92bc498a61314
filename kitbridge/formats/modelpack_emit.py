"""Write a packed Kitfile's layers as a CNCF ModelPack artifact: media types, annotations, config, manifest.

The layer blobs are the ones ``pack`` already wrote (the same bytes KitOps would use); only the
descriptors, the config and the manifest differ, so this is also what converting reuses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from kitbridge.formats import mediatypes as mt
from kitbridge.formats import modelpack
from kitbridge.formats.origin import PackOrigin
from kitbridge.kitfile import Kitfile, LayerEntry, ModelPart, clean_path, kitfile_json
from kitbridge.kitfile.generate import weight_file_role
from kitbridge.layers.ignore import IgnoreMatcher
from kitbridge.layers.walk import is_within, walk_layer
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.store import Store
from kitbridge.profile import ModelProfile, profile_files


def encoding_name(layer_format: str, compression: str) -> str:
    """ModelPack's encoding suffix for a layer: raw, tar, tar+gzip or tar+zstd."""
    if layer_format == "raw":
        return "raw"
    return {"none": "tar", "gzip": "tar+gzip", "zstd": "tar+zstd"}[compression]


def _mtime(path: Path, created: str, pinned: str | None = None) -> str:
    # SOURCE_DATE_EPOCH pins every timestamp, so the descriptors (and the manifest digest) reproduce.
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return created
    if pinned:  # the source's own date (an HF commit): the same on every machine that imports it
        return pinned
    return datetime.fromtimestamp(int(path.stat().st_mtime), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def layer_descriptor(
    layer: Descriptor,
    entry: LayerEntry,
    encoding: str,
    source: Path | None,
    created: str,
    legacy: bool,
    mtime: str | None = None,
) -> Descriptor:
    """The ModelPack descriptor of a layer blob: kind from the Kitfile entry, file metadata annotation."""
    path = clean_path(entry.path)
    name = PurePosixPath(path).name or path
    annotations = {
        modelpack.ANN_FILEPATH: path,
        modelpack.ANN_TITLE: name,
    }
    if source is not None and source.exists():
        st = source.stat()
        is_dir = source.is_dir()
        annotations[modelpack.ANN_FILE_METADATA] = modelpack.file_metadata_json(
            name,
            st.st_mode & 0o7777,
            0,
            0,
            0 if is_dir else st.st_size,
            _mtime(source, created, mtime),
            5 if is_dir else 0,
        )
    if legacy:
        annotations = {modelpack.to_legacy(k): v for k, v in annotations.items()}
    media_type = modelpack.layer_media_type(entry.kind, encoding, legacy)
    return Descriptor(media_type, layer.digest, layer.size, annotations)


def context_profile(ctx: Path) -> ModelProfile:
    """Profile every regular file under the pack context (headers only)."""
    files = sorted(
        os.path.relpath(os.path.join(d, f), ctx).replace(os.sep, "/")
        for d, _dirs, names in os.walk(ctx)
        for f in names
        if os.path.isfile(os.path.join(d, f))
    )
    return profile_files(ctx, files)


def modelpack_documents(
    store: Store,
    ctx: Path,
    kitfile: Kitfile,
    entries: list[LayerEntry],
    layers: list[Descriptor],
    diff_ids: list[str],
    encodings: Sequence[str],
    compression: str,
    created: str,
    legacy: bool,
    origin: PackOrigin | None = None,
) -> tuple[Descriptor, list[Descriptor], bytes]:
    """Config descriptor, ModelPack layer descriptors and manifest bytes for layers already in the store."""
    origin = origin or PackOrigin()
    mp_layers = [
        layer_descriptor(
            layer,
            entry,
            encoding_name(enc, "none" if enc == "raw" else compression),
            ctx / entry.path,
            created,
            legacy,
            origin.file_mtime,
        )
        for layer, entry, enc in zip(layers, entries, encodings, strict=True)
    ]
    config_data = modelpack.build_config(
        kitfile,
        diff_ids,
        profile=origin.profile or context_profile(ctx),
        created=created,
        source_url=origin.source_url,
        revision=origin.revision,
    )
    digest, size = store.put_bytes(config_data)
    config = Descriptor(modelpack.LEGACY_CONFIG if legacy else modelpack.CONFIG, digest, size)
    annotations = {
        modelpack.ANN_KITFILE: kitfile_json(kitfile).decode("utf-8"),
        mt.ANN_CREATED: created,
        **origin.annotations,
    }
    return config, mp_layers, modelpack.manifest_bytes(config, mp_layers, annotations, legacy=legacy)


def split_model_directory(ctx: Path, kitfile: Kitfile, warn: Callable[[str], None]) -> Kitfile:
    """ModelPack wants one weight file per layer: a model *directory* becomes its files.

    The first weight file (path order) becomes ``model.path``; every other file of the directory
    becomes a model part of its own (after the Kitfile's own parts), so each lands in its own raw
    layer. The rewritten Kitfile is the one the artifact carries. A directory without weight files
    is left as one tar layer.
    """
    model = kitfile.model
    if model is None or not model.path or not (ctx / model.path).is_dir():
        return kitfile
    others = [e.path for e in kitfile.layer_entries() if e.kind != "model"]
    files = [
        e.rel
        for e in walk_layer(ctx, model.path, others, IgnoreMatcher.from_context(ctx), warn)
        if not e.is_dir and is_within(e.rel, clean_path(model.path))
    ]
    weights = [f for f in files if weight_file_role(f)[0]]
    if not weights:
        return kitfile
    main = weights[0]
    parts = list(model.parts) + [ModelPart(path=f, type=weight_file_role(f)[1]) for f in files if f != main]
    return replace(kitfile, model=replace(model, path=main, parts=parts))
