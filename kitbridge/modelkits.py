"""ModelKits in the local store: load, inspect, list, tag and remove them."""

from __future__ import annotations

from dataclasses import dataclass

from kitbridge.errors import FormatError, ReferenceFormatError, StoreError, UsageError
from kitbridge.formats import kitops, modelpack
from kitbridge.formats.kitops import Manifest
from kitbridge.formats.modelpack import ANN_FILEPATH, LEGACY_ANN_FILEPATH
from kitbridge.home import open_store
from kitbridge.kitfile import Kitfile, LayerEntry, clean_path
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.reference import Reference
from kitbridge.oci.store import Store

# Manifests and configs are small JSON documents; anything larger is not one we wrote or can trust.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ModelKit:
    """A ModelKit as stored: its manifest (bytes, digest, parsed) and its Kitfile (from the config)."""

    reference: Reference
    descriptor: Descriptor
    manifest_bytes: bytes
    manifest: Manifest
    kitfile: Kitfile

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        """Bytes of config plus layers: what a pull would move."""
        return self.manifest.config.size + sum(layer.size for layer in self.manifest.layers)


def _ref(reference: str | Reference) -> Reference:
    return reference if isinstance(reference, Reference) else Reference.parse(reference)


def read_manifest(store: Store, reference: str | Reference) -> tuple[Reference, Descriptor, bytes, Manifest]:
    """Resolve a reference in the store and read its manifest (digest verified)."""
    ref = _ref(reference)
    desc = store.resolve(ref)
    data = store.read_bytes(desc.digest, limit=MAX_DOCUMENT_BYTES)
    return ref, desc, data, kitops.parse_manifest(data, f"manifest of {ref}")


def load_modelkit(reference: str | Reference, store: Store | None = None) -> ModelKit:
    """Read a ModelKit (KitOps or ModelPack) from the local store; FormatError for other artifacts."""
    store = store or open_store()
    ref, desc, data, manifest = read_manifest(store, reference)
    config = store.read_bytes(manifest.config.digest, limit=MAX_DOCUMENT_BYTES)
    return ModelKit(ref, desc, data, manifest, kitfile_of(ref, manifest, config))


def kitfile_of(ref: Reference, manifest: Manifest, config: bytes) -> Kitfile:
    """The Kitfile of a KitOps ModelKit (its config) or a ModelPack artifact (annotation, or rebuilt)."""
    if manifest.is_kitops:
        return kitops.read_config(config)
    if modelpack.is_modelpack(manifest):
        return modelpack.kitfile_for(manifest, modelpack.parse_config(config))
    raise FormatError(
        f"{ref} is neither a KitOps ModelKit nor a ModelPack artifact "
        f"(config type {manifest.config.media_type!r})",
        "pick a ModelKit or ModelPack reference",
    )


def inspect(reference: str | Reference, store: Store | None = None) -> tuple[bytes, str]:
    """The manifest bytes exactly as stored, and their digest."""
    store = store or open_store()
    _, desc, data, _ = read_manifest(store, reference)
    return data, desc.digest


def info(reference: str | Reference, store: Store | None = None) -> Kitfile:
    """The Kitfile of a stored ModelKit (layer digests included)."""
    return load_modelkit(reference, store).kitfile


@dataclass(frozen=True)
class ListEntry:
    """One row of ``kitbridge list``."""

    reference: Reference
    name: str
    size: int
    digest: str


def list_modelkits(store: Store | None = None) -> list[ListEntry]:
    """Every tagged ModelKit in the store, sorted by reference; other artifacts are skipped."""
    store = store or open_store()
    rows = []
    for name, _desc in store.refs():
        try:
            mk = load_modelkit(name, store)
        except (FormatError, ReferenceFormatError):
            continue  # another tool's artifact, or a name it wrote that is not a reference kit accepts
        kf = mk.kitfile
        display = kf.package.name or (kf.model.name if kf.model else "")
        rows.append(ListEntry(mk.reference, display, mk.size, mk.digest))
    return sorted(rows, key=lambda r: r.reference.name)


def tag(source: str | Reference, destination: str | Reference, store: Store | None = None) -> Reference:
    """Point a new reference at the manifest ``source`` resolves to."""
    store = store or open_store()
    src, dst = _ref(source), _ref(destination)
    if dst.tag is None:
        raise UsageError(f"destination {dst} has no tag", "give the new name a tag, e.g. repo/model:v2")
    desc = store.resolve(src)
    with store.writing():
        store.set_ref(dst.name, desc)
    return dst


def remove(reference: str | Reference, store: Store | None = None) -> tuple[Descriptor, list[str] | None]:
    """Untag ``reference`` and delete the blobs no other reference needs.

    Returns the removed descriptor and the deleted blob digests, or None for the latter when a
    concurrent pack kept garbage collection from running (its blobs are removed by a later one).
    """
    store = store or open_store()
    ref = _ref(reference)
    desc = store.remove_ref(ref.name)
    try:
        return desc, store.gc(timeout=10)
    except StoreError:
        return desc, None


def layer_for(entry: LayerEntry, digest: str, layers: list[Descriptor], ref: Reference) -> Descriptor:
    """The manifest layer of a Kitfile entry: by digest (KitOps, our ModelPack), else by file path.

    ModelPack artifacts from other tools carry no digests in their Kitfile (modctl has none at
    all: it is rebuilt from the layers), but every layer names its path.
    """
    for layer in layers:
        if digest and layer.digest == digest:
            return layer
    want = clean_path(entry.path)
    for layer in layers:
        ann = layer.annotations
        if (ann.get(ANN_FILEPATH) or ann.get(LEGACY_ANN_FILEPATH)) == want:
            return layer
    raise FormatError(
        f"{ref}: no layer holds {entry.kind} {entry.path!r}",
        "the artifact is inconsistent; pack or pull it again",
    )
