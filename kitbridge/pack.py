"""Pack a context directory into a KitOps ModelKit in the local store, streaming each byte once."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kitbridge.errors import PackError, StoreError, UsageError
from kitbridge.formats import kitops
from kitbridge.formats import mediatypes as mt
from kitbridge.formats.origin import PackOrigin
from kitbridge.home import open_store
from kitbridge.kitfile import (
    Kitfile,
    LayerEntry,
    clean_path,
    is_modelkit_reference,
    read_kitfile,
    validate_kitfile,
)
from kitbridge.layers.ignore import IgnoreMatcher
from kitbridge.layers.walk import layer_is_single_file, walk_layer
from kitbridge.layers.write import write_tar_layer
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.reference import Reference
from kitbridge.oci.store import Store
from kitbridge.oci.writeback import WriteBehind, set_direct, write_direct
from kitbridge.progress import NoProgress, Progress


@dataclass(frozen=True)
class PackResult:
    """What ``pack`` produced: the reference it tagged and the manifest it wrote."""

    reference: Reference
    manifest: Descriptor
    config: Descriptor
    layers: list[Descriptor]
    tagged: bool = True
    """False when some layer blobs were left remote (``PackOrigin.remote``): only push can use it."""


class _LayerSink:
    """The staging file a layer streams into, written with direct I/O where it works; reports progress.

    Called from the layer writer's I/O thread. With ``direct`` (uncompressed tar layers, whose
    writer hands over page-aligned 2 MiB buffers), the file is switched to ``O_DIRECT``: the disk
    reads the bytes straight from those buffers, so no page-cache copy competes with the hashing
    for a CPU and the fsync at commit has no data left to flush (see ``oci/writeback.py``). The
    first write the kernel refuses (EINVAL: a filesystem without direct I/O, a tail that is not a
    multiple of the device's block size) switches the file back to buffered writes for the rest of
    the layer, kept short of dirty pages by ``WriteBehind``. Either way every
    byte is written with ``os.write`` on the fd, bypassing ``f``'s buffer, so ``commit`` sees them.
    """

    def __init__(self, f: BinaryIO, progress: Progress, task: str, *, direct: bool = False) -> None:
        self._progress, self._task = progress, task
        f.flush()
        self._fd = f.fileno()
        self._direct = direct and set_direct(self._fd, True)
        self._written = 0
        self._behind = WriteBehind(self._fd)

    @property
    def direct(self) -> bool:
        """Whether writes still go to the disk directly (False once it fell back to buffered)."""
        return self._direct

    def write(self, data: memoryview, /) -> int | None:
        if self._direct:
            n = write_direct(self._fd, data)
            if n is not None:
                self._advance(n)
                return n
            # Refused, nothing written: go on buffered. The bytes so far are on the disk already.
            self._direct = False
            set_direct(self._fd, False)
            self._behind.reset(self._written)
        n = os.write(self._fd, data)
        self._advance(n)
        self._behind.wrote(n)
        return n

    def _advance(self, n: int) -> None:
        self._written += n
        self._progress.advance(self._task, n)


def _layer_task(entry: LayerEntry) -> str:
    label = entry.kind if entry.kind != "modelpart" else "part"
    return f"{label} {entry.path or '.'}"


def _pack_layer(
    store: Store,
    context: Path,
    entry: LayerEntry,
    others: list[str],
    ignore: IgnoreMatcher,
    layer_format: kitops.LayerFormat,
    compression: kitops.Compression,
    warn: Callable[[str], None],
    progress: Progress,
    origin: PackOrigin,
) -> tuple[Descriptor, str]:
    """Write one layer blob into the store; return its descriptor and diffId."""
    fmt: kitops.LayerFormat = "raw" if entry.kind == "mcpserver" else layer_format
    media_type = kitops.layer_media_type(entry.kind, fmt, compression)
    annotations = {mt.ANN_FILEPATH: clean_path(entry.path)}
    if entry.kind == "prompt":
        annotations[mt.ANN_LAYER_SUBTYPE] = "prompt"
    task = _layer_task(entry)
    if fmt == "raw":
        src = layer_is_single_file(context, entry.path)
        if src is None:
            raise PackError(
                f"{entry.kind} path {entry.path!r} is not a single regular file, so it cannot be a raw layer",
                "raw layers hold exactly one file; use --layer-format tar for directories",
            )
        rel = clean_path(entry.path)
        if rel in origin.remote:
            digest = origin.remote[rel]
            return Descriptor(media_type, digest, src.stat().st_size, annotations), digest
        progress.start(task, src.stat().st_size)
        digest, size = store.ingest_file(src, origin.digests.get(rel))
        progress.advance(task, size)
        progress.finish(task)
        return Descriptor(media_type, digest, size, annotations), digest
    inside = [p for p in origin.remote if _under(p, clean_path(entry.path))]
    if inside:
        raise PackError(
            f"{inside[0]!r} was not downloaded but would go into the tar layer of {entry.path!r}",
            "only raw layers can reuse a blob the registry has; fetch the file first",
        )
    progress.start(task, None)
    with store.stage() as staged:
        entries = walk_layer(context, entry.path, others, ignore, warn)
        sink = _LayerSink(staged.file, progress, task, direct=compression == "none")
        result = write_tar_layer(entries, sink, compression)
        store.commit(staged, result.digest)
    progress.finish(task)
    return Descriptor(media_type, result.digest, result.size, annotations), result.diff_id


def _under(path: str, entry_path: str) -> bool:
    return entry_path in ("", ".") or path == entry_path or path.startswith(entry_path.rstrip("/") + "/")


def load_context_kitfile(context: Path, kitfile: Path | None) -> Kitfile:
    """Read and validate the Kitfile (``-f`` or the one in the context) before any byte is packed."""
    kf = read_kitfile(kitfile if kitfile is not None else context)
    validate_kitfile(kf)
    return kf


def pack(
    context: str | os.PathLike[str],
    reference: str | Reference,
    *,
    kitfile: str | os.PathLike[str] | None = None,
    fmt: str = "kitops",
    layer_format: kitops.LayerFormat | None = None,
    compression: kitops.Compression = "none",
    legacy_cnai: bool = False,
    store: Store | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    origin: PackOrigin | None = None,
) -> PackResult:
    """Pack ``context`` as a KitOps ModelKit (or a CNCF ModelPack artifact), tag it in the local store.

    One layer per Kitfile entry in kit's order; for KitOps an uncompressed tar layer and the config
    are byte-identical to what ``kit pack`` writes. ``layer_format`` None means the format's default
    (KitOps: tar; ModelPack: raw for single files, tar for directories). A failure leaves the
    store's index as it was.
    """
    if fmt not in ("kitops", "modelpack"):
        raise UsageError(f"unknown format {fmt!r}", "use kitops or modelpack")
    ctx = Path(context)
    if not ctx.is_dir():
        raise PackError(f"context {str(ctx)!r} is not a directory", "pass the folder that holds your Kitfile")
    ref = reference if isinstance(reference, Reference) else Reference.parse(reference)
    if ref.tag is None and ref.digest is not None:
        raise UsageError(f"cannot tag a pack with a digest reference {ref}", "use a tag, e.g. repo/model:1")
    kf = load_context_kitfile(ctx, Path(kitfile) if kitfile is not None else None)
    if (
        kf.model is not None
        and kf.model.path
        and kf.model.path not in ("", ".")
        and is_modelkit_reference(kf.model.path)
    ):
        raise PackError(
            f"model.path {kf.model.path!r} refers to another ModelKit; "
            "kitbridge cannot pack on top of a parent ModelKit yet",
            "point model.path at local files",
        )
    warn = warn or (lambda _msg: None)
    progress = progress or NoProgress()
    store = store or open_store()
    if fmt == "modelpack":
        from kitbridge.formats.modelpack_emit import split_model_directory

        kf = split_model_directory(ctx, kf, warn)
    try:
        return _pack_into(
            store,
            ctx,
            ref,
            kf,
            fmt,
            layer_format,
            compression,
            legacy_cnai,
            warn,
            progress,
            origin or PackOrigin(),
        )
    except BaseException:
        # Leave the store as it was: drop the blobs this attempt added. Skipped (for the next gc)
        # when another writer is busy, because its blobs look just as unreferenced as ours.
        with contextlib.suppress(StoreError):
            store.gc(timeout=0.2)
        raise


def _layer_encoding(
    context: Path, entry: LayerEntry, fmt: str, layer_format: kitops.LayerFormat | None
) -> kitops.LayerFormat:
    """tar or raw for one entry: what was asked, else the format's default.

    KitOps defaults to tar (byte-identical to kit). ModelPack wants one file per layer, raw: a
    single-file entry is raw, a directory is a tar.
    """
    if entry.kind == "mcpserver":
        return "raw"
    if layer_format is not None:
        return layer_format
    if fmt == "modelpack" and layer_is_single_file(context, entry.path) is not None:
        return "raw"
    return "tar"


def _pack_into(
    store: Store,
    ctx: Path,
    ref: Reference,
    kf: Kitfile,
    fmt: str,
    layer_format: kitops.LayerFormat | None,
    compression: kitops.Compression,
    legacy_cnai: bool,
    warn: Callable[[str], None],
    progress: Progress,
    origin: PackOrigin,
) -> PackResult:
    entries = kf.layer_entries()
    ignore = IgnoreMatcher.from_context(ctx)
    all_paths = [e.path for e in entries]
    layers: list[Descriptor] = []
    diff_ids: list[str] = []
    encodings: list[kitops.LayerFormat] = []
    created = kitops.created_timestamp(os.environ.get("SOURCE_DATE_EPOCH"))
    with store.writing():
        for i, entry in enumerate(entries):
            others = all_paths[:i] + all_paths[i + 1 :]
            encoding = _layer_encoding(ctx, entry, fmt, layer_format)
            # Compression applies to tar layers; a file that became raw by default stays uncompressed.
            layer_compression: kitops.Compression = (
                "none" if encoding == "raw" and layer_format is None else compression
            )
            desc, diff_id = _pack_layer(
                store, ctx, entry, others, ignore, encoding, layer_compression, warn, progress, origin
            )
            layers.append(desc)
            diff_ids.append(diff_id)
            encodings.append(encoding)
        with_digests = kf.with_layer_info(
            [(d.digest, diff) for d, diff in zip(layers, diff_ids, strict=True)]
        )
        if fmt == "modelpack":
            from kitbridge.formats.modelpack_emit import modelpack_documents

            config, layers, manifest_data = modelpack_documents(
                store,
                ctx,
                with_digests,
                entries,
                layers,
                diff_ids,
                encodings,
                compression,
                created,
                legacy_cnai,
                origin,
            )
        else:
            config_data = kitops.config_bytes(with_digests)
            config_digest, config_size = store.put_bytes(config_data)
            config = Descriptor(mt.KITOPS_CONFIG, config_digest, config_size)
            annotations = {
                mt.ANN_CLI_VERSION: kitops.KIT_FORMAT_VERSION,
                mt.ANN_CREATED: created,
                **origin.annotations,
            }
            manifest_data = kitops.manifest_bytes(config, layers, annotations)
        manifest_digest, manifest_size = store.put_bytes(manifest_data)
        manifest = Descriptor(mt.OCI_MANIFEST, manifest_digest, manifest_size)
        if origin.remote:
            # Some layer blobs are only in the registry: an index entry would name missing blobs.
            return PackResult(ref, manifest, config, layers, tagged=False)
        store.set_ref(ref.name, manifest)
    return PackResult(ref, manifest, config, layers)
