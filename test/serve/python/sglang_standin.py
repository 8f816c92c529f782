"""A stand-in SGLang server for rollout.weightSync nccl on CPU (test/train/torch-nccl-sync.test.ts).

SGLang's weight routes as its model runner does them, through receivers.py (join as rank
rank_offset, post every receive), with gloo in place of NCCL: /init_weights_update_group,
/update_weights_from_distributed, /get_weight_version, /get_server_info. Each update's tensors are
written to OUT/v<version>/ as a Hugging Face folder (a safetensors writer of its own, and MODEL's
config and tokenizer files). With --forward URL every other route goes to that server (a real
`red serve`), which is made to load each received folder (/update_weights_from_disk), so what it
generates comes from the broadcast weights.

    python3 sglang_standin.py --model DIR --out DIR [--forward URL]

prints "listening on http://127.0.0.1:PORT" once it serves.
"""

import argparse
import json
import os
import shutil
import struct
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from receivers import join_sglang, receive_sglang  # noqa: E402

SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16"}


def write_safetensors(path, tensors):
    """The format's header (8-byte length, JSON of dtype / shape / offsets) and the raw bytes."""
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


class State:
    def __init__(self, args):
        self.args = args
        self.group = None
        self.version = "0"
        self.lock = threading.Lock()
        self.log = open(os.path.join(args.out, "calls.jsonl"), "a")

    def record(self, route, body):
        with self.lock:
            self.log.write(json.dumps({"route": route, "body": body}) + "\n")
            self.log.flush()


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def reply(self, status, obj=None, raw=None, content_type="application/json"):
            data = raw if raw is not None else json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/get_server_info":
                return self.reply(200, {"tp_size": 1, "dp_size": 1, "pp_size": 1})
            if self.path == "/get_weight_version":
                return self.reply(200, {"weight_version": state.version})
            self.forward("GET", None)

        def do_POST(self):
            raw = self.body()
            if self.path == "/init_weights_update_group":
                b = json.loads(raw)
                state.record(self.path, b)
                state.group = join_sglang(
                    b["master_address"], b["master_port"], b["rank_offset"], b["world_size"], b["group_name"], b["backend"]
                )
                return self.reply(200, {"success": True, "message": "Succeeded to initialize custom process group."})
            if self.path == "/update_weights_from_distributed":
                b = json.loads(raw)
                state.record(self.path, b)
                specs = [{"name": n, "dtype": d, "shape": s} for n, d, s in zip(b["names"], b["dtypes"], b["shapes"])]
                received = receive_sglang(state.group, specs)
                folder = os.path.join(state.args.out, f"v{b['weight_version']}")
                os.makedirs(folder, exist_ok=True)
                for name in os.listdir(state.args.model):
                    if name.endswith(".json") and name != "model.safetensors.index.json":
                        shutil.copyfile(os.path.join(state.args.model, name), os.path.join(folder, name))
                write_safetensors(os.path.join(folder, "model.safetensors"), received)
                if state.args.forward:
                    status, text, _ = self.send_on(
                        "POST", "/update_weights_from_disk",
                        json.dumps({"model_path": folder, "weight_version": b["weight_version"]}).encode(),
                    )
                    if status != 200:
                        return self.reply(400, {"success": False, "message": text.decode()})
                state.version = b["weight_version"]
                return self.reply(200, {"success": True, "message": "Succeeded to update parameter online."})
            self.forward("POST", raw)

        def send_on(self, method, route, data):
            req = urllib.request.Request(
                state.args.forward + route, data=data, method=method, headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    return r.status, r.read(), r.headers.get("content-type", "application/json")
            except urllib.error.HTTPError as e:
                return e.code, e.read(), e.headers.get("content-type", "application/json")

        def forward(self, method, data):
            if not state.args.forward:
                return self.reply(404, {"error": f"no route {self.path}"})
            status, text, content_type = self.send_on(method, self.path, data)
            self.reply(status, raw=text, content_type=content_type)

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--forward", default=None)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(State(args)))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
