"""A plain-PyTorch Qwen2 (and Llama) decoder, for interpreters without transformers (Debian's
torch has none). Modules are named as transformers names them, so named_parameters() yields the
Hugging Face tensor names. Shapes: B batch rows, L tokens per row, C channels, NH/NKV heads,
HD head dim, V vocab. It simplifies: default RoPE only, no sliding window, eager attention.

Training batches arrive right-padded with causal attention alone: a real token never sees a
pad (pads come after it) nor another sequence (each sequence has its own row). Decoding passes a
key mask (left-padded prompts) and a KVCache."""

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


class PlainConfig:
    """The keys of config.json the plain model reads, with transformers' defaults."""

    def __init__(self, raw, where):
        def need(key):
            if key not in raw:
                raise ValueError(f"{where}: missing key {key!r}")
            return raw[key]

        self.model_type = raw.get("model_type", "qwen2")
        if self.model_type not in ("qwen2", "llama"):
            raise ValueError(
                f"{where}: model_type {self.model_type!r} needs transformers (pip install transformers); "
                "without it the engine runs qwen2 and llama only"
            )
        self.vocab_size = need("vocab_size")
        self.hidden_size = need("hidden_size")
        self.intermediate_size = need("intermediate_size")
        self.num_layers = need("num_hidden_layers")
        self.num_heads = need("num_attention_heads")
        self.num_kv_heads = raw.get("num_key_value_heads") or self.num_heads
        self.head_dim = raw.get("head_dim") or self.hidden_size // self.num_heads
        self.rms_norm_eps = raw.get("rms_norm_eps", 1e-6)
        self.tie_word_embeddings = bool(raw.get("tie_word_embeddings", False))
        self.attention_bias = self.model_type == "qwen2" or bool(raw.get("attention_bias", False))
        self.max_position_embeddings = raw.get("max_position_embeddings", 32768)
        # transformers 4 writes rope_theta at the top level; transformers 5 nests it in rope_parameters.
        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"{where}: rope_type {rope_type!r} needs transformers (pip install transformers)")
        self.rope_theta = float(rope.get("rope_theta", raw.get("rope_theta", 10000.0)))
        if raw.get("use_sliding_window"):
            raise ValueError(f"{where}: use_sliding_window needs transformers (pip install transformers)")


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        # In fp32 whatever x is, then back to x's dtype, as transformers' Qwen2RMSNorm.
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def rope_tables(positions, head_dim, theta):
    """cos, sin of (B, L, HD) for integer positions (B, L), in fp32 as transformers computes them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=positions.device).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq  # (B, L, HD/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x (B, L, heads, HD) rotated by position: x·cos + rotate_half(x)·sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos[:, :, None, :] + rotated * sin[:, :, None, :]).to(x.dtype)


class KVCache:
    """Keys and values of every layer for B rows of up to S tokens: (B, NKV, S, HD) each."""

    def __init__(self, config, rows, capacity, dtype, device):
        shape = (rows, config.num_kv_heads, capacity, config.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.length = 0


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        bias = c.attention_bias
        self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.head_dim, bias=bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=bias)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, key_mask=None, cache=None, layer=0):
        c = self.c
        B, L, _ = x.shape
        q = apply_rope(self.q_proj(x).view(B, L, c.num_heads, c.head_dim), cos, sin)
        k = apply_rope(self.k_proj(x).view(B, L, c.num_kv_heads, c.head_dim), cos, sin)
        v = self.v_proj(x).view(B, L, c.num_kv_heads, c.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, L, HD)
        start = 0
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start : start + L] = k
            cache.v[layer][:, :, start : start + L] = v
            k, v = cache.k[layer][:, :, : start + L], cache.v[layer][:, :, : start + L]
        group = c.num_heads // c.num_kv_heads
        if group > 1:
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        out = attend(q, k, v, start, key_mask)  # (B, NH, L, HD)
        return self.o_proj(out.transpose(1, 2).reshape(B, L, c.num_heads * c.head_dim))


def attend(q, k, v, start, key_mask):
    """Causal attention of queries at positions start..start+L over keys 0..start+L (key_mask (B, S):
    False = a pad key); softmax in fp32 as transformers' eager attention."""
    if hasattr(F, "scaled_dot_product_attention") and key_mask is None and start == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    L, S = q.shape[2], k.shape[2]
    causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril(start)  # (L, S)
    allowed = causal
    if key_mask is not None:
        # Each query keeps its own key, so a pad query (no real key) stays finite instead of NaN.
        own = causal & ~torch.ones(L, S, dtype=torch.bool, device=q.device).tril(start - 1)
        allowed = (causal[None, None] & key_mask[:, None, None, :S]) | own
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x, cos, sin, key_mask=None, cache=None, layer=0):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, key_mask, cache, layer)
        return h + self.mlp(self.post_attention_layernorm(h))


class Body(nn.Module):
    """transformers' Qwen2Model: embeddings, layers, final norm; returns hidden states (B, L, C)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.checkpointing = False

    def forward(self, ids, positions=None, key_mask=None, cache=None):
        B, L = ids.shape
        if positions is None:
            positions = torch.arange(L, device=ids.device).expand(B, L)
        cos, sin = rope_tables(positions, self.c.head_dim, self.c.rope_theta)
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            if self.checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin, key_mask, cache, i)
        if cache is not None:
            cache.length += L
        return self.norm(x)


class PlainQwen2(nn.Module):
    """Qwen2ForCausalLM's parameters under its names (`model.*`, `lm_head.weight` when untied)."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Body(c)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def head_weight(self):
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
