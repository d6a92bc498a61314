"""``kitbridge export docker`` without a container engine: real small models, packed, exported, checked.

Five ModelKits are made once for the module (a private KITBRIDGE_HOME): an sklearn model logged with
MLflow to a SQLite tracking store and imported from ``models:/NAME/1``, an ONNX MatMul+Add built with
``onnx.helper``, a hand-written GGUF v3 file (also as a ModelPack, whose single files are raw layers),
a transformers LLM folder (config.json, a hand-written safetensors file, tokenizer.json) and a kit no
runtime fits. Every context is held to :func:`dockerfile_checks.check_dockerfile`; the runtime-specific
parts (entry points, model paths, ports, requirements) are checked here. The OIP server that serves ONNX
models runs in-process (and as the container would start it) against onnxruntime's own answers.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import CLI, write_tree
from dockerfile_checks import (
    check_dockerfile,
    dockerfile_instructions,
    dockerignore_allows,
    env,
    exec_form,
    healthcheck_command,
    key_values,
    labels,
    words,
)
from onnx import TensorProto, helper, numpy_helper

from kitbridge.converters.exporters.docker import images
from kitbridge.converters.exporters.docker.servers import oip_server

SERVERS = Path(oip_server.__file__).parent
RUNTIMES = ("llamacpp", "mlflow", "onnxruntime", "transformers", "vllm")
GGUF_NAME = "tiny.Q4_K_M.gguf"
PINNED = "registry.example.com/team/base:1@sha256:" + "ab" * 32

# --- the models ------------------------------------------------------------------------------------------

W = np.arange(8, dtype=np.float32).reshape(4, 2) / 4
B = np.array([0.5, -1.0], dtype=np.float32)


def onnx_bytes() -> bytes:
    """y = x @ W + B: input "x" FP32 [N, 4], output "y" FP32 [N, 2]."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kb-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def gguf_bytes() -> bytes:
    """GGUF v3: no tensors, one key (general.architecture = "llama"), padded to the 32-byte alignment."""

    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    out = (
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("general.architecture") + struct.pack("<I", 8) + s("llama")
    )
    return out + b"\0" * (-len(out) % 32)


def safetensors_bytes() -> bytes:
    """A 2x2 F32 tensor: 8-byte little-endian header length, JSON header (space-padded), data."""
    header = json.dumps(
        {"model.embed_tokens.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    )
    raw = header.encode() + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(raw)) + raw + np.arange(4, dtype=np.float32).tobytes()


LLM_CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})


@dataclass
class Kits:
    """The module's ModelKits: kind -> source folder, reference and manifest digest."""

    cli: CLI
    src: dict[str, Path] = field(default_factory=dict)
    ref: dict[str, str] = field(default_factory=dict)
    digest: dict[str, str] = field(default_factory=dict)


def _digest(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("sha256:"))


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Kits:
    root = tmp_path_factory.mktemp("export-models")
    k = Kits(CLI(root / "kb-home"))
    k.src["onnx"] = write_tree(root / "onnx", {"model.onnx": onnx_bytes()})
    k.src["gguf"] = write_tree(root / "gguf", {GGUF_NAME: gguf_bytes()})
    k.src["gguf-modelpack"] = k.src["gguf"]
    k.src["llm"] = write_tree(
        root / "llm",
        {"config.json": LLM_CONFIG, "model.safetensors": safetensors_bytes(), "tokenizer.json": "{}"},
    )
    k.src["none"] = write_tree(
        root / "none", {"README.md": "# Notes\n\nNothing to serve.\n", "notes.txt": "x\n"}
    )
    for kind in ("onnx", "gguf", "llm", "none"):
        k.ref[kind] = f"{kind}:1"
        k.digest[kind] = _digest(k.cli.ok("import", str(k.src[kind]), "-t", k.ref[kind]).stdout)
    k.ref["gguf-modelpack"] = "gguf-mp:1"
    r = k.cli.ok("import", str(k.src["gguf"]), "-t", "gguf-mp:1", "--format", "modelpack")
    k.digest["gguf-modelpack"] = _digest(r.stdout)
    return k


@pytest.fixture(scope="module")
def mlflow_kits(kits: Kits, tmp_path_factory: pytest.TempPathFactory) -> Kits:
    """Adds the MLflow kits (~10 s: only the tests that need them pay for mlflow)."""
    import mlflow
    from mlflow_models import log_sklearn, sqlite_uri, tracking

    k = kits
    root = tmp_path_factory.mktemp("export-mlflow")
    # log to a SQLite store, register, import models:/NAME/1; then the same model's folder, as files
    uri = sqlite_uri(root / "mlflow")
    logged = log_sklearn(uri, register_as="iris-export")
    k.ref["mlflow"] = "iris-export:1"
    r = k.cli.ok("import", logged.version_uri, "--tracking-uri", uri, "-t", k.ref["mlflow"])
    k.digest["mlflow"] = _digest(r.stdout)
    with tracking(uri):
        folder = mlflow.artifacts.download_artifacts(
            artifact_uri=logged.model_uri, dst_path=str(root / "mlf")
        )
    # MLflow's download adds registered_model_meta (registry bookkeeping, not part of the logged model)
    (Path(folder) / "registered_model_meta").unlink(missing_ok=True)
    k.src["mlflow"] = k.src["mlflow-folder"] = Path(folder)
    k.ref["mlflow-folder"] = "iris-folder:1"
    k.digest["mlflow-folder"] = _digest(k.cli.ok("import", folder, "-t", k.ref["mlflow-folder"]).stdout)
    return k


def export(kits: Kits, kind: str, out: Path, *args: str) -> dict[str, Any]:
    r = kits.cli.ok("--json", "export", "docker", kits.ref[kind], "-o", str(out), *args)
    return dict(json.loads(r.stdout))


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def entrypoint(ctx: Path) -> list[str]:
    ep = [exec_form(a) for i, a in dockerfile_instructions(ctx) if i == "ENTRYPOINT"]
    assert ep and ep[-1] is not None
    return ep[-1]


def healthcheck(ctx: Path) -> list[str]:
    hc = [healthcheck_command(a) for i, a in dockerfile_instructions(ctx) if i == "HEALTHCHECK"]
    assert hc and hc[-1] is not None
    return hc[-1]


def only(ctx: Path, instruction: str) -> list[str]:
    return [a for i, a in dockerfile_instructions(ctx) if i == instruction]


def arg_after(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} not in {args}"
    return args[args.index(flag) + 1]


def py_compiles(path: Path, tmp: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "py_compile", str(path)],
        env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp / "pycache")},
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr


# --- every model, both modes -----------------------------------------------------------------------------

# case -> (kit kind, extra args, runtime, a piece of the reason, base image, default port, package name)
CASES: dict[str, tuple[str, tuple[str, ...], str, str, str, int, str]] = {
    "mlflow": ("mlflow", (), "mlflow", "model.parameters.mlflow", images.PYTHON, 8080, "iris-export"),
    "onnx": ("onnx", (), "onnxruntime", "ONNX file", images.PYTHON, 8080, "onnx"),
    "gguf": ("gguf", (), "llamacpp", "GGUF", images.LLAMACPP, 8080, "gguf"),
    "gguf-modelpack": ("gguf-modelpack", (), "llamacpp", "GGUF magic", images.LLAMACPP, 8080, "gguf"),
    "vllm": ("llm", (), "vllm", "LlamaForCausalLM", images.VLLM, 8000, "llm"),
    "transformers": (
        "llm",
        ("--runtime", "transformers"),
        "transformers",
        "LlamaForCausalLM",
        images.PYTHON,
        8080,
        "llm",
    ),
}


@pytest.mark.parametrize("mode", ["baked", "mounted"])
@pytest.mark.parametrize("case", list(CASES))
def test_export_context(
    request: pytest.FixtureRequest, kits: Kits, tmp_path: Path, case: str, mode: str
) -> None:
    kind, extra, runtime, reason, base, port, name = CASES[case]
    if kind.startswith("mlflow"):
        request.getfixturevalue("mlflow_kits")
    out = tmp_path / "ctx"
    result = export(kits, kind, out, "--mode", mode, *extra)

    assert check_dockerfile(out) == []
    assert result == {
        "directory": str(out),
        "runtime": runtime,
        "reason": result["reason"],
        "mode": mode,
        "tag": f"{name}:latest",
        "files": sorted(tree(out)),
        "builtWith": None,
    }
    assert reason in result["reason"]
    assert [p.name for p in tmp_path.iterdir()] == ["ctx"], "a temporary sibling was left behind"

    ins = dockerfile_instructions(out)
    assert key_values(only(out, "ARG")[0]) == [("BASE_IMAGE", base)]
    lab = labels(ins)
    assert lab["dev.kitbridge.modelkit.reference"] == f"localhost/{kits.ref[kind]}"
    assert lab["dev.kitbridge.modelkit.digest"] == kits.digest[kind]
    assert lab["dev.kitbridge.runtime"] == runtime
    assert lab["org.opencontainers.image.title"] == name
    environment = env(ins)
    assert environment["PORT"] == str(port)
    assert environment["MODEL_DIR"] == "/opt/model"
    assert only(out, "EXPOSE") == [str(port)]
    assert only(out, "USER")[-1] == "10001:10001"
    assert f"http://127.0.0.1:{port}/" in " ".join(healthcheck(out))

    # the model: baked byte for byte, or a volume and nothing of it in the context
    files = tree(out)
    if mode == "baked":
        model = {k.removeprefix("model/"): v for k, v in files.items() if k.startswith("model/")}
        source = tree(kits.src[kind])
        assert sorted(model) == sorted([*source, "Kitfile"])
        for rel, data in source.items():
            assert model[rel] == data, f"model/{rel} differs from the packed file"
        assert "COPY --chown=0:0 model/ /opt/model/" in [f"COPY {a}" for a in only(out, "COPY")]
        assert only(out, "VOLUME") == []
        assert dockerignore_allows(out, "model/Kitfile")
    else:
        assert not (out / "model").exists()
        assert not any(k.startswith("model/") for k in files)
        assert only(out, "VOLUME") == ['["/opt/model"]']
        assert all("model/" not in a.split()[-2] for a in only(out, "COPY"))
        assert not dockerignore_allows(out, "model/Kitfile")
        assert '-v "$PWD/model:/opt/model:ro"' in (out / "README.md").read_text()
        assert f"kitbridge unpack localhost/{kits.ref[kind]} -d model" in (out / "README.md").read_text()

    # files 0644 (0755 when executable), folders 0755: the image does not depend on the umask
    for p in [out, *out.rglob("*")]:
        perm = stat.S_IMODE(p.lstat().st_mode)
        assert perm in ((0o755,) if p.is_dir() else (0o644, 0o755)), f"{p}: {oct(perm)}"

    CHECKS[runtime](kits, kind, out, mode, tmp_path)


def _mlflow(kits: Kits, kind: str, out: Path, mode: str, tmp: Path) -> None:
    assert entrypoint(out) == [
        "mlflow",
        "models",
        "serve",
        "-m",
        "/opt/model",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--env-manager",
        "local",
    ]
    requirements = (kits.src[kind] / "requirements.txt").read_bytes()
    assert requirements.strip()
    assert (out / "kitbridge/model-requirements.txt").read_bytes() == requirements
    install = " ".join(only(out, "RUN"))
    assert "-r /opt/kitbridge/model-requirements.txt" in install
    assert f"'mlflow=={dist_version('mlflow')}'" in install, "MLflow is not pinned to the model's version"
    if mode == "baked":
        assert (out / "model/MLmodel").is_file()


def _onnx(kits: Kits, kind: str, out: Path, mode: str, tmp: Path) -> None:
    assert entrypoint(out) == ["python3", "/opt/kitbridge/oip_server.py"]
    environment = env(dockerfile_instructions(out))
    assert environment["MODEL_FILE"] == "model.onnx"
    assert environment["MODEL_NAME"] == "onnx"
    assert (out / "kitbridge/oip_server.py").read_text() == (SERVERS / "oip_server.py").read_text()
    assert "onnxruntime" in (out / "kitbridge/requirements.txt").read_text()
    assert "-r /opt/kitbridge/requirements.txt" in " ".join(only(out, "RUN"))
    py_compiles(out / "kitbridge/oip_server.py", tmp)
    py_compiles(out / "kitbridge/healthcheck.py", tmp)
    if mode == "baked":
        assert (out / "model" / environment["MODEL_FILE"]).read_bytes() == onnx_bytes()


def _llamacpp(kits: Kits, kind: str, out: Path, mode: str, tmp: Path) -> None:
    ep = entrypoint(out)
    assert ep[0] == "/app/llama-server"
    assert arg_after(ep, "--model") == f"/opt/model/{GGUF_NAME}"
    assert arg_after(ep, "--port") == "8080"
    assert arg_after(ep, "--host") == "0.0.0.0"
    assert healthcheck(out) == ["curl", "-fsS", "http://127.0.0.1:8080/health"]
    if mode == "baked":
        assert (out / "model" / GGUF_NAME).read_bytes()[:4] == b"GGUF"


def _vllm(kits: Kits, kind: str, out: Path, mode: str, tmp: Path) -> None:
    ep = entrypoint(out)
    assert ep[:3] == ["vllm", "serve", "/opt/model"]
    assert arg_after(ep, "--port") == "8000"
    assert arg_after(ep, "--served-model-name") == "llm"
    assert env(dockerfile_instructions(out))["VLLM_NO_USAGE_STATS"] == "1"
    assert "--gpus all" in (out / "README.md").read_text()
    if mode == "baked":
        assert (out / "model/config.json").read_text() == LLM_CONFIG


def _transformers(kits: Kits, kind: str, out: Path, mode: str, tmp: Path) -> None:
    assert entrypoint(out) == ["python3", "/opt/kitbridge/generate_server.py"]
    assert (out / "kitbridge/generate_server.py").read_text() == (SERVERS / "generate_server.py").read_text()
    assert "transformers" in (out / "kitbridge/requirements.txt").read_text()
    assert "https://download.pytorch.org/whl/cpu" in " ".join(only(out, "RUN"))
    py_compiles(out / "kitbridge/generate_server.py", tmp)


CHECKS: dict[str, Callable[[Kits, str, Path, str, Path], None]] = {
    "mlflow": _mlflow,
    "onnxruntime": _onnx,
    "llamacpp": _llamacpp,
    "vllm": _vllm,
    "transformers": _transformers,
}


def test_gguf_detected_by_magic_in_a_raw_layer(kits: Kits, tmp_path: Path) -> None:
    """A ModelPack's single files are raw layers: the exporter reads the GGUF magic from the blob."""
    result = export(kits, "gguf-modelpack", tmp_path / "ctx")
    assert result["reason"] == f"{GGUF_NAME} starts with the GGUF magic"
    # a KitOps kit keeps files in tar layers: there it goes by the file name
    assert export(kits, "gguf", tmp_path / "ctx2")["reason"] == "the model is a GGUF file"


def test_mlflow_detected_by_mlmodel_file(mlflow_kits: Kits, tmp_path: Path) -> None:
    """A plain folder MLflow wrote (no MLflow provenance in the Kitfile) still gets the MLflow runtime."""
    kits = mlflow_kits
    out = tmp_path / "ctx"
    r = kits.cli("--json", "export", "docker", kits.ref["mlflow-folder"], "-o", str(out))
    assert r.returncode == 0, (
        "an MLflow model folder imported from disk gets no runtime: the generated Kitfile puts MLmodel "
        f"in a `code: .` layer, which ModelFacts.has_file() cannot see: {r.stderr}"
    )
    result = json.loads(r.stdout)
    assert result["runtime"] == "mlflow"
    assert "MLmodel" in result["reason"]
    assert check_dockerfile(out) == []
    src = kits.src["mlflow-folder"]
    assert (out / "kitbridge/model-requirements.txt").read_bytes() == (src / "requirements.txt").read_bytes()


# --- options ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["mlflow", "onnx", "gguf", "vllm", "transformers"])
def test_port_option(request: pytest.FixtureRequest, kits: Kits, tmp_path: Path, case: str) -> None:
    kind, extra, runtime, *_ = CASES[case]
    if kind.startswith("mlflow"):
        request.getfixturevalue("mlflow_kits")
    out = tmp_path / "ctx"
    export(kits, kind, out, "--port", "9000", "--mode", "mounted", *extra)
    assert check_dockerfile(out) == []
    ins = dockerfile_instructions(out)
    assert only(out, "EXPOSE") == ["9000"]
    assert env(ins)["PORT"] == "9000"
    check = " ".join(healthcheck(out))
    assert "http://127.0.0.1:9000/" in check
    ep = entrypoint(out)
    if runtime in ("mlflow", "llamacpp", "vllm"):
        assert arg_after(ep, "--port") == "9000"
    else:  # kitbridge's own servers read PORT from the environment
        assert not any(a.isdigit() for a in ep)
    assert not any(p in " ".join([*ep, check]) for p in (":8080", ":8000", "8080", "8000"))
    readme = (out / "README.md").read_text()
    assert "-p 9000:9000" in readme
    assert "127.0.0.1:9000" in readme


@pytest.mark.parametrize("case", ["onnx", "gguf"])
def test_base_image_option(kits: Kits, tmp_path: Path, case: str) -> None:
    out = tmp_path / "ctx"
    export(kits, CASES[case][0], out, "--base-image", PINNED)
    assert check_dockerfile(out) == []
    assert only(out, "ARG") == [f"BASE_IMAGE={PINNED}"]
    assert only(out, "FROM") == ["${BASE_IMAGE}"]


def test_unpinned_base_image_is_reported_by_the_checker(kits: Kits, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    export(kits, "onnx", out, "--base-image", "python:3.12-slim")
    assert only(out, "ARG") == ["BASE_IMAGE=python:3.12-slim"]
    assert [p for p in check_dockerfile(out) if "pinned by digest" in p]


def test_tag_option(kits: Kits, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    result = export(kits, "onnx", out, "-t", "example.com/me/tiny:2")
    assert result["tag"] == "example.com/me/tiny:2"
    readme = (out / "README.md").read_text()
    assert "docker build -t example.com/me/tiny:2 ." in readme
    assert "docker run --rm -p 8080:8080 example.com/me/tiny:2" in readme


def test_reference_by_digest(kits: Kits, tmp_path: Path) -> None:
    ref = f"localhost/onnx@{kits.digest['onnx']}"
    r = kits.cli.ok("--json", "export", "docker", ref, "-o", str(tmp_path / "ctx"))
    assert json.loads(r.stdout)["runtime"] == "onnxruntime"
    lab = labels(dockerfile_instructions(tmp_path / "ctx"))
    assert lab["dev.kitbridge.modelkit.reference"] == ref
    assert lab["dev.kitbridge.modelkit.digest"] == kits.digest["onnx"]
    assert check_dockerfile(tmp_path / "ctx") == []


def test_exports_are_reproducible(kits: Kits, tmp_path: Path) -> None:
    export(kits, "onnx", tmp_path / "a")
    export(kits, "onnx", tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_empty_output_directory_is_used(kits: Kits, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    export(kits, "gguf", out)
    assert check_dockerfile(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_label_values_are_literal(kits: Kits, tmp_path: Path) -> None:
    """Docker substitutes ${VAR} in LABEL values: a '$' from the Kitfile must reach the label unchanged."""
    src = write_tree(
        tmp_path / "src",
        {
            "model.onnx": onnx_bytes(),
            "Kitfile": (
                "manifestVersion: 1.0.0\n"
                "package:\n"
                "  name: priced\n"
                "  description: 'Costs $5 per ${UNIT}; see \"docs\" \\ here'\n"
                "model:\n"
                "  name: tiny\n"
                "  path: model.onnx\n"
            ),
        },
    )
    kits.cli.ok("pack", str(src), "-t", "priced:1")
    out = tmp_path / "ctx"
    kits.cli.ok("export", "docker", "priced:1", "-o", str(out))
    text = (out / "Dockerfile").read_text()
    assert labels(dockerfile_instructions(out))["org.opencontainers.image.description"] == (
        'Costs $5 per ${UNIT}; see "docs" \\ here'
    )
    assert "Costs \\$5 per \\${UNIT}" in text, (
        "context.py _quote() leaves '$' unescaped: Docker expands $5 and ${UNIT} in the LABEL"
    )
    assert check_dockerfile(out) == []


# --- errors ----------------------------------------------------------------------------------------------


def test_no_runtime_fits(kits: Kits, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    r = kits.cli("export", "docker", kits.ref["none"], "-o", str(out))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "no runtime fits localhost/none:1" in line
    for detected in ("model.path=-", "format=-", "framework=-", "MLmodel=no"):
        assert detected in line
    assert "--runtime" in line
    for name in RUNTIMES:
        assert name in line
    assert list(tmp_path.iterdir()) == []


def test_unknown_runtime(kits: Kits, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    r = kits.cli("export", "docker", kits.ref["onnx"], "-o", str(out), "--runtime", "tensorflow-serving")
    assert r.returncode == 2, r.stderr
    assert "unknown runtime 'tensorflow-serving'" in r.stderr
    assert f"one of: {', '.join(RUNTIMES)}" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_forced_runtime_that_does_not_fit_still_exports(kits: Kits, tmp_path: Path) -> None:
    """--runtime is the user's call: the reason then says it was asked for."""
    out = tmp_path / "ctx"
    result = export(kits, "onnx", out, "--runtime", "vllm", "--mode", "mounted")
    assert (result["runtime"], result["reason"]) == ("vllm", "--runtime vllm")
    assert check_dockerfile(out) == []


def test_unknown_reference(kits: Kits, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    r = kits.cli("export", "docker", "no-such-model:1", "-o", str(out))
    assert r.returncode == 1, r.stderr
    assert "localhost/no-such-model:1" in r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_is_refused_and_untouched(kits: Kits, tmp_path: Path) -> None:
    out = write_tree(tmp_path / "ctx", {"keep.txt": "mine\n", "sub/Dockerfile": "FROM scratch\n"})
    before = tree(out)
    r = kits.cli("export", "docker", kits.ref["onnx"], "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert "not empty" in r.stderr
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_output_that_is_a_file_is_refused(kits: Kits, tmp_path: Path) -> None:
    target = tmp_path / "ctx"
    target.write_text("a file\n")
    r = kits.cli("export", "docker", kits.ref["onnx"], "-o", str(target))
    assert r.returncode == 2, r.stderr
    assert target.read_text() == "a file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_output_under_a_file_is_a_clean_error(kits: Kits, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x\n")
    r = kits.cli("export", "docker", kits.ref["onnx"], "-o", str(tmp_path / "afile" / "ctx"))
    assert r.returncode == 2, r.stderr
    assert "internal error" not in r.stderr, (
        "prepare_output() lets FileExistsError from out_dir.parent.mkdir() escape as an internal error"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_bad_port(kits: Kits, tmp_path: Path, port: str) -> None:
    r = kits.cli("export", "docker", kits.ref["onnx"], "-o", str(tmp_path / "ctx"), f"--port={port}")
    assert r.returncode == 2, r.stderr
    assert "out of range" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_mode(kits: Kits, tmp_path: Path) -> None:
    r = kits.cli("export", "docker", kits.ref["onnx"], "-o", str(tmp_path / "ctx"), "--mode", "layered")
    assert r.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_nothing(
    kits: Kits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the model was unpacked removes the half-written context (and its temporary name)."""
    from kitbridge.converters.exporters import docker as exporter
    from kitbridge.home import open_store

    def broken(*args: object, **kw: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("KITBRIDGE_HOME", str(kits.cli.home))
    monkeypatch.setenv("KITBRIDGE_NO_PLUGINS", "1")
    monkeypatch.setattr(exporter, "render_readme", broken)
    out = tmp_path / "ctx"
    with pytest.raises(OSError, match="No space left"):
        exporter.export_docker(kits.ref["gguf"], out, store=open_store(kits.cli.home))
    assert list(tmp_path.iterdir()) == []

    # a failure in an empty -o directory leaves it there, empty
    out.mkdir()
    with pytest.raises(OSError, match="No space left"):
        exporter.export_docker(kits.ref["onnx"], out, mode="mounted", store=open_store(kits.cli.home))
    assert [p.name for p in tmp_path.iterdir()] == ["ctx"]
    assert list(out.iterdir()) == []


def test_library_call(kits: Kits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kitbridge.converters.exporters.docker import export_docker
    from kitbridge.home import open_store

    monkeypatch.setenv("KITBRIDGE_HOME", str(kits.cli.home))
    monkeypatch.setenv("KITBRIDGE_NO_PLUGINS", "1")

    result = export_docker(
        kits.ref["onnx"], tmp_path / "ctx", mode="mounted", port=9100, store=open_store(kits.cli.home)
    )
    assert (result.runtime, result.mode, result.tag, result.built_with) == (
        "onnxruntime",
        "mounted",
        "onnx:latest",
        None,
    )
    assert result.directory == tmp_path / "ctx"
    assert result.files == sorted(tree(tmp_path / "ctx"))
    assert only(tmp_path / "ctx", "EXPOSE") == ["9100"]
    assert check_dockerfile(tmp_path / "ctx") == []


# --- the OIP server --------------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    port: int
    session: ort.InferenceSession


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _post(url: str, body: bytes | Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def oip(tmp_path: Path) -> Iterator[Served]:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes())
    model = oip_server.Model(str(path), "tiny")
    server = ThreadingHTTPServer(("127.0.0.1", 0), oip_server.make_handler(model))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = server.server_port
        yield Served(f"http://127.0.0.1:{port}", port, ort.InferenceSession(str(path)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _x(rows: int = 3) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(rows, 4)).astype(np.float32)


def _infer_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    inp = {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
    return {"inputs": [inp], **extra}


def test_oip_health_and_metadata(oip: Served) -> None:
    for path in ("/v2/health/ready", "/v2/health/live", "/v2/models/tiny/ready"):
        assert _get(oip.url + path) == (200, {"live": True, "ready": True})
    status, meta = _get(oip.url + "/v2/models/tiny")
    assert status == 200
    assert meta == {
        "name": "tiny",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }
    assert _get(oip.url + "/v2")[0] == 200
    assert _get(oip.url + "/v2/models/other")[0] == 404


def test_oip_infer_matches_onnxruntime(oip: Served) -> None:
    x = _x()
    (expected,) = oip.session.run(None, {"x": x})
    np.testing.assert_allclose(expected, x @ W + B, rtol=1e-6)
    status, resp = _post(oip.url + "/v2/models/tiny/infer", _infer_body(x, id="req-1"))
    assert status == 200, resp
    assert resp["model_name"] == "tiny"
    assert resp["id"] == "req-1"
    (out,) = resp["outputs"]
    assert (out["name"], out["shape"], out["datatype"]) == ("y", [3, 2], "FP32")
    assert out["data"] == expected.reshape(-1).tolist()
    # the versioned route, and asking for the output by name
    status, resp = _post(
        oip.url + "/v2/models/tiny/versions/1/infer", _infer_body(x, outputs=[{"name": "y"}])
    )
    assert status == 200, resp
    assert resp["outputs"][0]["data"] == expected.reshape(-1).tolist()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2, 3]",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]},
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]},
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
        {"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]},
        {"inputs": [{"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]},
        {"inputs": []},
        {
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "q"}],
        },
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-datatype",
        "short-data",
        "wrong-shape",
        "unknown-input",
        "strings",
        "no-name",
        "wrong-type",
        "no-inputs",
        "unknown-output",
    ],
)
def test_oip_bad_request_is_400(oip: Served, body: bytes | dict[str, Any]) -> None:
    status, resp = _post(oip.url + "/v2/models/tiny/infer", body)
    assert status == 400, resp
    assert resp["error"]
    # the server lives on
    assert _get(oip.url + "/v2/health/ready")[0] == 200
    assert _post(oip.url + "/v2/models/tiny/infer", _infer_body(_x(1)))[0] == 200


def test_oip_unknown_model_is_404(oip: Served) -> None:
    assert _post(oip.url + "/v2/models/other/infer", _infer_body(_x(1)))[0] == 404


def test_oip_keep_alive_after_404(oip: Served) -> None:
    """HTTP/1.1 keeps the connection: a refused POST must still consume its body."""
    conn = http.client.HTTPConnection("127.0.0.1", oip.port, timeout=10)
    try:
        body = json.dumps(_infer_body(_x(1))).encode()
        conn.request(
            "POST", "/v2/models/other/infer", body=body, headers={"Content-Type": "application/json"}
        )
        first = conn.getresponse()
        first.read()
        assert first.status == 404
        conn.request("GET", "/v2/health/ready")
        second = conn.getresponse()
        assert second.status == 200, (
            "oip_server.py do_POST answers 404 without reading the request body: on a kept-alive "
            f"connection the body is parsed as the next request ({second.status} {second.read()!r})"
        )
    finally:
        conn.close()


def test_healthcheck_script(oip: Served, tmp_path: Path) -> None:
    script = str(SERVERS / "healthcheck.py")

    def probe(url: str) -> int:
        return subprocess.run([sys.executable, script, url], capture_output=True, timeout=30).returncode

    assert probe(oip.url + "/v2/health/ready") == 0
    assert probe(oip.url + "/v2/nowhere") == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert probe(f"http://127.0.0.1:{closed}/health") == 1


def test_oip_server_runs_from_the_exported_context(kits: Kits, tmp_path: Path) -> None:
    """The context's own server file, started the way its ENTRYPOINT does, with the ENV it sets."""
    out = tmp_path / "ctx"
    export(kits, "onnx", out)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environment = env(dockerfile_instructions(out))
    run_env = {
        **os.environ,
        "MODEL_DIR": str(out / "model"),
        "MODEL_FILE": environment["MODEL_FILE"],
        "MODEL_NAME": environment["MODEL_NAME"],
        "PORT": str(port),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, str(out / "kitbridge/oip_server.py")],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if _get(base + "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the OIP server did not get ready"
            time.sleep(0.1)
        x = _x(2)
        status, resp = _post(f"{base}/v2/models/onnx/infer", _infer_body(x))
        assert status == 200, resp
        expected = ort.InferenceSession(str(out / "model/model.onnx")).run(None, {"x": x})[0]
        assert resp["outputs"][0]["data"] == expected.reshape(-1).tolist()
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


# --- the checker itself ----------------------------------------------------------------------------------


def _sub(old: str, new: str, file: str = "Dockerfile") -> Callable[[Path], None]:
    def mutate(ctx: Path) -> None:
        text = (ctx / file).read_text()
        assert old in text, f"{old!r} not in {file}"
        (ctx / file).write_text(text.replace(old, new, 1))

    return mutate


def _append(line: str, file: str = "Dockerfile") -> Callable[[Path], None]:
    def mutate(ctx: Path) -> None:
        with open(ctx / file, "a") as f:
            f.write(line + "\n")

    return mutate


def _delete(file: str) -> Callable[[Path], None]:
    return lambda ctx: (ctx / file).unlink()


_HF = "hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
MUTATIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "no-syntax-line": (_sub("# syntax=docker/dockerfile:1\n", ""), "syntax"),
    "unpinned-base": (_sub("@sha256:", ":tag-not-digest-"), "pinned by digest"),
    "no-arg": (_sub("ARG BASE_IMAGE=", "# ARG BASE_IMAGE="), "no ARG BASE_IMAGE"),
    "from-not-arg": (_sub("FROM ${BASE_IMAGE}", "FROM python:3.11"), "does not use the BASE_IMAGE"),
    "two-froms": (_append("FROM ${BASE_IMAGE}"), "exactly one FROM"),
    "user-root": (_sub("USER 10001:10001", "USER root"), "final USER is root"),
    "user-0": (_sub("USER 10001:10001", "USER 0:0"), "final USER is root"),
    "user-0-alone": (_sub("USER 10001:10001", "USER 0"), "final USER is root"),
    "no-user": (_sub("USER 10001:10001\n", ""), "final USER is root"),
    "run-after-user": (_append("RUN true"), "RUN after the final USER"),
    "no-expose": (_sub("EXPOSE 8080\n", ""), "no EXPOSE"),
    "bad-expose": (_sub("EXPOSE 8080", "EXPOSE http"), "not a port"),
    "shell-healthcheck": (
        _sub(
            'CMD ["python3", "/opt/kitbridge/healthcheck.py", "http://127.0.0.1:8080/v2/health/ready"]',
            "CMD curl -f x",
        ),
        "exec-form",
    ),
    "healthcheck-none": (_append("HEALTHCHECK NONE"), "exec-form"),
    "shell-entrypoint": (
        _sub('ENTRYPOINT ["python3", "/opt/kitbridge/oip_server.py"]', "ENTRYPOINT python3 x.py"),
        "not exec form",
    ),
    "two-entrypoints": (_append('ENTRYPOINT ["x"]'), "2 ENTRYPOINT"),
    "online": (_sub('HF_HUB_OFFLINE="1"', 'HF_HUB_OFFLINE="0"'), "HF_HUB_OFFLINE=1"),
    "secret-arg-name": (
        _sub("FROM ${BASE_IMAGE}", "FROM ${BASE_IMAGE}\nARG HF_TOKEN"),
        "looks like a secret",
    ),
    "secret-env-name": (_append('ENV DB_Password="x"'), "looks like a secret"),
    "url-credentials": (
        _append('ENV PIP_INDEX_URL="https://deploy:s3cret@pypi.example.com/simple"'),
        "user:password",
    ),
    "hf-token-value": (_append(f"ARG HUB={_HF}"), "Hugging Face token"),
    "aws-key-value": (_append("ENV KEY_ID=AKIAIOSFODNN7EXAMPLE"), "AWS access key"),
    "token-in-run": (_append(f"RUN curl -H 'Authorization: Bearer {_HF}' x"), "Hugging Face token"),
    "dollar-in-label": (_append('LABEL note="costs $5"'), "unescaped $"),
    "no-digest-label": (
        _sub("dev.kitbridge.modelkit.digest=", "dev.kitbridge.modelkit.digestx="),
        "no LABEL",
    ),
    "bad-digest-label": (_sub('modelkit.digest="sha256:', 'modelkit.digest="md5:'), "not sha256"),
    "no-title": (_sub("org.opencontainers.image.title=", "org.opencontainers.image.titlex="), "no LABEL"),
    "copy-missing": (_sub("COPY --chown=0:0 kitbridge/", "COPY --chown=0:0 missing/"), "not in the context"),
    "copy-ignored": (_sub("!model/\n", "", ".dockerignore"), "leaves out"),
    "copy-ignored-file": (_append("!model/\nmodel/Kitfile", ".dockerignore"), "leaves out"),
    "add-url": (_append("ADD https://example.com/x.tar.gz /x"), "network"),
    "ignore-not-deny-all": (_sub("\n*\n", "\n.git\n", ".dockerignore"), "denying everything"),
    "ignore-extra-allow": (_append("!secrets/", ".dockerignore"), "does not COPY"),
    "no-ignore": (_delete(".dockerignore"), ".dockerignore is missing"),
    "readme-no-build": (lambda ctx: (ctx / "README.md").write_text("docker run x\n"), "build command"),
    "readme-no-run": (_sub("docker run", "launch", "README.md"), "run command"),
    "no-readme": (_delete("README.md"), "README.md is missing"),
}


@pytest.fixture(scope="module")
def good_context(kits: Kits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good") / "ctx"
    export(kits, "onnx", out)
    assert check_dockerfile(out) == []
    return out


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_checker_finds(good_context: Path, tmp_path: Path, name: str) -> None:
    mutate, expected = MUTATIONS[name]
    ctx = tmp_path / "ctx"
    shutil.copytree(good_context, ctx)
    mutate(ctx)
    problems = check_dockerfile(ctx)
    assert any(expected in p for p in problems), problems


def test_checker_parsing(tmp_path: Path) -> None:
    """Continuations, comments inside them, quoting and the legacy ENV form, as Docker reads them."""
    ctx = write_tree(
        tmp_path / "ctx",
        {
            "Dockerfile": (
                "# syntax=docker/dockerfile:1\n"
                "ARG BASE_IMAGE=python@sha256:" + "0" * 64 + "\n"
                "FROM ${BASE_IMAGE}\n"
                "LABEL org.opencontainers.image.title='a b' \\\n"
                "  # a comment inside a continuation is dropped\n"
                '  dev.kitbridge.modelkit.reference="r \\"q\\" \\$x" \\\n'
                "\n"
                "  dev.kitbridge.modelkit.digest=sha256:" + "f" * 64 + "\n"
                "ENV HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false\n"
                "ENV GREETING hello   world\n"
                "COPY --chown=0:0 app/ /app/\n"
                "user nobody\n"
                "EXPOSE 8080/tcp\n"
                'HEALTHCHECK --interval=5s CMD ["true"]\n'
                'ENTRYPOINT ["/app/run", "--flag"]\n'
            ),
            ".dockerignore": "# comment\n*\n!app/\n",
            "app/run": "#!/bin/sh\n",
            "README.md": "podman build -t x . && podman run x\n",
        },
    )
    assert check_dockerfile(ctx) == []
    ins = dockerfile_instructions(ctx)
    assert [i for i, _ in ins] == [
        "ARG",
        "FROM",
        "LABEL",
        "ENV",
        "ENV",
        "COPY",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
    ]
    assert labels(ins) == {
        "org.opencontainers.image.title": "a b",
        "dev.kitbridge.modelkit.reference": 'r "q" $x',
        "dev.kitbridge.modelkit.digest": "sha256:" + "f" * 64,
    }
    assert env(ins) == {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GREETING": "hello world"}
    assert words('a \'b c\' "d\\"e" f\\ g') == ["a", "b c", 'd"e', "f g"]
    assert dockerignore_allows(ctx, "app/run")
    assert not dockerignore_allows(ctx, "Dockerfile.secret")
