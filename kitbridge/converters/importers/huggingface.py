"""The Hugging Face importer: ``hf://ORG/NAME[@REVISION]`` and ``hf://datasets/ORG/NAME[@REVISION]``.

Built on huggingface_hub's conventions so Hub users get what they expect: ``HF_ENDPOINT`` (mirrors,
test servers), ``HF_TOKEN`` or the ``hf auth login`` token file, the shared cache
(``HF_HUB_CACHE``/``HF_HOME``) and ``HF_HUB_OFFLINE=1``. These are read when an import runs, not when
the module is imported.

An import runs in this order, and nothing is downloaded before step 3:

1. **Preflight** (one metadata call, plus a HEAD for gated repos): the repo exists, the revision
   exists and is resolved to its commit sha, the token (which source it came from is named in every
   access error) can read the files. Sizes and digests come from the listing.
2. **Selection** (:mod:`.hf_select`): ``--include``/``--exclude``, one copy of the weights, one GGUF
   quantization.
3. **Fetch** (:mod:`.hf_download`): missing files go into the Hugging Face cache, in parallel,
   resumable and verified; cached files are used as they are. A caller that will push raw layers
   can name LFS files the registry already has: those are not downloaded at all, only their header
   bytes (for the profile) into a sparse stand-in in ``work_dir``.

The SourceTree's files point at the cache blobs, with the LFS sha256 as their digest, so packing
hard-links the cache blobs into the store without reading them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

from kitbridge.converters.importers.base import Provenance, SourceFile, SourceTree
from kitbridge.converters.importers.hf_download import Fetcher, HubCache, RemoteFile, fetch_header
from kitbridge.converters.importers.hf_select import Selection, select_files
from kitbridge.errors import KitbridgeError, NotFoundError, SourceAccessError, SourceError, UsageError
from kitbridge.parallel import progress_hook, run_parallel
from kitbridge.progress import NoProgress, Progress

SCHEME = "hf"
DEFAULT_ENDPOINT = "https://huggingface.co"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HEADER_SUFFIXES = (".safetensors", ".gguf")
"""LFS files the profile reads only the start of: the ones that can stay remote."""
_DOC_NAMES = frozenset({"readme.md", "license", "license.md", "license.txt", "notice", ".gitattributes"})

RemoteFilter = Callable[[Sequence[RemoteFile]], set[str]]
"""Given the LFS files an import would download, the paths that need no download (a registry has them)."""


# --- the source URI -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HFSource:
    """A parsed ``hf://`` source."""

    repo_id: str
    repo_type: str = "model"
    revision: str | None = None

    @classmethod
    def parse(cls, source: str, revision: str | None = None) -> HFSource:
        """``hf://[models/|datasets/]ORG/NAME[@REV]``; ``revision`` (``--revision``) must agree with it."""
        if not source.lower().startswith("hf://"):
            raise UsageError(f"{source!r} is not an hf:// source", "write hf://ORG/NAME[@REVISION]")
        rest = source[5:].strip("/")
        rev = None
        if "@" in rest:
            rest, rev = rest.split("@", 1)
            if not rev:
                raise UsageError(
                    f"{source!r} has an empty revision after '@'", "write hf://ORG/NAME@REVISION"
                )
        parts = rest.split("/")
        repo_type = "model"
        if parts and parts[0] in ("models", "datasets", "spaces"):
            repo_type = parts.pop(0)[:-1]
        if repo_type == "space":
            raise UsageError(
                f"{source!r} is a Space, not a model or dataset", "import a model or dataset repo"
            )
        if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) for p in parts):
            raise UsageError(
                f"{source!r} does not name a repo as ORG/NAME",
                "write hf://ORG/NAME, e.g. hf://sentence-transformers/all-MiniLM-L6-v2",
            )
        if revision is not None and rev is not None and revision != rev:
            raise UsageError(f"--revision {revision!r} contradicts {source!r}", "give the revision once")
        return cls("/".join(parts), repo_type, revision or rev)

    @property
    def prefix(self) -> str:
        """``datasets/`` for dataset repos (as in Hub URLs), else empty."""
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    def uri(self, commit: str | None = None) -> str:
        """The source as a URI, pinned to a commit when given."""
        base = f"hf://{self.prefix}{self.repo_id}"
        return f"{base}@{commit}" if commit else base


# --- huggingface_hub settings, read at call time --------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubSettings:
    """Where the Hub is, where the cache is, which token (and from where), offline or not."""

    endpoint: str
    cache_dir: Path
    offline: bool
    token: str | None
    token_source: str
    """Said in access errors: ``$HF_TOKEN``, ``the token file …``, or that there was none."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        """The settings huggingface_hub would use, from the environment as it is now."""
        e = os.environ if env is None else env
        hf_home = Path(
            e.get("HF_HOME") or Path(e.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
        ).expanduser()
        cache = Path(e.get("HF_HUB_CACHE") or e.get("HUGGINGFACE_HUB_CACHE") or hf_home / "hub").expanduser()
        token, source = None, ""
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            if e.get(var, "").strip():
                token, source = e[var].strip(), f"${var}"
                break
        if token is None:
            path = Path(e.get("HF_TOKEN_PATH") or hf_home / "token").expanduser()
            try:
                token = path.read_text(encoding="utf-8").strip() or None
            except OSError:
                token = None
            source = (
                f"the token file {path} (hf auth login)"
                if token
                else f"no token ($HF_TOKEN is not set and there is no {path})"
            )
        return cls(
            endpoint=(e.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=cache,
            offline=_truthy(e.get("HF_HUB_OFFLINE")) or _truthy(e.get("TRANSFORMERS_OFFLINE")),
            token=token,
            token_source=source,
        )

    def headers(self) -> dict[str, str]:
        """Request headers: our user agent, and the token when there is one."""
        from kitbridge import __version__

        h = {"user-agent": f"kitbridge/{__version__}; huggingface_hub-compatible"}
        if self.token:
            h["authorization"] = f"Bearer {self.token}"
        return h


# --- the plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HFPlan:
    """What an import of one repo revision takes, before any file byte moved."""

    source: HFSource
    settings: HubSettings
    commit: str
    files: list[RemoteFile]
    """The selected files, in repo order."""
    selection: Selection
    info: Mapping[str, Any] = field(default_factory=dict)
    """Repo facts: cardData, pipeline_tag, library_name, tags, license, gated, private, lastModified."""

    @property
    def cache(self) -> HubCache:
        """The repo's folder in the Hugging Face cache."""
        return HubCache(self.settings.cache_dir, self.source.repo_type, self.source.repo_id)

    def cached(self, f: RemoteFile) -> bool:
        """The file's bytes are already in the cache."""
        return self.cache.has(f)

    @property
    def download_size(self) -> int:
        """Bytes still to download."""
        return sum(f.size for f in self.files if not self.cached(f))

    def url(self, path: str) -> str:
        """The resolve URL of a file at the plan's commit."""
        return (
            f"{self.settings.endpoint}/{self.source.prefix}{self.source.repo_id}/resolve/"
            f"{self.commit}/{quote(path)}"
        )


def _repo_label(src: HFSource) -> str:
    return f"{src.prefix}{src.repo_id}"


def _http_status(e: BaseException) -> int | None:
    resp = getattr(e, "response", None)
    return getattr(resp, "status_code", None)


def _gated(src: HFSource, s: HubSettings) -> SourceAccessError:
    """A gated repo refused us: which token was tried, and where to ask for access."""
    page = f"{s.endpoint}/{src.prefix}{src.repo_id}"
    return SourceAccessError(
        f"{_repo_label(src)} is gated and the Hub refused access with {s.token_source}",
        f"request access at {page}, then use a token of that account (HF_TOKEN or `hf auth login`)",
    )


def _hub_error(e: Exception, src: HFSource, s: HubSettings) -> KitbridgeError:
    """A huggingface_hub error as one clear kitbridge error."""
    from huggingface_hub import errors as hf

    label = _repo_label(src)
    if isinstance(e, hf.GatedRepoError):
        return _gated(src, s)
    if isinstance(e, hf.RevisionNotFoundError):
        return NotFoundError(
            f"revision {src.revision!r} of {label} does not exist",
            "pass a branch, a tag or a full 40-character commit sha",
        )
    if isinstance(e, hf.RepositoryNotFoundError):
        if s.token:
            why = f"or the token from {s.token_source} cannot read it"
        else:
            why = f"or it is private and {s.token_source}"
        return SourceAccessError(
            f"{label} was not found on {s.endpoint}, {why}",
            "check the name; for a private repo set HF_TOKEN or run `hf auth login` as a member",
        )
    status = _http_status(e)
    if status == 401:
        return SourceAccessError(
            f"the Hub rejected the token from {s.token_source}",
            "renew it (`hf auth login`) or unset HF_TOKEN for public repos",
        )
    if status is not None:
        return SourceError(
            f"the Hub at {s.endpoint} answered HTTP {status} for {label}: {e}", "try again later"
        )
    return SourceError(
        f"cannot reach the Hub at {s.endpoint}: {type(e).__name__}: {e}",
        "check the network and HF_ENDPOINT; with the files cached, HF_HUB_OFFLINE=1 imports from the cache",
    )


def _card_dict(card: Any) -> dict[str, Any]:
    if card is None:
        return {}
    if isinstance(card, Mapping):
        return dict(card)
    to_dict = getattr(card, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}


def _license_of(card: Mapping[str, Any], tags: Sequence[str]) -> str | None:
    lic = card.get("license")
    if isinstance(lic, str) and lic:
        return lic
    for t in tags:
        if t.startswith("license:"):
            return t.split(":", 1)[1]
    return None


def _repo_info(src: HFSource, s: HubSettings, *, files_metadata: bool) -> Any:
    """The Hub's metadata for the repo at the revision (one request); errors become kitbridge errors."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=s.endpoint, token=s.token or False, library_name="kitbridge")
    try:
        return api.repo_info(
            src.repo_id, repo_type=src.repo_type, revision=src.revision, files_metadata=files_metadata
        )
    except Exception as e:
        raise _hub_error(e, src, s) from e


def _online_plan(
    src: HFSource, s: HubSettings, include: Sequence[str], exclude: Sequence[str], quant: str | None
) -> HFPlan:
    info = _repo_info(src, s, files_metadata=True)
    commit = str(info.sha or "")
    if not _COMMIT.fullmatch(commit):
        raise SourceError(f"the Hub did not say which commit {src.revision or 'main'} is", "try again")
    files: list[RemoteFile] = []
    for sib in info.siblings or []:
        lfs = sib.lfs
        sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
        size = sib.size if sib.size is not None else getattr(lfs, "size", None)
        if size is None:
            raise SourceError(
                f"the Hub listed {sib.rfilename} without a size", "try again, or report the mirror"
            )
        files.append(RemoteFile(sib.rfilename, int(size), sib.blob_id, sha256))
    by_path = {f.path: f for f in files}
    selection = select_files(
        list(by_path), include=include, exclude=exclude, quant=quant, repo=_repo_label(src)
    )
    card = _card_dict(info.card_data)
    tags = [str(t) for t in (info.tags or [])]
    facts: dict[str, Any] = {
        "cardData": card,
        "tags": tags,
        "license": _license_of(card, tags),
        "gated": info.gated,
        "private": info.private,
        "lastModified": info.last_modified.isoformat() if info.last_modified else None,
        "pipeline_tag": getattr(info, "pipeline_tag", None) or card.get("pipeline_tag"),
        "library_name": getattr(info, "library_name", None) or card.get("library_name"),
    }
    plan = HFPlan(src, s, commit, [by_path[p] for p in selection.files], selection, facts)
    if info.gated:
        _check_file_access(plan)
    return plan


def _check_file_access(plan: HFPlan) -> None:
    """A gated repo shows its listing to anyone: HEAD one gated file to learn whether we may read it."""
    import requests

    probe = next((f for f in plan.files if PurePosixPath(f.path).name.lower() not in _DOC_NAMES), None)
    if probe is None:
        return
    try:
        r = requests.head(
            plan.url(probe.path), headers=plan.settings.headers(), allow_redirects=False, timeout=30
        )
    except requests.RequestException as e:
        raise _hub_error(e, plan.source, plan.settings) from e
    if r.status_code in (401, 403):
        raise _gated(plan.source, plan.settings)


def _offline_plan(
    src: HFSource, s: HubSettings, include: Sequence[str], exclude: Sequence[str], quant: str | None
) -> HFPlan:
    """HF_HUB_OFFLINE: the revision and its files as the cache has them, no request made."""
    cache = HubCache(s.cache_dir, src.repo_type, src.repo_id)
    rev = src.revision or "main"
    commit = rev
    if not _COMMIT.fullmatch(rev):
        try:
            commit = (cache.path / "refs" / rev).read_text(encoding="utf-8").strip()
        except OSError:
            raise NotFoundError(
                f"HF_HUB_OFFLINE is set and the cache has no revision {rev!r} of {_repo_label(src)} "
                f"(looked in {cache.path})",
                "import it once online, or unset HF_HUB_OFFLINE",
            ) from None
    snapshot = cache.snapshot(commit)
    if not snapshot.is_dir():
        raise NotFoundError(
            f"HF_HUB_OFFLINE is set and commit {commit} of {_repo_label(src)} is not in the cache "
            f"at {cache.path}",
            "import it once online, or unset HF_HUB_OFFLINE",
        )
    files: list[RemoteFile] = []
    for dirpath, dirnames, names in os.walk(snapshot):
        dirnames.sort()
        for n in sorted(names):
            full = Path(dirpath) / n
            rel = full.relative_to(snapshot).as_posix()
            try:
                real = full.resolve(strict=True)
            except OSError:
                continue  # a link to a blob that is not there (an interrupted download)
            etag = real.name
            sha256 = etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None
            files.append(RemoteFile(rel, real.stat().st_size, None if sha256 else etag, sha256))
    by_path = {f.path: f for f in files}
    selection = select_files(
        list(by_path), include=include, exclude=exclude, quant=quant, repo=_repo_label(src)
    )
    return HFPlan(src, s, commit, [by_path[p] for p in selection.files], selection, {"offline": True})


# --- the importer ---------------------------------------------------------------------------------------


class HFImporter:
    """Hugging Face Hub model and dataset repos."""

    schemes: ClassVar[tuple[str, ...]] = (SCHEME,)

    def plan(
        self,
        source: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        revision: str | None = None,
        quant: str | None = None,
        settings: HubSettings | None = None,
    ) -> HFPlan:
        """Preflight and select: no file byte is downloaded (offline: no request at all)."""
        src = HFSource.parse(source, revision)
        s = settings or HubSettings.from_env()
        if s.offline:
            return _offline_plan(src, s, include, exclude, quant)
        return _online_plan(src, s, include, exclude, quant)

    def pin(self, source: str, *, revision: str | None = None, **_options: Any) -> str:
        """The commit ``source`` (at ``revision``) resolves to now: one metadata request, no file."""
        src = HFSource.parse(source, revision)
        s = HubSettings.from_env()
        if s.offline:
            return _offline_plan(src, s, (), (), None).commit
        return str(_repo_info(src, s, files_metadata=False).sha)

    def resolve(
        self,
        source: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        revision: str | None = None,
        work_dir: Path | None = None,
        quant: str | None = None,
        remote_filter: RemoteFilter | None = None,
        progress: Progress | None = None,
        concurrency: int = 8,
        dry_run: bool = False,
    ) -> SourceTree:
        """Plan, then fetch what is missing into the cache; the tree's files are the cache blobs.

        ``remote_filter`` (with a ``work_dir``) may name LFS weight files that need no download;
        they become sparse stand-ins with real headers under ``work_dir`` and ``remote=True``.
        ``dry_run`` fetches nothing: the tree lists the files where they will be.
        """
        plan = self.plan(source, include=include, exclude=exclude, revision=revision, quant=quant)
        return fetch_plan(
            plan,
            work_dir=work_dir,
            remote_filter=remote_filter,
            progress=progress,
            concurrency=concurrency,
            dry_run=dry_run,
        )


def fetch_plan(
    plan: HFPlan,
    *,
    work_dir: Path | None = None,
    remote_filter: RemoteFilter | None = None,
    progress: Progress | None = None,
    concurrency: int = 8,
    dry_run: bool = False,
) -> SourceTree:
    """Download what the plan lacks (see :meth:`HFImporter.resolve`) and describe the result as a tree."""
    progress = progress or NoProgress()
    cache = plan.cache
    missing = [f for f in plan.files if not cache.has(f)]
    remote: set[str] = set()
    if remote_filter is not None and work_dir is not None and missing and not dry_run:
        candidates = [f for f in missing if f.sha256 and f.path.lower().endswith(_HEADER_SUFFIXES)]
        remote = remote_filter(candidates) & {f.path for f in candidates} if candidates else set()
    fetcher = Fetcher(cache, plan.commit, plan.url, plan.settings.headers())
    stand_ins: dict[str, Path] = {}
    if not dry_run and not plan.settings.offline:
        _download(fetcher, plan, [f for f in plan.files if f.path not in remote], progress, concurrency)
        for f in plan.files:
            if f.path in remote:
                assert work_dir is not None
                stand_ins[f.path] = work_dir / "remote" / f.path
                fetch_header(fetcher, f, stand_ins[f.path])
        if plan.source.revision and not _COMMIT.fullmatch(plan.source.revision):
            cache.write_ref(plan.source.revision, plan.commit)
        elif plan.source.revision is None:
            cache.write_ref("main", plan.commit)
    return _tree(plan, stand_ins, refetch=partial(_refetch, plan, progress, concurrency))


def _download(
    fetcher: Fetcher, plan: HFPlan, files: Sequence[RemoteFile], progress: Progress, concurrency: int
) -> None:
    def job(f: RemoteFile, cancel: Any) -> None:
        task = f"download {f.path}"
        if plan.cache.has(f):
            fetcher.fetch(f, lambda _n: None)  # links it into this snapshot
            return
        progress.start(task, f.size)
        fetcher.fetch(f, progress_hook(progress, task, cancel))
        progress.finish(task)

    # Biggest first: the long downloads start at once and the small files fill the gaps.
    ordered = sorted(files, key=lambda f: -f.size)
    run_parallel([partial(job, f) for f in ordered], concurrency)


def _refetch(plan: HFPlan, progress: Progress, concurrency: int, paths: Sequence[str]) -> SourceTree:
    """Download files that were left remote after all (they ended up in a tar layer)."""
    want = set(paths)
    fetcher = Fetcher(plan.cache, plan.commit, plan.url, plan.settings.headers())
    _download(fetcher, plan, [f for f in plan.files if f.path in want], progress, concurrency)
    return _tree(plan, {}, refetch=None)


def _tree(
    plan: HFPlan, stand_ins: Mapping[str, Path], refetch: Callable[[Sequence[str]], SourceTree] | None
) -> SourceTree:
    cache = plan.cache
    dataset = plan.source.repo_type == "dataset"
    files = []
    for f in plan.files:
        remote = f.path in stand_ins
        where = stand_ins[f.path] if remote else cache.blob(f)
        role = None
        if dataset:
            role = "doc" if PurePosixPath(f.path).name.lower() in _DOC_NAMES else "dataset"
        files.append(SourceFile(f.path, where, f.size, f.sha256, role, remote=remote))  # type: ignore[arg-type]
    facts = plan.info
    extra = {
        "hf.repo_id": plan.source.repo_id,
        "hf.repo_type": plan.source.repo_type,
        "hf.endpoint": plan.settings.endpoint,
        "hf.url": f"{plan.settings.endpoint}/{plan.source.prefix}{plan.source.repo_id}/tree/{plan.commit}",
        "hf.cache_dir": str(cache.path),
    }
    if plan.source.revision:
        extra["hf.revision"] = plan.source.revision
    for key in ("pipeline_tag", "library_name", "lastModified"):
        if facts.get(key):
            extra[f"hf.{key}"] = str(facts[key])
    provenance = Provenance(
        source_uri=plan.source.uri(plan.commit),
        importer=SCHEME,
        revision=plan.commit,
        license=facts.get("license"),
        card=facts.get("cardData") or {},
        tags={t: "" for t in facts.get("tags") or []},
        extra=extra,
        default_tag=plan.commit[:7],
    )
    return SourceTree(
        cache.snapshot(plan.commit),
        files,
        provenance,
        tuple(sorted(plan.selection.left_out)),
        fetch=refetch,
    )
