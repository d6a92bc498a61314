"""Convert between KitOps ModelKits and CNCF ModelPack artifacts, reusing every layer blob.

Both formats hold the same layer encodings (tar, tar+gzip, tar+zstd, raw), so a conversion is a new
config and a new manifest over the same layer blobs: in the local store no layer byte is read or
written; in a registry only the config and the manifest go up (layers are mounted when the target
repository lacks them).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

from kitbridge import transfer
from kitbridge.errors import FormatError, NotFoundError, StoreError, UsageError
from kitbridge.formats import kitops, modelpack
from kitbridge.formats import mediatypes as mt
from kitbridge.formats.modelpack_emit import layer_descriptor
from kitbridge.home import open_store
from kitbridge.kitfile import LayerEntry, clean_path
from kitbridge.layers.extract import layer_encoding
from kitbridge.modelkits import MAX_DOCUMENT_BYTES, ModelKit, kitfile_of, layer_for, load_modelkit
from kitbridge.oci import digest as digests
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.reference import Reference
from kitbridge.oci.registry import RegistryClient
from kitbridge.oci.store import Store
from kitbridge.parallel import progress_hook, run_parallel
from kitbridge.progress import NoProgress
from kitbridge.provenance import options_key, provenance_annotations


@dataclass(frozen=True)
class ConvertResult:
    """The converted artifact: its reference and manifest, what crossed the wire, the blobs reused."""

    reference: Reference
    manifest: Descriptor
    to: str
    layers_reused: int
    bytes_uploaded: int = 0


@dataclass(frozen=True)
class Converted:
    """The documents of a converted artifact (the layers are the source's blobs)."""

    config: bytes
    config_media_type: str
    manifest: bytes
    layers: list[Descriptor]


def _diff_ids(mk: ModelKit) -> dict[str, str]:
    """Layer digest -> uncompressed digest, from whichever config the source has."""
    out = {d: diff for d, diff in mk.kitfile.layer_info() if d and diff}
    for layer in mk.manifest.layers:
        _encoding, compression = layer_encoding(layer.media_type)
        if compression == "none":
            out.setdefault(layer.digest, layer.digest)
    return out


def _encoding_suffix(media_type: str) -> str:
    encoding, compression = layer_encoding(media_type)
    if encoding == "raw":
        return "raw"
    return {"none": "tar", "gzip": "tar+gzip", "zstd": "tar+zstd"}[compression]


def converted_documents(
    mk: ModelKit, to: str, *, legacy_cnai: bool = False, layer_format: str | None = None
) -> Converted:
    """Config and manifest of ``mk`` in format ``to`` over its own layer blobs (nothing is written)."""
    if to not in ("kitops", "modelpack"):
        raise UsageError(f"unknown target format {to!r}", "use --to kitops or --to modelpack")
    entries: list[LayerEntry] = mk.kitfile.layer_entries()
    infos = mk.kitfile.layer_info()
    layers = [
        layer_for(e, d, mk.manifest.layers, mk.reference) for e, (d, _) in zip(entries, infos, strict=True)
    ]
    diff_of = _diff_ids(mk)
    missing = [layer.digest for layer in layers if layer.digest not in diff_of]
    if missing:
        raise FormatError(
            f"{mk.reference}: no uncompressed digest known for compressed layer {missing[0]}",
            "repack it, or convert from an artifact whose config records diffIds",
        )
    with_digests = mk.kitfile.with_layer_info([(layer.digest, diff_of[layer.digest]) for layer in layers])
    # A conversion does not make a new model: it keeps the source's creation time (so converting the
    # same artifact twice gives the same bytes, which reruns and batch jobs rely on).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    created = (None if epoch else mk.manifest.annotations.get(mt.ANN_CREATED)) or kitops.created_timestamp(
        epoch
    )
    new_layers: list[Descriptor] = []
    if to == "kitops":
        for entry, layer in zip(entries, layers, strict=True):
            encoding, compression = layer_encoding(layer.media_type)
            annotations = {mt.ANN_FILEPATH: clean_path(entry.path)}
            if entry.kind == "prompt":
                annotations[mt.ANN_LAYER_SUBTYPE] = "prompt"
            media_type = kitops.layer_media_type(entry.kind, encoding, compression)
            new_layers.append(Descriptor(media_type, layer.digest, layer.size, annotations))
        config = kitops.config_bytes(with_digests)
        config_media_type = mt.KITOPS_CONFIG
        annotations = {mt.ANN_CLI_VERSION: kitops.KIT_FORMAT_VERSION, mt.ANN_CREATED: created}
    else:
        for entry, layer in zip(entries, layers, strict=True):
            new_layers.append(
                layer_descriptor(layer, entry, _encoding_suffix(layer.media_type), None, created, legacy_cnai)
            )
        diff_ids = [diff_of[layer.digest] for layer in layers]
        config = modelpack.build_config(with_digests, diff_ids, profile=None, created=created)
        config_media_type = modelpack.LEGACY_CONFIG if legacy_cnai else modelpack.CONFIG
        annotations = {
            modelpack.ANN_KITFILE: kitops.config_bytes(with_digests).decode("utf-8"),
            mt.ANN_CREATED: created,
        }
    # Where it came from: batch reruns skip a target that already holds this conversion.
    annotations.update(
        provenance_annotations(
            mk.reference.name,
            mk.digest,
            options_key(to=to, legacy_cnai=legacy_cnai, layer_format=layer_format),
        )
    )
    config_desc = Descriptor(config_media_type, digests.of_bytes(config), len(config))
    if to == "kitops":
        manifest = kitops.manifest_bytes(config_desc, new_layers, annotations)
    else:
        manifest = modelpack.manifest_bytes(config_desc, new_layers, annotations, legacy=legacy_cnai)
    return Converted(config, config_media_type, manifest, new_layers)


def _in_store(store: Store, ref: Reference) -> bool:
    try:
        store.resolve(ref)
    except NotFoundError:
        return False
    return True


def convert(
    source: str | Reference,
    destination: str | Reference,
    *,
    to: str,
    legacy_cnai: bool = False,
    store: Store | None = None,
    options: transfer.RegistryOptions | None = None,
    layer_format: str | None = None,
) -> ConvertResult:
    """Write ``destination`` in format ``to`` over the layer blobs of ``source``.

    Local -> local writes two small blobs. When both name the same registry (and ``source`` is not
    in the local store), only the config and the manifest are uploaded; layers the target
    repository lacks are mounted from the source repository. Between two registries, layers the
    target lacks are streamed from one to the other through memory (not the local store).
    """
    store = store or open_store()
    src = source if isinstance(source, Reference) else Reference.parse(source)
    dst = destination if isinstance(destination, Reference) else Reference.parse(destination)
    if _in_store(store, src) or src.registry == "localhost":
        if dst.registry != "localhost" and not _in_store(store, src):
            raise NotFoundError(f"{src} is not in the local store", "pull it first")
        try:
            return _convert_local(store, src, dst, to, legacy_cnai, options, layer_format)
        except BaseException:
            # Leave the store as it was: drop blobs a failed re-encoding wrote (skipped when another
            # writer is busy, because its blobs look just as unreferenced as ours).
            with contextlib.suppress(StoreError):
                store.gc(timeout=0.2)
            raise
    if layer_format is not None:  # --layer-format re-encodes blobs of the local store (see reencode.py)
        raise UsageError(f"--layer-format needs {src} in the local store", "pull it first, then convert")
    if dst.registry != src.registry:
        return _convert_across_registries(src, dst, to, legacy_cnai, options or transfer.RegistryOptions())
    return _convert_in_registry(src, dst, to, legacy_cnai, options or transfer.RegistryOptions())


def _convert_local(
    store: Store,
    src: Reference,
    dst: Reference,
    to: str,
    legacy_cnai: bool,
    options: transfer.RegistryOptions | None,
    layer_format: str | None = None,
) -> ConvertResult:
    # One writer hold from the re-encoded blobs to the new reference: gc cannot drop them in between.
    with store.writing():
        mk = load_modelkit(src, store)
        if layer_format is not None:  # --layer-format: tar <-> raw re-encoding, see kitbridge/reencode.py
            from kitbridge.reencode import reencode_layers

            mk = reencode_layers(store, mk, layer_format)
        doc = converted_documents(mk, to, legacy_cnai=legacy_cnai, layer_format=layer_format)
        store.put_bytes(doc.config)
        digest, size = store.put_bytes(doc.manifest)
        manifest = Descriptor(mt.OCI_MANIFEST, digest, size)
        if dst.registry == "localhost":
            store.set_ref(dst.name, manifest)
            return ConvertResult(dst, manifest, to, len(doc.layers))
        store.set_ref(dst.name, manifest)
    pushed = transfer.push(dst, options=options, store=store)
    return ConvertResult(dst, manifest, to, len(doc.layers), pushed.bytes_sent)


def _convert_in_registry(
    src: Reference, dst: Reference, to: str, legacy_cnai: bool, options: transfer.RegistryOptions
) -> ConvertResult:
    with transfer.client_for(src, options) as client:
        data, desc, manifest = transfer.fetch_manifest(client, src)
        config = _download_small(client, src.repository, manifest.config.digest)
        mk = ModelKit(src, desc, data, manifest, kitfile_of(src, manifest, config))
        doc = converted_documents(mk, to, legacy_cnai=legacy_cnai)
        for layer in doc.layers:
            if (
                dst.repository != src.repository
                and client.blob_size(dst.repository, layer.digest) is None
                and not client.mount_blob(dst.repository, layer.digest, src.repository)
            ):
                raise FormatError(
                    f"{dst.registry} would not mount {layer.digest} from {src.repository}",
                    "pull, convert locally and push instead",
                )
        return _publish(client, dst, to, doc, uploaded=0)


def _convert_across_registries(
    src: Reference, dst: Reference, to: str, legacy_cnai: bool, options: transfer.RegistryOptions
) -> ConvertResult:
    """Registry -> another registry: each layer the target lacks streams straight through memory
    (downloaded from the source while it is uploaded to the target), never touching the local store."""
    from kitbridge.oci.blobpipe import BlobPipe
    from kitbridge.oci.registry import STREAM_CHUNK

    transfer.require_registry(dst)
    with transfer.client_for(src, options) as source, transfer.client_for(dst, options) as target:
        data, desc, manifest = transfer.fetch_manifest(source, src)
        config = _download_small(source, src.repository, manifest.config.digest)
        mk = ModelKit(src, desc, data, manifest, kitfile_of(src, manifest, config))
        doc = converted_documents(mk, to, legacy_cnai=legacy_cnai)
        tally = transfer._Counter()

        def send(layer: Descriptor, cancel: threading.Event) -> None:
            if target.blob_size(dst.repository, layer.digest) is not None:
                tally.add(skipped=1)
                return

            def download(sink: BinaryIO, offset: int, on_bytes: Callable[[int], None]) -> None:
                source.download_blob(src.repository, layer.digest, sink, offset=offset, on_bytes=on_bytes)

            with BlobPipe(download, layer.digest, layer.size, chunk=STREAM_CHUNK) as pipe:
                target.upload_blob(
                    dst.repository,
                    layer.digest,
                    layer.size,
                    pipe.open,
                    on_bytes=progress_hook(NoProgress(), "", cancel),
                )
            tally.add(blobs=1, nbytes=layer.size)

        unique = list({layer.digest: layer for layer in doc.layers}.values())
        run_parallel([partial(send, layer) for layer in unique], options.concurrency)
        return _publish(target, dst, to, doc, uploaded=tally.bytes)


def _publish(
    client: RegistryClient, dst: Reference, to: str, doc: Converted, *, uploaded: int
) -> ConvertResult:
    """Upload the converted config (unless the registry has it) and put the manifest; the layers are there."""
    config_digest = digests.of_bytes(doc.config)
    if client.blob_size(dst.repository, config_digest) is None:
        client.upload_blob(
            dst.repository, config_digest, len(doc.config), lambda off: io.BytesIO(doc.config[off:])
        )
        uploaded += len(doc.config)
    pushed = client.put_manifest(
        dst.repository, dst.tag or digests.of_bytes(doc.manifest), doc.manifest, mt.OCI_MANIFEST
    )
    uploaded += len(doc.manifest)
    return ConvertResult(
        dst, Descriptor(mt.OCI_MANIFEST, pushed, len(doc.manifest)), to, len(doc.layers), uploaded
    )


class _CappedBuffer(io.BytesIO):
    """An in-memory sink that refuses to grow past ``MAX_DOCUMENT_BYTES`` (a config is small)."""

    def write(self, data: Any, /) -> int:
        if self.tell() + len(data) > MAX_DOCUMENT_BYTES:
            raise FormatError("a config blob larger than 16 MiB", "that is no config; check the reference")
        return super().write(data)


def _download_small(client: RegistryClient, repo: str, digest: str) -> bytes:
    """A config blob from the registry, verified and size-capped while it downloads."""
    buf = _CappedBuffer()
    client.download_blob(repo, digest, buf)
    data = buf.getvalue()
    digests.check(digest, digests.of_bytes(data), f"config blob {digest}")
    return data
