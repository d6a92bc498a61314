"""A static checker for the Docker build contexts ``kitbridge export docker`` writes (no docker needed).

:func:`check_dockerfile` reads ``Dockerfile``, ``.dockerignore`` and ``README.md`` of a context and returns
one string per problem (an empty list: the context passes). What it holds a context to:

* the first line is a BuildKit ``# syntax=`` parser directive;
* ``ARG BASE_IMAGE=<image>@sha256:<64 hex>`` comes before the one and only ``FROM``, which uses it;
* the last ``USER`` is not root (neither ``root`` nor uid ``0``);
* ``EXPOSE`` is there; ``HEALTHCHECK`` runs an exec-form ``CMD [...]``; ``ENTRYPOINT`` is exec form;
* ``ENV`` sets ``HF_HUB_OFFLINE=1``;
* no ``ARG``/``ENV`` name looks like a secret, and no ``ARG``/``ENV``/``LABEL``/``RUN`` text holds a
  token-like value (``hf_…``, ``AKIA…``, ``scheme://user:password@``);
* ``LABEL`` values and ``ENV`` values hold no ``$`` that Docker would substitute (generated values are
  literal text: a ``$`` in them must be escaped);
* ``LABEL`` sets ``org.opencontainers.image.title``, ``dev.kitbridge.modelkit.reference`` and
  ``dev.kitbridge.modelkit.digest`` (``sha256:<64 hex>``);
* every ``COPY``/``ADD`` source exists in the context and is sent to the builder by ``.dockerignore``;
* ``.dockerignore`` first denies everything (``*``), then only re-allows paths the Dockerfile copies;
* ``README.md`` says how to build (``docker build``/``podman build``) and run (``docker run``/``podman run``).

:func:`dockerfile_instructions` gives the parsed ``(INSTRUCTION, arguments)`` pairs for closer looks;
:func:`words` and :func:`key_values` split arguments the way Docker does; :func:`dockerignore_allows`
answers whether ``.dockerignore`` lets a context path through (Docker's rules: the last matching pattern
wins, a pattern matching a parent folder matches everything under it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

__all__ = [
    "check_dockerfile",
    "dockerfile_instructions",
    "dockerignore_allows",
    "dockerignore_patterns",
    "env",
    "exec_form",
    "healthcheck_command",
    "key_values",
    "labels",
    "words",
]

_DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE)", re.IGNORECASE)
HARMLESS_NAMES = frozenset({"TOKENIZERS_PARALLELISM"})
"""Names the secret-name rule would flag that are well-known settings, not secrets."""
_SECRET_VALUES = (
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), "a Hugging Face token (hf_…)"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id (AKIA…)"),
    (re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a URL with user:password@"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
)
_BUILD_CMD = re.compile(r"\b(docker|podman)\s+(buildx\s+)?build\b|\bbuildah\s+(bud|build)\b")
_RUN_CMD = re.compile(r"\b(docker|podman)\s+run\b")
REQUIRED_LABELS = (
    "org.opencontainers.image.title",
    "dev.kitbridge.modelkit.reference",
    "dev.kitbridge.modelkit.digest",
)


# --- parsing ---------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` for each instruction of a Dockerfile (a file, or a context folder).

    Comment lines and blank lines are skipped (also inside a continuation, as Docker does); a line ending
    in ``\\`` continues on the next one (the backslash and the newline are dropped). The instruction is
    upper-cased; the arguments are stripped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "Dockerfile"
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        _append(out, pending + line)
        pending = ""
    if pending.strip():
        _append(out, pending)
    return out


def _append(out: list[tuple[str, str]], logical: str) -> None:
    parts = logical.strip().split(None, 1)
    out.append((parts[0].upper(), parts[1].strip() if len(parts) > 1 else ""))


def _split(text: str) -> list[tuple[str, bool]]:
    """Docker's word splitting: each word with quotes and escapes removed, and whether it has a live ``$``."""
    result: list[tuple[str, bool]] = []
    word: list[str] = []
    started = dollar = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            if started:
                result.append(("".join(word), dollar))
                word, started, dollar = [], False, False
            i += 1
            continue
        started = True
        if ch == "\\":
            if i + 1 < n:
                word.append(text[i + 1])
            i += 2
        elif ch == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            word.append(text[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"$\\':
                    word.append(text[i + 1])
                    i += 2
                    continue
                if text[i] == "$":
                    dollar = True
                word.append(text[i])
                i += 1
            i += 1
        else:
            if ch == "$":
                dollar = True
            word.append(ch)
            i += 1
    if started:
        result.append(("".join(word), dollar))
    return result


def words(text: str) -> list[str]:
    """The arguments split into words the way Docker does (quotes and escapes removed)."""
    return [w for w, _ in _split(text)]


def key_values(text: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` pairs of an ENV/LABEL/ARG (``ENV KEY value`` too; an ARG without default gives "")."""
    return [(k, v) for k, v, _ in _key_values(text)]


def _key_values(text: str) -> list[tuple[str, str, bool]]:
    split = _split(text)
    if split and "=" not in split[0][0]:
        if len(split) == 1:
            return [(split[0][0], "", False)]
        # the legacy ``ENV KEY value with spaces`` form: everything after the name is the value
        return [(split[0][0], " ".join(w for w, _ in split[1:]), any(d for _, d in split[1:]))]
    out = []
    for word, dollar in split:
        key, _, value = word.partition("=")
        out.append((key, value, dollar))
    return out


def labels(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Every LABEL, later ones overriding earlier ones."""
    return {k: v for ins, args in instructions if ins == "LABEL" for k, v in key_values(args)}


def env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Every ENV, later ones overriding earlier ones."""
    return {k: v for ins, args in instructions if ins == "ENV" for k, v in key_values(args)}


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form ENTRYPOINT/CMD (a non-empty list of strings), else None."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def healthcheck_command(args: str) -> list[str] | None:
    """The exec-form command of ``HEALTHCHECK [--options] CMD [...]``, else None."""
    rest = args.strip()
    while rest.startswith("--"):
        parts = rest.split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
    if rest[:3].upper() != "CMD" or not rest[3:4].isspace():
        return None
    return exec_form(rest[3:].strip())


def _copy_sources(args: str) -> tuple[list[str], dict[str, str]] | None:
    """Sources and ``--flags`` of a COPY/ADD (None when it names no source)."""
    flags: dict[str, str] = {}
    rest = args.strip()
    while rest.startswith("--"):
        parts = rest.split(None, 1)
        name, _, value = parts[0][2:].partition("=")
        flags[name] = value
        rest = parts[1] if len(parts) > 1 else ""
    if rest.startswith("["):
        items = exec_form(rest)
        if items is None:
            return None
    else:
        items = words(rest)
    if len(items) < 2:
        return None
    return items[:-1], flags


# --- .dockerignore ---------------------------------------------------------------------------------------


def _clean(pattern: str) -> str:
    """Docker's filepath.Clean of a pattern: no leading ``/``, no trailing ``/``, no ``.`` parts."""
    parts = [p for p in pattern.strip().split("/") if p not in ("", ".")]
    return "/".join(parts) or "."


def dockerignore_patterns(context_dir: Path) -> list[tuple[bool, str]]:
    """``(exclusion, pattern)`` for each line of ``.dockerignore`` (exclusion: the ``!`` lines)."""
    out = []
    for raw in (Path(context_dir) / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        out.append((exclusion, _clean(line[1:] if exclusion else line)))
    return out


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out += "(.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif ch == "*":
            out += "[^/]*"
            i += 1
        elif ch == "?":
            out += "[^/]"
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(ch)
                i += 1
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                i = end + 1
        else:
            out += re.escape(ch)
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_allows(context_dir: Path, rel: str) -> bool:
    """Whether the context path ``rel`` is sent to the builder (Docker's patternmatcher rules)."""
    path = _clean(rel)
    parents = path.split("/")
    candidates = ["/".join(parents[: i + 1]) for i in range(len(parents))]
    ignored = False
    for exclusion, pattern in dockerignore_patterns(context_dir):
        regex = _pattern_regex(pattern)
        if any(regex.match(c) for c in candidates):
            ignored = not exclusion
    return not ignored


# --- the checks ------------------------------------------------------------------------------------------


def _secret_value_problems(where: str, text: str) -> list[str]:
    return [f"{where} holds what looks like {what}" for regex, what in _SECRET_VALUES if regex.search(text)]


def check_dockerfile(context_dir: Path) -> list[str]:
    """Every problem with the context in ``context_dir`` (see the module docstring); [] when it passes."""
    root = Path(context_dir)
    dockerfile = root / "Dockerfile"
    if not dockerfile.is_file():
        return [f"{dockerfile} is missing"]
    problems: list[str] = []
    first = (dockerfile.read_text().splitlines() or [""])[0]
    if not re.fullmatch(r"#\s*syntax\s*=\s*\S+\s*", first):
        problems.append(f"the first line is not a BuildKit '# syntax=' directive: {first!r}")
    ins = dockerfile_instructions(dockerfile)
    names = [i for i, _ in ins]

    # ARG BASE_IMAGE before FROM, one FROM using it
    froms = [k for k, (i, _) in enumerate(ins) if i == "FROM"]
    if len(froms) != 1:
        problems.append(f"expected exactly one FROM, found {len(froms)}")
    first_from = froms[0] if froms else len(ins)
    base_args = [v for i, a in ins[:first_from] if i == "ARG" for k, v in key_values(a) if k == "BASE_IMAGE"]
    if not base_args:
        problems.append("no ARG BASE_IMAGE=... before the first FROM")
    elif not _DIGEST_REF.match(base_args[-1]):
        problems.append(
            f"ARG BASE_IMAGE default is not pinned by digest (image@sha256:<64 hex>): {base_args[-1]!r}"
        )
    if froms:
        from_words = words(ins[froms[0]][1])
        from_words = [w for w in from_words if not w.startswith("--")]
        if not from_words or from_words[0] not in ("${BASE_IMAGE}", "$BASE_IMAGE"):
            problems.append(f"FROM does not use the BASE_IMAGE ARG: FROM {ins[froms[0]][1]}")

    # the final USER
    users = [a for i, a in ins if i == "USER"]
    if not users:
        problems.append("no USER: the container would run as root")
    else:
        user = users[-1].split(":", 1)[0].strip()
        if not user or user == "root" or (user.isdigit() and int(user) == 0):
            problems.append(f"the final USER is root: USER {users[-1]}")
        last_user = max(k for k, (i, _) in enumerate(ins) if i == "USER")
        if any(i == "RUN" for i, _ in ins[last_user:]):
            problems.append("RUN after the final USER")

    # EXPOSE, HEALTHCHECK, ENTRYPOINT
    exposes = [a for i, a in ins if i == "EXPOSE"]
    if not exposes:
        problems.append("no EXPOSE")
    for a in exposes:
        for port in words(a):
            if not re.fullmatch(r"\d{1,5}(/(tcp|udp))?", port) or not 0 < int(port.split("/")[0]) < 65536:
                problems.append(f"EXPOSE {port!r} is not a port")
    checks = [a for i, a in ins if i == "HEALTHCHECK"]
    if not checks:
        problems.append("no HEALTHCHECK")
    elif healthcheck_command(checks[-1]) is None:
        problems.append(f"HEALTHCHECK is not an exec-form CMD [...]: HEALTHCHECK {checks[-1]}")
    entrypoints = [a for i, a in ins if i == "ENTRYPOINT"]
    if not entrypoints:
        problems.append("no ENTRYPOINT")
    else:
        if len(entrypoints) > 1:
            problems.append(f"{len(entrypoints)} ENTRYPOINT instructions (only the last counts)")
        if exec_form(entrypoints[-1]) is None:
            problems.append(f"ENTRYPOINT is not exec form (a JSON array of strings): {entrypoints[-1]}")
    if "CMD" in names and any(exec_form(a) is None for i, a in ins if i == "CMD"):
        problems.append("CMD is not exec form")

    # ENV, secrets, literal values
    environment = env(ins)
    if environment.get("HF_HUB_OFFLINE") != "1":
        problems.append(f"ENV does not set HF_HUB_OFFLINE=1 (it is {environment.get('HF_HUB_OFFLINE')!r})")
    for i, a in ins:
        if i in ("ARG", "ENV", "LABEL"):
            for key, value, dollar in _key_values(a):
                if i != "LABEL" and _SECRET_NAME.search(key) and key.upper() not in HARMLESS_NAMES:
                    problems.append(f"{i} {key}: the name looks like a secret")
                problems += _secret_value_problems(f"{i} {key}", value)
                if dollar and i in ("ENV", "LABEL"):
                    problems.append(f"{i} {key}={value!r} has an unescaped $ that Docker would substitute")
        elif i == "RUN":
            problems += _secret_value_problems("a RUN instruction", a)

    # LABELs
    lab = labels(ins)
    for key in REQUIRED_LABELS:
        if not lab.get(key):
            problems.append(f"no LABEL {key}")
    digest = lab.get("dev.kitbridge.modelkit.digest", "")
    if digest and not _SHA256.match(digest):
        problems.append(f"LABEL dev.kitbridge.modelkit.digest is not sha256:<64 hex>: {digest!r}")

    # COPY sources and .dockerignore
    ignore = root / ".dockerignore"
    copied: list[str] = []
    for i, a in ins:
        if i not in ("COPY", "ADD"):
            continue
        parsed = _copy_sources(a)
        if parsed is None:
            problems.append(f"{i} {a}: cannot read its sources")
            continue
        sources, flags = parsed
        if "from" in flags:
            continue
        for src in sources:
            if i == "ADD" and re.match(r"[a-z][a-z0-9+.-]*://", src, re.IGNORECASE):
                problems.append(f"ADD {src}: fetches from the network at build time")
                continue
            copied.append(_clean(src))
            problems += _source_problems(root, i, src, ignore.is_file())
    if not ignore.is_file():
        problems.append(".dockerignore is missing")
    else:
        patterns = dockerignore_patterns(root)
        if not patterns or patterns[0] != (False, "*"):
            problems.append(f".dockerignore does not start by denying everything ('*'): {patterns[:1]}")
        for exclusion, pattern in patterns[1:]:
            if not exclusion:
                problems.append(f".dockerignore: {pattern!r} after '*' is redundant")
            elif not any(_under(c, pattern) for c in copied):
                problems.append(f".dockerignore re-allows {pattern!r}, which the Dockerfile does not COPY")

    # README
    readme = root / "README.md"
    if not readme.is_file():
        problems.append("README.md is missing")
    else:
        text = readme.read_text()
        if not _BUILD_CMD.search(text):
            problems.append("README.md has no build command (docker build / podman build)")
        if not _RUN_CMD.search(text):
            problems.append("README.md has no run command (docker run / podman run)")
    return problems


def _under(copied: str, pattern: str) -> bool:
    """Whether a re-allowed pattern is (inside) a copied source."""
    regex = _pattern_regex(pattern)
    return bool(regex.match(copied)) or copied == "." or pattern.startswith(copied + "/")


def _source_problems(root: Path, instruction: str, src: str, have_ignore: bool) -> list[str]:
    rel = _clean(src)
    if rel == ".." or rel.startswith("../"):
        return [f"{instruction} {src}: outside the context"]
    matches = sorted(root.glob(rel)) if any(c in rel for c in "*?[") else [root / rel]
    matches = [m for m in matches if m.exists()]
    if not matches:
        return [f"{instruction} {src}: not in the context"]
    if not have_ignore:
        return []
    problems = []
    for m in matches:
        files = [m] if m.is_file() else sorted(p for p in m.rglob("*") if p.is_file())
        if not files and not dockerignore_allows(root, m.relative_to(root).as_posix()):
            problems.append(f"{instruction} {src}: .dockerignore leaves it out")
        for f in files:
            relf = PurePosixPath(f.relative_to(root).as_posix()).as_posix()
            if not dockerignore_allows(root, relf):
                problems.append(f"{instruction} {src}: .dockerignore leaves out {relf}")
                break
    return problems
