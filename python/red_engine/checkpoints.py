"""The engine's files, in the one format every engine shares (src/train/engine.ts):
- saveForSampler: a Hugging Face folder (config.json and generation_config.json from the source
  folder, model.safetensors in fp32 or bf16 under the source's names, the tokenizer files copied);
- saveState: master.safetensors (fp32 parameters) and optimizer-NAME.safetensors
  (`<name>.exp_avg`, `<name>.exp_avg_sq`, metadata {"step": "12"});
- loadState: master.safetensors (else model.safetensors) and every optimizer-*.safetensors.
Every rank takes part (FSDP2's shards are gathered and scattered); rank 0 alone writes."""

import glob
import json
import os
import shutil

import torch

from .safetensors import SafetensorsFile, write

MASTER = "master.safetensors"


def full_tensor(t):
    """A whole tensor on the CPU from a plain tensor or an FSDP2 shard (collective for shards)."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().to("cpu")


def set_full_tensor(like, full):
    """`full` (a CPU tensor) laid out as `like` (plain, or an FSDP2 shard): the value to assign."""
    if hasattr(like, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(like.dtype), like.device_mesh, like.placements)
    return full.to(device=like.device, dtype=like.dtype)


def regenerated(name):
    """Files of a model folder that saveForSampler writes itself rather than copying (io.ts's rule)."""
    return (
        name in ("config.json", "generation_config.json", "model.safetensors.index.json")
        or name.endswith((".safetensors", ".bin", ".pt", ".pth"))
        or name.startswith(".")
    )


def save_for_sampler(engine, folder, dtype):
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    tensors = [(n, full_tensor(p).to(torch_dtype)) for n, p in zip(engine.names, engine.params)]
    if engine.ranks.rank != 0:
        return
    source = engine.settings["modelPath"]
    target = os.path.abspath(folder)
    tmp = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        for name in os.listdir(source):
            src = os.path.join(source, name)
            if not regenerated(name) and os.path.isfile(src):
                shutil.copyfile(src, os.path.join(tmp, name))
        with open(os.path.join(source, "config.json")) as f:
            config = json.load(f)
        key = "torch_dtype" if "torch_dtype" in config or "dtype" not in config else "dtype"
        config[key] = "bfloat16" if dtype == "bf16" else "float32"
        write_json(os.path.join(tmp, "config.json"), config)
        write_json(os.path.join(tmp, "generation_config.json"), generation_config(source, config))
        write(os.path.join(tmp, "model.safetensors"), tensors, {"format": "pt"})
        if os.path.exists(target):
            old = f"{target}.old-{os.getpid()}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def generation_config(source, config):
    path = os.path.join(source, "generation_config.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {k: config[k] for k in ("bos_token_id", "eos_token_id") if config.get(k) is not None}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def save_state(engine, folder):
    master = [(n, full_tensor(p).float()) for n, p in zip(engine.names, engine.params)]
    optimizers = {}
    for name in engine.optimizers:
        step, moments = engine.moments(name)
        tensors = []
        for n, p, mv in zip(engine.names, engine.params, moments):
            m, v = mv if mv is not None else (torch.zeros_like(p), torch.zeros_like(p))
            tensors += [(f"{n}.exp_avg", full_tensor(m).float()), (f"{n}.exp_avg_sq", full_tensor(v).float())]
        optimizers[name] = (step, tensors)
    if engine.ranks.rank != 0:
        return
    os.makedirs(folder, exist_ok=True)
    write(os.path.join(folder, MASTER), master)
    for name, (step, tensors) in optimizers.items():
        write(os.path.join(folder, f"optimizer-{name}.safetensors"), tensors, {"step": step})


def check_state(engine, folder):
    """Rank 0, before the command goes to the other ranks: every tensor is there with its shape."""
    path = os.path.join(folder, MASTER)
    if not os.path.exists(path):
        path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        raise ValueError(f"{folder}: neither {MASTER} nor model.safetensors (not a saved state)")
    files = [(path, "")] + [(f, ".exp_avg") for f in sorted(glob.glob(os.path.join(folder, "optimizer-*.safetensors")))]
    for file, suffix in files:
        st = SafetensorsFile(file)
        for n, p in zip(engine.names, engine.params):
            for s in ([suffix, ".exp_avg_sq"] if suffix else [""]):
                if n + s not in st.entries:
                    raise ValueError(f"{file}: missing tensor {n + s!r}")
                if st.shape(n + s) != list(p.shape):
                    raise ValueError(f"{file}: tensor {n + s!r} has shape {st.shape(n + s)}, the model's is {list(p.shape)}")


def load_state(engine, folder):
    path = os.path.join(folder, MASTER)
    st = SafetensorsFile(path if os.path.exists(path) else os.path.join(folder, "model.safetensors"))
    with torch.no_grad():
        for n, p in zip(engine.names, engine.params):
            p.copy_(set_full_tensor(p, st.read(n).float()))
    for file in sorted(glob.glob(os.path.join(folder, "optimizer-*.safetensors"))):
        name = os.path.basename(file)[len("optimizer-") : -len(".safetensors")]
        st = SafetensorsFile(file)
        step = int(st.metadata.get("step", "0"))
        tensors = {n: (st.read(f"{n}.exp_avg").float(), st.read(f"{n}.exp_avg_sq").float()) for n in engine.names}
        if name in engine.optimizers:
            engine.set_moments(name, step, tensors)
        else:  # applied when createOptimizer(name) comes
            engine.pending_optimizer_state[name] = (step, tensors)
