"""A small OpenAI-style completions server for a transformers causal LM on CPU (stdlib HTTP + transformers).

Endpoints: GET /health, GET /v1/models, POST /v1/completions {"prompt", "max_tokens"?, "temperature"?}.
Configuration from the environment: MODEL_DIR, MODEL_NAME, PORT. The model loads from MODEL_DIR only
(HF_HUB_OFFLINE=1); trust_remote_code stays off: no code from the model folder runs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_DIR = os.environ.get("MODEL_DIR", "/opt/model")
NAME = os.environ.get("MODEL_NAME", "model")
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, local_files_only=True, torch_dtype=torch.float32)
model.eval()
lock = threading.Lock()  # one generation at a time: CPU inference does not gain from interleaving


def complete(prompt: str, max_tokens: int, temperature: float) -> str:
    inputs = tokenizer(prompt, return_tensors="pt")
    with lock, torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=max_tokens, do_sample=temperature > 0, temperature=temperature or None
        )
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self.send(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self.send(200, {"object": "list", "data": [{"id": NAME, "object": "model"}]})
        else:
            self.send(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # always: keep-alive
        if self.path != "/v1/completions":
            self.send(404, {"error": "not found"})
            return
        try:
            req = json.loads(body or b"{}")
            text = complete(
                str(req["prompt"]), int(req.get("max_tokens", 16)), float(req.get("temperature", 0))
            )
            self.send(
                200,
                {
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": NAME,
                    "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                },
            )
        except Exception as e:
            self.send(400, {"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
