"""Exported Docker contexts built with podman and served for real (run alone: ``pytest -m container``).

The MLflow (sklearn) and ONNX round trips build on a local Debian Python base (debootstrap, no registry
pull), run the container on a loopback port, wait for the health check, send a real request in the
runtime's protocol and compare with the model's own output. The llama.cpp and vLLM images cannot be
pulled here, so their contexts are built on the same local base as a stand-in: that proves the context
builds and the model files land where the entrypoint looks for them.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import CLI, write_tree
from dockerfile_checks import check_dockerfile
from mlflow_models import log_sklearn, sqlite_uri
from mlflow_server import free_port
from onnx import TensorProto, helper
from podman import Podman

pytestmark = pytest.mark.container


def export(cli: CLI, ref: str, out: Path, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli.ok("export", "docker", ref, "-o", str(out), "--json", *args).stdout)
    assert check_dockerfile(out) == [], out
    return doc


def post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def assert_hardened(podman: Podman, image: str, digest: str, ref: str, container: Any) -> None:
    info = podman.image_inspect(image)
    assert info["user"] == "10001:10001"
    assert info["labels"]["dev.kitbridge.modelkit.digest"] == digest
    assert info["labels"]["dev.kitbridge.modelkit.reference"] == ref
    assert info["healthcheck"], "the HEALTHCHECK was dropped"
    assert container.exec("id", "-u").strip() == "10001"
    # The model is root's and read-only to the runtime user.
    wrote = container.exec("sh", "-c", "touch /opt/model/x 2>/dev/null; echo rc=$?", check=False)
    assert "rc=0" not in wrote
    assert container.health_status() == "healthy"


def test_mlflow_sklearn_modelkit_serves_the_same_predictions(
    cli: CLI, podman: Podman, python_base: str, tmp_path: Path
) -> None:
    uri = sqlite_uri(tmp_path / "mlflow")
    m = log_sklearn(uri, name="iris-model", serialization="skops", register_as="iris-served")
    ref = "iris-served:1"
    cli.ok("import", f"models:/iris-served/{m.version}", "--tracking-uri", uri, "-t", ref)
    digest = json.loads(cli.ok("inspect", ref, "--json").stdout)["digest"]
    ctx = tmp_path / "ctx"
    doc = export(cli, ref, ctx)
    assert doc["runtime"] == "mlflow"
    podman.build(ctx, "localhost/iris-served:test", build_args={"BASE_IMAGE": python_base})
    port = free_port()
    container = podman.run("localhost/iris-served:test", port=port, container_port=8080)
    container.wait_http(f"{container.url}/health", timeout=240)
    got = post(f"{container.url}/invocations", {"dataframe_split": m.frame.to_dict(orient="split")})
    assert got["predictions"] == m.predictions
    assert_hardened(podman, "localhost/iris-served:test", digest, f"localhost/{ref}", container)
    container.remove()


def tiny_onnx(path: Path) -> None:
    """y = x @ W + b for x: FP32 [N, 4]."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [0.5, -1.0, 2.0, 0.25, -0.5, 1.5, 1.0, -2.0])
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [0.1, -0.2])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_onnx_modelkit_answers_the_open_inference_protocol(
    cli: CLI, podman: Podman, python_base: str, tmp_path: Path
) -> None:
    src = tmp_path / "onnx-model"
    src.mkdir()
    tiny_onnx(src / "model.onnx")
    (src / "README.md").write_text("# tiny\n\nA tiny linear ONNX model.\n")
    ref = "tiny-onnx:1"
    cli.ok("import", str(src), "-t", ref)
    digest = json.loads(cli.ok("inspect", ref, "--json").stdout)["digest"]
    ctx = tmp_path / "ctx"
    doc = export(cli, ref, ctx)
    assert doc["runtime"] == "onnxruntime"
    podman.build(ctx, "localhost/tiny-onnx:test", build_args={"BASE_IMAGE": python_base})
    container = podman.run("localhost/tiny-onnx:test", port=free_port(), container_port=8080)
    container.wait_http(f"{container.url}/v2/health/ready", timeout=120)
    x = np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], dtype=np.float32)
    want = ort.InferenceSession(str(src / "model.onnx")).run(None, {"x": x})[0]
    name = podman.image_inspect("localhost/tiny-onnx:test")["env"]["MODEL_NAME"]
    meta = json.loads(urllib.request.urlopen(f"{container.url}/v2/models/{name}", timeout=10).read())
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    got = post(
        f"{container.url}/v2/models/{name}/infer",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.reshape(-1).tolist()}]},
    )
    out = got["outputs"][0]
    assert out["name"] == "y" and out["shape"] == [2, 2] and out["datatype"] == "FP32"
    assert np.allclose(np.array(out["data"], dtype=np.float32).reshape(2, 2), want)
    assert_hardened(podman, "localhost/tiny-onnx:test", digest, f"localhost/{ref}", container)
    container.remove()


def gguf_bytes() -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return len(raw).to_bytes(8, "little") + raw

    return (
        b"GGUF"
        + (3).to_bytes(4, "little")
        + (0).to_bytes(8, "little")
        + (1).to_bytes(8, "little")
        + (s("general.architecture") + (8).to_bytes(4, "little") + s("llama"))
    )


def safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + bytes(16)


@pytest.mark.parametrize(
    ("kind", "files", "runtime", "model_file"),
    [
        ("gguf", {"tiny.Q4_K_M.gguf": gguf_bytes()}, "llamacpp", "/opt/model/tiny.Q4_K_M.gguf"),
        (
            "llm",
            {
                "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
                "model.safetensors": safetensors_bytes(),
                "tokenizer.json": "{}",
            },
            "vllm",
            "/opt/model/model.safetensors",
        ),
    ],
)
def test_gguf_and_vllm_contexts_build_on_a_stand_in_base(
    cli: CLI,
    podman: Podman,
    python_base: str,
    tmp_path: Path,
    kind: str,
    files: dict[str, str | bytes],
    runtime: str,
    model_file: str,
) -> None:
    src = write_tree(tmp_path / kind, files)
    ref = f"stand-in-{kind}:1"
    cli.ok("import", str(src), "-t", ref, "--format", "modelpack")
    ctx = tmp_path / "ctx"
    doc = export(cli, ref, ctx)
    assert doc["runtime"] == runtime
    lines = (ctx / "Dockerfile").read_text().splitlines()
    entry = json.loads(next(ln for ln in lines if ln.startswith("ENTRYPOINT"))[len("ENTRYPOINT ") :])
    assert model_file in entry or "/opt/model" in entry
    image = f"localhost/stand-in-{kind}:test"
    podman.build(ctx, image, build_args={"BASE_IMAGE": python_base})
    info = podman.image_inspect(image)
    assert info["entrypoint"] == entry and info["user"] == "10001:10001"
    # The files are where the entrypoint looks, owned by root, readable by the runtime user.
    probe = podman.run(image, port=None, extra=["--entrypoint", "sh"], command=["-c", "sleep 60"])
    listing = probe.exec("sh", "-c", f"test -r {model_file} && stat -c '%U %a' {model_file}")
    assert listing.strip() == "root 644"
    probe.remove()
