"""The Python half of scripts/device-check.sh: on the GPU machine (PyTorch + transformers, no Node)
it drives the engine through its real wire (the Unix socket and shared-memory files red uses, with
a small client written here) and writes its figures as JSON lines to --out:
- numerics: the engine on the transformers golden fixtures (log π, entropy, gradients, greedy
  decode), through transformers' AutoModelForCausalLM and through the plain Qwen2;
- speed: engine train-step tokens/s (bf16, random weights) beside a bare PyTorch + transformers loop
  of the same model, batch and micro-batches, at the Qwen2.5-0.5B and 1.5B shapes;
- scaling: the same step on 2 GPUs (DDP) when the machine has them.
--mode cpu runs every part at tiny shapes on a CPU (the dry run of the script here)."""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import shutil
import tempfile
import time
import traceback

import torch

from red_engine.safetensors import SafetensorsFile, write
from red_engine.wire import MappedFile

SHAPES = {  # name: hidden, layers, heads, kv heads, intermediate, vocab
    "qwen2.5-0.5b": (896, 24, 14, 2, 4864, 151936),
    "qwen2.5-1.5b": (1536, 28, 12, 2, 8960, 151936),
    "tiny-a": (64, 2, 4, 2, 176, 384),
    "tiny-b": (128, 3, 4, 2, 256, 1024),
}


def emit(out, row):
    row = {**row, "device": device_name(), "torch": torch.__version__}
    line = json.dumps(row)
    print(line, flush=True)
    with open(out, "a") as f:
        f.write(line + "\n")


def device_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


class EngineClient:
    """red's side of the wire, as src/train/engines/torch-wire.ts does it, for a machine without Node."""

    def __init__(self, settings, env=None):
        self.dir = tempfile.mkdtemp(prefix="red-engine-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        path = os.path.join(self.dir, "engine.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        server.settimeout(180)
        self.to = MappedFile(os.path.join(self.dir, "to-engine"), create=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "red_engine", "--socket", path], env={**os.environ, **(env or {})})
        self.sock, _ = server.accept()
        self.sock.settimeout(1800)
        self.next_id = 1
        self.engine_s = 0.0
        self.round_trip_s = 0.0
        r = self.call("init", {"settings": settings, "shm": self.dir})
        self.info, self.world = r["info"], r["world"]

    def call(self, op, fields=None, arrays=()):
        started = time.perf_counter()
        descs, offset = [], 0
        for name, t in arrays:
            kind = {torch.int32: "i32", torch.float32: "f32"}[t.dtype]
            descs.append({"name": name, "dtype": kind, "offset": offset, "length": t.numel()})
            offset += -(-t.numel() * 4 // 8) * 8
        self.to.ensure(offset, grow=True)
        for d, (_, t) in zip(descs, arrays):
            self.to.view(t.dtype, d["offset"], d["length"]).copy_(t.reshape(-1))
        msg = {"id": self.next_id, "op": op, **(fields or {}), "arrays": descs}
        self.next_id += 1
        raw = json.dumps(msg).encode()
        self.sock.sendall(struct.pack("<I", len(raw)) + raw)
        while True:
            reply = json.loads(self._exactly(struct.unpack("<I", self._exactly(4))[0]))
            if "id" in reply or reply.get("event") == "fatal":
                break
        if not reply.get("ok"):
            raise RuntimeError(f"{op}: {reply.get('error')}")
        out = {}
        if reply.get("arrays"):
            f = MappedFile(os.path.join(self.dir, "from-engine"), create=False)
            for d in reply["arrays"]:
                dtype = {"i32": torch.int32, "f32": torch.float32, "u8": torch.uint8}[d["dtype"]]
                f.ensure(d["offset"] + d["length"] * torch.tensor([], dtype=dtype).element_size(), grow=False)
                out[d["name"]] = f.view(dtype, d["offset"], d["length"]).clone()
        self.round_trip_s += time.perf_counter() - started
        self.engine_s += reply.get("engineS", 0.0)
        reply.update(out)
        return reply

    def _exactly(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("the engine closed its socket")
            buf += chunk
        return buf

    def close(self):
        try:
            self.call("exit")
        except Exception:  # noqa: BLE001
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def settings(model, devices=1, precision="fp32"):
    return {
        "kind": "torch", "modelPath": model, "referencePath": None, "precision": precision,
        "activationCheckpointing": False, "devices": devices, "python": None, "strategy": "ddp",
    }


def i32(xs):
    return torch.tensor(xs, dtype=torch.int32)


# ---- numerics ---------------------------------------------------------------------------------
def numerics(fixtures, out):
    plain_only = {"RED_ENGINE_PLAIN": "1"}
    for kind in ("tied", "untied"):
        folder = os.path.join(fixtures, f"qwen2-tiny-{kind}")
        for label, env in (("transformers-or-plain", None), ("plain", plain_only)):
            client = EngineClient(settings(folder), env)
            try:
                emit(out, {"check": "numerics", "fixture": kind, "impl": client.info["impl"], **golden_diffs(client, folder)})
            finally:
                client.close()


def golden_diffs(client, folder):
    g = SafetensorsFile(os.path.join(folder, "golden.safetensors"))
    ids, mask = g.read("input_ids"), g.read("attention_mask")
    lens = mask.sum(1).tolist()
    seqs = [ids[b, :n].tolist() for b, n in enumerate(lens)]
    valid = g.read("valid").bool()
    pick = lambda name, scale=1.0: (scale * g.read(name)[valid]).float()  # noqa: E731
    batch = client.call("loadBatch", {"microBatchTokens": 0}, [
        ("ids", i32(sum(seqs, []))), ("cuSeqlens", i32([0, lens[0], lens[0] + lens[1]])), ("scoredFrom", i32([1, 1])),
    ])
    fwd = client.call("forward", {"handle": batch["handle"], "model": "policy"})
    diffs = {
        "logprob_max_diff": (fwd["logprob"] - pick("next_logprob")).abs().max().item(),
        "entropy_max_diff": (fwd["entropy"] - pick("entropy")).abs().max().item(),
    }
    client.call("forwardBackward", {"handle": batch["handle"]}, [
        ("dLogprob", pick("loss_coef_logprob")), ("dEntropy", pick("loss_coef_entropy", 0.1)),
    ])
    path = os.path.join(client.dir, "grads.safetensors")
    client.call("saveGrads", {"file": path})
    got = SafetensorsFile(path)
    worst = 0.0
    for name in got.names():
        want = g.read(f"grad.{name}")
        worst = max(worst, ((got.read(name) - want).abs().max() / want.abs().max()).item())
    diffs["grad_max_rel_diff"] = worst
    prompt = g.read("greedy_prompt")[0].tolist()
    want = g.read("greedy_output")[0].tolist()[len(prompt):]
    params = {"n": 1, "temperature": 0, "topP": 1, "topK": 0, "maxTokens": len(want), "seeds": [0], "stopTokenIds": []}
    sampled = client.call("sample", {"params": params}, [("promptIds", i32(prompt)), ("promptOffsets", i32([0, len(prompt)]))])
    diffs["greedy_equal"] = sampled["ids"].tolist() == want
    diffs["pass"] = diffs["logprob_max_diff"] < 1e-4 and diffs["grad_max_rel_diff"] < 1e-4 and diffs["greedy_equal"]
    return diffs


# ---- speed ------------------------------------------------------------------------------------
def random_folder(shape, root):
    """A Hugging Face folder of random bf16 weights under Qwen2's names (speed does not depend on values)."""
    from red_engine.qwen2 import PlainConfig, PlainQwen2

    C, L, NH, NKV, I, V = SHAPES[shape]
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": C, "num_hidden_layers": L,
        "num_attention_heads": NH, "num_key_value_heads": NKV, "intermediate_size": I, "vocab_size": V,
        "rms_norm_eps": 1e-6, "rope_theta": 1e6, "tie_word_embeddings": True, "max_position_embeddings": 32768,
        "hidden_act": "silu", "torch_dtype": "bfloat16",
    }
    folder = os.path.join(root, shape)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    torch.manual_seed(0)
    lm = PlainQwen2(PlainConfig(config, folder))
    write(os.path.join(folder, "model.safetensors"), [(n, p.detach().to(torch.bfloat16)) for n, p in lm.named_parameters()])
    return folder


def bare_loop(folder, ids, micro, steps, device):
    """The peer: the same model (transformers, SDPA, bf16 autocast), batch and micro-batches, mean
    token NLL, fused AdamW. Without transformers (the CPU dry run): the plain Qwen2 and F.cross_entropy."""
    from red_engine.model import autocast, has_transformers, load_causal_lm

    lm, impl = load_causal_lm(folder)
    lm.to(device)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-5, weight_decay=0.01, **fused)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ids = ids.to(device)

    def step():
        for s in range(0, ids.shape[0], micro):
            mb = ids[s : s + micro]
            with autocast(device, dtype):
                if has_transformers():
                    loss = lm(input_ids=mb, labels=mb).loss
                else:
                    logits = lm.model(mb) @ lm.head_weight().t()
                    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), mb[:, 1:].reshape(-1))
            (loss * mb.shape[0] / ids.shape[0]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return timed(step, steps, device), impl


def engine_loop(folder, ids, micro, steps, devices, precision):
    client = EngineClient(settings(folder, devices, precision))
    try:
        B, T = ids.shape
        batch = [("ids", ids.reshape(-1).int()), ("cuSeqlens", i32([T * b for b in range(B + 1)])), ("scoredFrom", i32([1] * B))]
        client.call("createOptimizer", {"name": "bench", "settings": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0.01, "noDecay": "none"}})
        n = B * (T - 1)
        coef = [("dLogprob", torch.full((n,), -1.0 / n)), ("dEntropy", torch.zeros(n))]

        def step():
            h = client.call("loadBatch", {"microBatchTokens": micro * T}, batch)["handle"]
            client.call("forwardBackward", {"handle": h}, coef)
            client.call("optimStep", {"name": "bench", "lr": 1e-5, "maxGradNorm": None})
            client.call("releaseBatch", {"handle": h})

        step()
        client.engine_s = client.round_trip_s = 0.0
        seconds = timed(step, steps, None, warm=False)
        wire = (client.round_trip_s - client.engine_s) / steps
        return seconds, wire, client.info["impl"], client.world
    finally:
        client.close()


def timed(step, steps, device, warm=True):
    if warm:
        step()
    sync = (lambda: torch.cuda.synchronize()) if device is not None and device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def speed(shapes, batch, seq, micro, steps, out, root):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = "bf16" if device.type == "cuda" else "fp32"
    for shape in shapes:
        folder = random_folder(shape, root)
        V = SHAPES[shape][5]
        ids = torch.randint(0, V, (batch, seq), generator=torch.Generator().manual_seed(1))
        tokens = batch * seq
        engine_s, wire_s, impl, world = engine_loop(folder, ids, micro, steps, 1, precision)
        bare_s, bare_impl = bare_loop(folder, ids, micro, steps, device)
        row = {
            "check": "speed", "model": shape, "tokens": tokens, "micro_batch": f"{micro}x{seq}", "precision": precision,
            "engine_tokens_per_s": round(tokens / engine_s, 1), "bare_tokens_per_s": round(tokens / bare_s, 1),
            "engine_vs_bare": round(bare_s / engine_s, 3), "target": "engine_vs_bare >= 0.95",
            "wire_ms_per_step": round(wire_s * 1000, 2), "wire_share": round(wire_s / engine_s, 4),
            "engine_impl": impl, "bare_impl": bare_impl, "steps": steps,
        }
        emit(out, row)
        if device.type == "cuda" and torch.cuda.device_count() >= 2:
            two_s, _, _, world = engine_loop(folder, ids, micro, steps, 2, precision)
            emit(out, {"check": "scaling", "model": shape, "gpus": world, "tokens_per_s": round(tokens / two_s, 1), "vs_one_gpu": round(engine_s / two_s, 3)})
        torch.cuda.empty_cache() if device.type == "cuda" else None
    if not (device.type == "cuda" and torch.cuda.device_count() >= 2):
        emit(out, {"check": "scaling", "note": f"not run: {torch.cuda.device_count() if device.type == 'cuda' else 0} GPU(s) here, DDP scaling needs 2 or more"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["gpu", "cpu"], default="gpu")
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    gpu = args.mode == "gpu"
    if gpu and not torch.cuda.is_available():
        emit(args.out, {"check": "setup", "error": "no CUDA device visible to torch"})
        return 1
    root = tempfile.mkdtemp(prefix="red-device-check-")
    try:
        return run_checks(args, gpu, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_checks(args, gpu, root):
    """Each part in turn, its figures (or its error) into args.out; 1 when any part failed."""
    status = 0
    for name, run in (
        ("numerics", lambda: numerics(args.fixtures, args.out)),
        ("speed", lambda: speed(
            ["qwen2.5-0.5b", "qwen2.5-1.5b"] if gpu else ["tiny-a", "tiny-b"],
            8 if gpu else 4, 2048 if gpu else 64, 4 if gpu else 2, 5 if gpu else 2, args.out, root)),
    ):
        try:
            run()
        except Exception as err:  # noqa: BLE001 — one failed part must not hide the others' figures
            traceback.print_exc()
            emit(args.out, {"check": name, "error": f"{type(err).__name__}: {err}"})
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
