"""An Open Inference Protocol (KServe v2) server for one ONNX model, on onnxruntime and the stdlib.

Endpoints: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/{name}, /v2/models/{name}/ready;
POST /v2/models/{name}/infer with {"inputs": [{"name", "shape", "datatype", "data"}], "outputs"?}.
Configuration from the environment: MODEL_DIR, MODEL_FILE (relative to MODEL_DIR), MODEL_NAME, PORT.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort

DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _datatype(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if dtype is not np.object_ and array.dtype == np.dtype(dtype):
            return name
    return "BYTES"


class Model:
    def __init__(self, path: str, name: str) -> None:
        self.name = name
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def metadata(self) -> dict:
        def io(items: list) -> list:
            return [
                {
                    "name": i.name,
                    "datatype": ONNX_TYPES.get(i.type, "BYTES"),
                    "shape": [d if isinstance(d, int) else -1 for d in i.shape],
                }
                for i in items
            ]

        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": io(self.session.get_inputs()),
            "outputs": io(self.session.get_outputs()),
        }

    def infer(self, request: dict) -> dict:
        feeds = {}
        for spec in request.get("inputs") or []:
            dtype = DATATYPES.get(str(spec.get("datatype", "")).upper())
            if dtype is None:
                raise ValueError(f"input {spec.get('name')!r}: unknown datatype {spec.get('datatype')!r}")
            data = np.asarray(spec.get("data"), dtype=dtype)
            feeds[spec["name"]] = data.reshape([int(d) for d in spec.get("shape") or data.shape])
        wanted = [o["name"] for o in request.get("outputs") or []] or None
        results = self.session.run(wanted, feeds)
        names = wanted or [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, value in zip(names, results, strict=True):
            array = np.asarray(value)
            outputs.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": _datatype(array),
                    "data": array.reshape(-1).tolist(),
                }
            )
        response = {"model_name": self.name, "model_version": "1", "outputs": outputs}
        if "id" in request:
            response["id"] = request["id"]
        return response


def make_handler(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            base = f"/v2/models/{model.name}"
            if path in ("/v2/health/live", "/v2/health/ready", f"{base}/ready", f"{base}/versions/1/ready"):
                self.send(200, {"live": True, "ready": True})
            elif path == "/v2":
                self.send(200, {"name": "kitbridge-oip", "version": "1", "extensions": []})
            elif path in (base, f"{base}/versions/1"):
                self.send(200, model.metadata())
            else:
                self.send(404, {"error": f"no route {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            # Read the body whatever the answer: an unread body would be parsed as the next request.
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path not in (f"/v2/models/{model.name}/infer", f"/v2/models/{model.name}/versions/1/infer"):
                self.send(404, {"error": f"no model at {path}"})
                return
            try:
                request = json.loads(body or b"{}")
                self.send(200, model.infer(request))
            except Exception as e:  # a bad request must not kill the server
                self.send(400, {"error": f"{type(e).__name__}: {e}"})

    return Handler


def main() -> None:
    model_dir = os.environ.get("MODEL_DIR", "/opt/model")
    path = os.path.join(model_dir, os.environ["MODEL_FILE"])
    model = Model(path, os.environ.get("MODEL_NAME", "model"))
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), make_handler(model))
    print(f"serving {path} as {model.name} on :{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
