"""``convert --layer-format``: change a layer's encoding (tar <-> raw) while converting, streaming.

* a tar layer (any compression) that holds exactly one regular file at the entry's path, plus
  that file's parent directories, becomes a **raw** layer: the file's bytes, digest = diffId = its
  sha256. The source blob is hashed while it is read and checked against its digest.
* a **raw** layer becomes an uncompressed **tar** layer holding that file under the entry's path,
  its parent directories (mode 0755) first, written by the project's Go-compatible tar writer
  straight from the stored blob. The file's mode comes from the ModelPack
  ``org.cncf.model.file.metadata+json`` annotation when the layer has one, else 0644. The raw
  blob's digest is checked in the same pass (the writer's sink hashes the file's byte range).

A layer already in the asked encoding is kept as it is (a ``tar+gzip`` layer asked to be ``tar``
too); MCP server layers always stay raw, as pack writes them. A tar layer that cannot become raw
(several files, a directory of its own, a link, or a file not at the entry's path) is an error,
like ``kit`` and like ``pack --layer-format raw``: nothing is converted, and ``convert`` drops the
blobs this attempt wrote (at once when no other writer is busy, else at the next gc).

New blobs are written under ``store.writing()``; ``convert`` holds that lock from here until the
new reference is set, so a concurrent ``gc`` cannot drop them in between.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tarfile
from pathlib import PurePosixPath

from kitbridge.errors import FormatError, UsageError
from kitbridge.formats import kitops, modelpack
from kitbridge.kitfile import LayerEntry, clean_path
from kitbridge.layers.extract import _HashingReader, _open_tar, layer_encoding
from kitbridge.layers.walk import WalkEntry
from kitbridge.layers.write import write_tar_layer
from kitbridge.modelkits import ModelKit, layer_for
from kitbridge.oci import digest as digests
from kitbridge.oci import tar
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.store import Store

LAYER_FORMATS = ("tar", "raw")
DIR_MODE = 0o755
FILE_MODE = 0o644


def reencode_layers(store: Store, mk: ModelKit, layer_format: str) -> ModelKit:
    """``mk`` with each layer in ``layer_format`` (new blobs in ``store``); the Kitfile's digests follow.

    The returned ModelKit's ``manifest`` and ``kitfile`` describe the new layers (what
    ``converted_documents`` reads); its ``manifest_bytes`` and ``descriptor`` are still the source's.
    """
    if layer_format not in LAYER_FORMATS:
        raise UsageError(f"unknown layer format {layer_format!r}", "use --layer-format tar or raw")
    entries = mk.kitfile.layer_entries()
    infos = mk.kitfile.layer_info()
    layers = list(mk.manifest.layers)
    new_info: list[tuple[str, str]] = []
    done: dict[tuple[int, str], tuple[Descriptor, str]] = {}
    with store.writing():
        for entry, (digest, diff_id) in zip(entries, infos, strict=True):
            layer = layer_for(entry, digest, mk.manifest.layers, mk.reference)
            index = next(i for i, d in enumerate(mk.manifest.layers) if d is layer)
            key = (index, clean_path(entry.path))
            if key not in done:
                done[key] = _reencoded(store, mk, entry, layer, diff_id, layer_format)
            new_layer, new_diff = done[key]
            layers[index] = new_layer
            new_info.append((new_layer.digest, new_diff))
    manifest = dataclasses.replace(mk.manifest, layers=layers)
    return dataclasses.replace(mk, manifest=manifest, kitfile=mk.kitfile.with_layer_info(new_info))


def _reencoded(
    store: Store, mk: ModelKit, entry: LayerEntry, layer: Descriptor, diff_id: str, layer_format: str
) -> tuple[Descriptor, str]:
    """(descriptor, diffId) of ``layer`` in ``layer_format``: the same layer when nothing changes."""
    encoding, _compression = layer_encoding(layer.media_type)
    if encoding == layer_format or entry.kind == "mcpserver":
        return layer, diff_id or layer.digest
    path = clean_path(entry.path)
    if path in (".", "") or path.startswith("../"):
        raise _cannot(mk, entry, layer, f"its path {entry.path!r} does not name one file", layer_format)
    if layer_format == "raw":
        digest, size = _tar_to_raw(store, mk, entry, layer, path)
        return Descriptor(_media_type(entry, layer, "raw"), digest, size, layer.annotations), digest
    digest, size = _raw_to_tar(store, layer, path, _file_mode(layer))
    return Descriptor(_media_type(entry, layer, "tar"), digest, size, layer.annotations), digest


def _media_type(entry: LayerEntry, layer: Descriptor, encoding: str) -> str:
    """The layer's media type in ``encoding``, in the source's own family (KitOps or ModelPack)."""
    try:
        kind, _old = modelpack.parse_layer_media_type(layer.media_type)
    except FormatError:  # not a ModelPack name: a KitOps one
        return kitops.layer_media_type(entry.kind, "raw" if encoding == "raw" else "tar", "none")
    legacy = modelpack.is_legacy_name(layer.media_type)
    prefix = modelpack.LEGACY_LAYER_PREFIX if legacy else modelpack.LAYER_PREFIX
    return f"{prefix}{kind}.v1.{encoding}"


def _file_mode(layer: Descriptor) -> int:
    """The file's permission bits from the ModelPack file-metadata annotation, else 0644."""
    for key in (modelpack.ANN_FILE_METADATA, modelpack.to_legacy(modelpack.ANN_FILE_METADATA)):
        value = layer.annotations.get(key)
        if value:
            meta = modelpack.parse_file_metadata(value)
            if meta.typeflag == modelpack.TYPEFLAG_REGULAR:
                return meta.mode & 0o7777
    return FILE_MODE


def _cannot(mk: ModelKit, entry: LayerEntry, layer: Descriptor, why: str, layer_format: str) -> UsageError:
    return UsageError(
        f"{mk.reference}: {entry.location} {entry.path!r} (layer {layer.digest}) cannot become a "
        f"{layer_format} layer: {why}",
        "raw layers hold exactly one file; convert without --layer-format raw, or with --layer-format tar",
    )


def _tar_to_raw(
    store: Store, mk: ModelKit, entry: LayerEntry, layer: Descriptor, path: str
) -> tuple[str, int]:
    """Stream the one regular file out of a tar layer into a new raw blob; verify the tar's digest."""
    _encoding, compression = layer_encoding(layer.media_type)
    parents = {str(p) for p in PurePosixPath(path).parents if str(p) != "."}
    with store.open_blob(layer.digest) as f, store.stage() as staged:
        raw = _HashingReader(f)
        found = False
        try:
            tf = _open_tar(raw, compression)
            for member in tf:
                name = "/".join(p for p in member.name.split("/") if p not in ("", "."))
                if member.isdir() and (name in parents or name == ""):
                    continue
                if member.isdir():
                    why = f"it holds the directory {member.name!r}"
                elif not member.isreg() or member.sparse is not None:
                    why = f"it holds {member.name!r}, which is not a regular file"
                elif name != path:
                    why = f"it holds the file {member.name!r}, not {path!r}"
                elif found:
                    why = f"it holds {path!r} more than once"
                else:
                    found = True
                    src = tf.extractfile(member)
                    assert src is not None
                    while chunk := src.read(digests.CHUNK):
                        staged.write(chunk)
                    continue
                raise _cannot(mk, entry, layer, why, "raw")
        except tarfile.TarError as e:
            raise UsageError(
                f"{mk.reference}: layer {layer.digest} is not a readable tar: {e}",
                "pull or pack the ModelKit again",
            ) from None
        raw.check(layer.digest)
        if not found:
            raise _cannot(mk, entry, layer, f"it holds no file {path!r}", "raw")
        store.commit(staged)
        return staged.digest, staged.size


class _FileCheckingSink:
    """Writes the tar stream to a staging fd; hashes the byte range that is the file's content."""

    def __init__(self, fd: int, start: int, size: int) -> None:
        self._fd, self._start, self._end = fd, start, start + size
        self._pos = 0
        self.file_hash = hashlib.sha256()

    def write(self, data: memoryview, /) -> int | None:
        n = os.write(self._fd, data)
        lo, hi = max(self._start, self._pos), min(self._end, self._pos + n)
        if lo < hi:
            self.file_hash.update(data[lo - self._pos : hi - self._pos])
        self._pos += n
        return n


def _raw_to_tar(store: Store, layer: Descriptor, path: str, mode: int) -> tuple[str, int]:
    """Write an uncompressed tar layer holding the raw blob as ``path``; verify the raw blob's digest."""
    size = store.blob_size(layer.digest)
    dirs = [str(p) for p in reversed(PurePosixPath(path).parents) if str(p) != "."]
    blob = store.blob_path(layer.digest)
    walk = [WalkEntry(d, blob.parent, True, DIR_MODE, 0) for d in dirs]
    walk.append(WalkEntry(path, blob, False, mode, size))
    start = sum(len(tar.entry_header(d, DIR_MODE, 0, True)) for d in dirs)
    start += len(tar.entry_header(path, mode, size, False))
    with store.stage() as staged:
        staged.file.flush()
        sink = _FileCheckingSink(staged.file.fileno(), start, size)
        result = write_tar_layer(walk, sink, "none")
        digests.check(layer.digest, "sha256:" + sink.file_hash.hexdigest(), f"layer {layer.digest}")
        store.commit(staged, result.digest)
    return result.digest, result.size
