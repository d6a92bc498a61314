"""Push and pull artifacts between the local store and OCI registries: streamed, parallel, resumable."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from kitbridge.errors import DigestMismatchError, FormatError, UsageError
from kitbridge.formats import kitops
from kitbridge.formats.kitops import Manifest
from kitbridge.home import home_dir, open_store
from kitbridge.modelkits import MAX_DOCUMENT_BYTES, read_manifest
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.locations import BlobLocations
from kitbridge.oci.reference import Reference
from kitbridge.oci.registry import RegistryClient
from kitbridge.oci.store import Store
from kitbridge.parallel import progress_hook, run_parallel
from kitbridge.progress import NoProgress, Progress


@dataclass(frozen=True)
class RegistryOptions:
    """How to talk to a registry: the CLI's --plain-http, --tls-verify, --ca-file, --concurrency."""

    plain_http: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    concurrency: int = 4


@dataclass(frozen=True)
class TransferResult:
    """What a push or pull did: the manifest moved, and how many blobs/bytes actually crossed the wire."""

    reference: Reference
    manifest: Descriptor
    blobs_sent: int
    bytes_sent: int
    blobs_skipped: int
    blobs_mounted: int = 0


def _ref(reference: str | Reference) -> Reference:
    return reference if isinstance(reference, Reference) else Reference.parse(reference)


def require_registry(ref: Reference) -> Reference:
    """A reference that names a real registry; ``localhost`` without a port is kit's local-only default."""
    if ref.registry == "localhost":
        raise UsageError(
            f"{ref.name} names no registry",
            "give one, e.g. registry.example.com/org/model:1 or localhost:5000/model:1",
        )
    return ref


def client_for(ref: Reference, options: RegistryOptions) -> RegistryClient:
    """A registry client for the registry ``ref`` names, with the user's transport options."""
    return RegistryClient(
        ref.registry, plain_http=options.plain_http, tls_verify=options.tls_verify, ca_file=options.ca_file
    )


def _blobs_of(manifest: Manifest) -> list[Descriptor]:
    seen: set[str] = set()
    out = []
    for d in [manifest.config, *manifest.layers]:
        if d.digest not in seen:
            seen.add(d.digest)
            out.append(d)
    return out


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


class _Counter:
    """Thread-safe tallies of what crossed the wire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.blobs = self.bytes = self.skipped = self.mounted = 0

    def add(self, *, blobs: int = 0, nbytes: int = 0, skipped: int = 0, mounted: int = 0) -> None:
        with self._lock:
            self.blobs += blobs
            self.bytes += nbytes
            self.skipped += skipped
            self.mounted += mounted


class _StalePartial(DigestMismatchError):
    """A resumed download did not verify: the partial file from an earlier attempt was bad."""


def push(
    reference: str | Reference,
    destination: str | Reference | None = None,
    *,
    options: RegistryOptions | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Push a stored artifact to a registry: blobs the registry has are skipped (or mounted), the rest
    are streamed from the store in parallel, then the manifest goes up as its exact stored bytes."""
    store = store or open_store()
    src = _ref(reference)
    dst = require_registry(_ref(destination) if destination is not None else src)
    _, desc, data, manifest = read_manifest(store, src)
    return _push(store, desc, data, manifest, dst, options or RegistryOptions(), progress or NoProgress())


def push_manifest(
    manifest: Descriptor,
    destination: str | Reference,
    *,
    options: RegistryOptions | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Push a manifest that is in the store but not tagged there (its blobs may be only in the registry).

    Blobs the registry lacks are uploaded from the store; one that is in neither is a NotFoundError
    from the store before the manifest goes up.
    """
    store = store or open_store()
    dst = require_registry(_ref(destination))
    data = store.read_bytes(manifest.digest, limit=MAX_DOCUMENT_BYTES)
    parsed = kitops.parse_manifest(data, f"manifest {manifest.digest}")
    return _push(store, manifest, data, parsed, dst, options or RegistryOptions(), progress or NoProgress())


def _push(
    store: Store,
    desc: Descriptor,
    data: bytes,
    manifest: Manifest,
    dst: Reference,
    options: RegistryOptions,
    progress: Progress,
) -> TransferResult:
    locations = BlobLocations(home_dir())
    tally = _Counter()
    with client_for(dst, options) as client:

        def send(blob: Descriptor, cancel: threading.Event) -> None:
            if client.blob_size(dst.repository, blob.digest) is not None:
                tally.add(skipped=1)
                return
            for repo in locations.repositories(dst.registry, blob.digest):
                if repo != dst.repository and client.mount_blob(dst.repository, blob.digest, repo):
                    tally.add(mounted=1)
                    return
            task = f"push {_short(blob.digest)}"
            progress.start(task, blob.size)

            def open_src(offset: int) -> BinaryIO:
                f = store.open_blob(blob.digest)
                f.seek(offset)
                return f

            client.upload_blob(
                dst.repository,
                blob.digest,
                blob.size,
                open_src,
                on_bytes=progress_hook(progress, task, cancel),
            )
            progress.finish(task)
            tally.add(blobs=1, nbytes=blob.size)

        blobs = _blobs_of(manifest)
        run_parallel([partial(send, b) for b in blobs], options.concurrency)
        pushed = client.put_manifest(dst.repository, dst.tag or desc.digest, data, desc.media_type)
        if pushed != desc.digest:
            raise DigestMismatchError(
                f"the registry stored the manifest as {pushed}, not {desc.digest}",
                "the registry rewrote the manifest; push to an OCI-compliant registry",
            )
    locations.record(dst.registry, dst.repository, [b.digest for b in blobs])
    return TransferResult(dst, desc, tally.blobs, tally.bytes, tally.skipped, tally.mounted)


def registry_has_blobs(
    destination: str | Reference, digests: list[str], options: RegistryOptions | None = None
) -> set[str]:
    """The digests a registry repository already holds, or can mount from a repository we pushed them to."""
    options = options or RegistryOptions()
    dst = require_registry(_ref(destination))
    locations = BlobLocations(home_dir())
    found: set[str] = set()
    with client_for(dst, options) as client:
        for d in digests:
            if client.blob_size(dst.repository, d) is not None:
                found.add(d)
                continue
            for repo in locations.repositories(dst.registry, d):
                if repo != dst.repository and client.blob_size(repo, d) is not None:
                    found.add(d)
                    break
    return found


def fetch_blobs(
    client: RegistryClient,
    ref: Reference,
    blobs: list[Descriptor],
    store: Store,
    *,
    concurrency: int,
    progress: Progress,
) -> _Counter:
    """Download the blobs the store lacks, each straight into a resumable staging file, in parallel."""
    tally = _Counter()

    def fetch(blob: Descriptor, cancel: threading.Event) -> None:
        if store.has_blob(blob.digest):
            tally.add(skipped=1)
            return
        task = f"pull {_short(blob.digest)}"
        progress.start(task, blob.size)
        try:
            download(blob, task, cancel)
        except _StalePartial:
            # What an earlier attempt left was bad (cut off after corruption, a damaged disk): it is
            # deleted by now, so this second try downloads the blob whole.
            progress.finish(task)
            progress.start(task, blob.size)
            download(blob, task, cancel)
        progress.finish(task)
        tally.add(blobs=1, nbytes=blob.size)

    def download(blob: Descriptor, task: str, cancel: threading.Event) -> None:
        with store.resume_stage(blob.digest) as staged:
            resumed_from = staged.size
            progress.advance(task, resumed_from)
            client.download_blob(
                ref.repository,
                blob.digest,
                staged,  # type: ignore[arg-type]  # StagedBlob.write hashes as it writes
                offset=staged.size,
                on_bytes=progress_hook(progress, task, cancel),
            )
            if staged.size != blob.size or staged.digest != blob.digest:
                if resumed_from:
                    raise _StalePartial(f"partial download of {blob.digest} was bad", None)
                raise DigestMismatchError(
                    f"blob {blob.digest} from {ref.registry}/{ref.repository} arrived as {staged.digest} "
                    f"({staged.size} of {blob.size} bytes)",
                    "the registry or the network corrupted it; that blob was not stored, pull again",
                )
            store.commit(staged, blob.digest)

    run_parallel([partial(fetch, b) for b in blobs], concurrency)
    return tally


def fetch_manifest(client: RegistryClient, ref: Reference) -> tuple[bytes, Descriptor, Manifest]:
    """The manifest ``ref`` names on its registry: exact bytes, descriptor, parsed form."""
    data, media_type, digest = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FormatError(
            f"manifest of {ref.name} is {len(data)} bytes", "that is no manifest; check the reference"
        )
    manifest = kitops.parse_manifest(data, f"manifest of {ref.name}")
    return data, Descriptor(media_type or manifest.media_type, digest, len(data)), manifest


def local_name(ref: Reference, digest: str) -> str:
    """The name a pulled artifact gets in the store: its tag, or for ``repo@sha256:…`` the tag
    ``sha256-<hex>`` (a pull by digest must not move the ``latest`` a user already has)."""
    if ref.tag:
        return ref.name
    return ref.with_tag(digest.replace(":", "-")).name


def pull(
    reference: str | Reference,
    *,
    options: RegistryOptions | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Pull an artifact into the local store under the same reference; blobs already there are not fetched.

    Every blob is verified against its digest before it is stored; an interrupted pull resumes each
    partial blob where it stopped. The reference is set only after every blob is in place.
    """
    options = options or RegistryOptions()
    store = store or open_store()
    progress = progress or NoProgress()
    ref = require_registry(_ref(reference))
    with client_for(ref, options) as client:
        data, desc, manifest = fetch_manifest(client, ref)
        with store.writing():
            tally = fetch_blobs(
                client, ref, _blobs_of(manifest), store, concurrency=options.concurrency, progress=progress
            )
            digest, _ = store.put_bytes(data)
            if digest != desc.digest:
                raise DigestMismatchError(f"manifest of {ref.name} changed in transit", "pull again")
            store.set_ref(local_name(ref, desc.digest), desc)
    BlobLocations(home_dir()).record(ref.registry, ref.repository, [b.digest for b in _blobs_of(manifest)])
    return TransferResult(ref, desc, tally.blobs, tally.bytes, tally.skipped)


def remote_manifest(reference: str | Reference, options: RegistryOptions | None = None) -> tuple[bytes, str]:
    """``inspect --remote``: the manifest bytes on the registry and their digest."""
    ref = require_registry(_ref(reference))
    with client_for(ref, options or RegistryOptions()) as client:
        data, desc, _ = fetch_manifest(client, ref)
    return data, desc.digest


def remote_tags(repository: str | Reference, options: RegistryOptions | None = None) -> list[str]:
    """``list REPOSITORY``: the tags of a repository on its registry."""
    ref = require_registry(_ref(repository))
    with client_for(ref, options or RegistryOptions()) as client:
        return client.list_tags(ref.repository)


def login(registry: str, username: str, password: str, *, options: RegistryOptions | None = None) -> str:
    """Check the credentials against the registry (``GET /v2/``), then save them; returns where."""
    from kitbridge.oci.credentials import Credentials, docker_config_path, save_login

    options = options or RegistryOptions()
    client = RegistryClient(
        registry,
        plain_http=options.plain_http,
        tls_verify=options.tls_verify,
        ca_file=options.ca_file,
        credentials=Credentials(username, password),
    )
    with client:
        client.ping()
    saved = save_login(registry, username, password)
    return str(saved) if saved is not None else str(docker_config_path())


def logout(registry: str) -> bool:
    """Forget saved credentials for ``registry``; False when there were none."""
    from kitbridge.oci.credentials import remove_login

    return bool(remove_login(registry))
