"""The policy model: transformers' AutoModelForCausalLM where transformers is importable (every
causal LM it supports trains), else the plain Qwen2 of qwen2.py. Either way the parameters carry
their Hugging Face names, and Policy (the module DDP / FSDP2 wrap) runs a micro-batch as one
right-padded (B, L) batch with causal attention (no sequence sees another) into the chunked head."""

import contextlib
import json
import os

import torch
from torch import nn

from .head import scored_head
from .qwen2 import PlainConfig, PlainQwen2
from .safetensors import SafetensorsFile


def has_transformers():
    if os.environ.get("RED_ENGINE_PLAIN") == "1":  # tests: the plain model on a machine with transformers
        return False
    try:
        import transformers  # noqa: F401

        return True
    except ImportError:
        return False


def read_config(folder):
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"{path}: not found (the model folder must hold config.json)")
    with open(path) as f:
        return json.load(f), path


def load_causal_lm(folder):
    """(model in fp32 on the CPU, which implementation)."""
    raw, where = read_config(folder)
    if has_transformers():
        from transformers import AutoModelForCausalLM

        kwargs = {"attn_implementation": "sdpa"}
        try:
            lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
        except TypeError:  # transformers 4 names it torch_dtype
            lm = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, **kwargs)
        for key in ("final_logit_softcapping", "logit_scale"):
            if getattr(lm.config, key, None):
                raise ValueError(f"{where}: {key} is not supported by the engine's loss head")
        return lm, "transformers"
    lm = PlainQwen2(PlainConfig(raw, where))
    load_plain_weights(lm, folder)
    return lm, "plain"


def weight_files(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(folder, s) for s in shards]
    single = os.path.join(folder, "model.safetensors")
    if not os.path.exists(single):
        raise ValueError(f"{single}: not found (the model folder must hold model.safetensors)")
    return [single]


def load_plain_weights(lm, folder):
    params = dict(lm.named_parameters())
    seen = set()
    for file in weight_files(folder):
        st = SafetensorsFile(file)
        for name in st.names():
            if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and name not in params):
                continue  # recomputed from rope_theta / tied to the embedding
            if name not in params:
                raise ValueError(f"{file}: unexpected tensor {name!r} (config.json describes a model without it)")
            if st.shape(name) != list(params[name].shape):
                raise ValueError(
                    f"{file}: tensor {name!r} has shape {st.shape(name)} but config.json implies {list(params[name].shape)}"
                )
            with torch.no_grad():
                params[name].copy_(st.read(name).float())
            seen.add(name)
    missing = [n for n in params if n not in seen]
    if missing:
        raise ValueError(f"{weight_files(folder)[0]}: missing tensor {missing[0]!r}")


def body_of(lm):
    """The decoder without its head (transformers' `model`), returning hidden states."""
    return lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model


def head_of(lm):
    """(weight (V, C), bias or None): the output projection (the embedding when tied)."""
    if isinstance(lm, PlainQwen2):
        return lm.head_weight(), None
    out = lm.get_output_embeddings()
    return out.weight, getattr(out, "bias", None)


def hidden_states(lm, ids):
    """ids (B, L) right-padded → final hidden states (B, L, C), causal attention only."""
    body = body_of(lm)
    if isinstance(lm, PlainQwen2):
        return body(ids)
    return body(input_ids=ids, use_cache=False).last_hidden_state


class Policy(nn.Module):
    """What DDP / FSDP2 wrap: calling it (so their hooks run) scores one micro-batch."""

    def __init__(self, lm, compute_dtype):
        super().__init__()
        self.lm = lm
        self.compute_dtype = compute_dtype

    def forward(self, mb=None, coefs=None, run=None):
        # run(lm): any other computation on the model (a decoding step), inside this call so that
        # FSDP2 has gathered the parameters it holds at the root (embeddings, final norm, head).
        if run is not None:
            return run(self.lm)
        # mb: a MicroBatch (batches.py); rows (N) index the flattened (B·L) hidden states.
        # coefs: None (scores only) or a Coefficients, which FSDP2 does not cast to bf16 as it
        # casts a forward's tensor arguments.
        h = hidden_states(self.lm, mb.ids)
        rows = h.reshape(-1, h.shape[-1]).index_select(0, mb.rows)  # (N, C)
        weight, bias = head_of(self.lm)
        cl, ce = (coefs.logprob, coefs.entropy) if coefs is not None else (None, None)
        return scored_head(rows, weight, bias, mb.targets, cl, ce, self.compute_dtype)


class Coefficients:
    """(N) fp32 dL/dlog π and dL/dH of a micro-batch's scored rows."""

    def __init__(self, logprob, entropy):
        self.logprob, self.entropy = logprob, entropy


def enable_checkpointing(lm):
    if isinstance(lm, PlainQwen2):
        lm.model.checkpointing = True
        return
    lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # transformers checkpoints only in training mode; training mode must not bring dropout with it
    # (log-probabilities are compared across passes), so every dropout is set to zero.
    lm.train()
    for m in lm.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.0


def decoder_layers(lm):
    """The repeated blocks (FSDP2 shards each one as a unit)."""
    body = body_of(lm)
    return list(body.layers) if hasattr(body, "layers") else []


def autocast(device, dtype):
    """bf16 autocast on `device`, or nothing in fp32 (torch 1.13's CPU autocast refuses fp32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
