"""Sampling on the engine (rollout.engine: engine): batched decoding with a KV cache, greedy /
temperature / top-k / top-p as src/rollout/sampling.ts defines them. Sample j of prompt i draws
its uniform at step t from a hash of (seeds[i], j, t) alone, so it is the same whatever else
shares its batch, its rank or its pass. It does not need to be fast: vLLM / SGLang are."""

import os

import torch

from .model import PlainQwen2, autocast, body_of, head_of
from .qwen2 import KVCache

ROWS_PER_PASS = int(os.environ.get("RED_ENGINE_SAMPLE_ROWS", "64"))
M32 = 0xFFFFFFFF


def mul32(x, c):
    """(x · c) mod 2^32 for uint32 values held in int64, without overflowing int64."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & M32


def mix32(x):
    """murmur3's finaliser."""
    x = mul32(x ^ (x >> 16), 0x85EBCA6B)
    x = mul32(x ^ (x >> 13), 0xC2B2AE35)
    return x ^ (x >> 16)


def uniforms(seeds, members, step):
    """Uniform in [0, 1) per row from (seed, sample index, step): int64 tensors (B) → float64 (B)."""
    h = mix32(seeds & M32)
    h = mix32(h ^ mul32(members + 1, 0x9E3779B1))
    h = mix32(h ^ mul32(torch.full_like(h, step + 1), 0x27D4EB2F))
    return (h >> 8).double() / float(1 << 24)


def choose(logits, u, temperature, top_k, top_p):
    """logits (B, V) fp32, u (B) → ids (B), log-prob of each under the distribution it came from
    (greedy: the model's log-softmax at T = 1)."""
    if temperature == 0:
        ids = logits.argmax(-1)
        return ids, torch.log_softmax(logits, -1).gather(1, ids[:, None])[:, 0]
    logp = torch.log_softmax(logits / temperature, -1)
    V = logits.shape[-1]
    if (top_k <= 0 or top_k >= V) and top_p >= 1:
        cdf = logp.double().exp().cumsum(-1)
        ids = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp_(max=V - 1)[:, 0]
        return ids, logp.gather(1, ids[:, None])[:, 0]
    sorted_logp, order = logp.sort(-1, descending=True)
    keep = torch.ones_like(sorted_logp, dtype=torch.bool)
    if 0 < top_k < V:  # ties with the k-th are kept too
        keep &= sorted_logp >= sorted_logp[:, top_k - 1 : top_k]
    if top_p < 1:  # the smallest prefix whose mass reaches top_p
        before = sorted_logp.double().exp().cumsum(-1) - sorted_logp.double().exp()
        keep &= before < top_p
    kept = sorted_logp.masked_fill(~keep, float("-inf"))
    kept = kept - torch.logsumexp(kept, -1, keepdim=True)
    cdf = kept.double().exp().cumsum(-1)
    pos = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp_(max=V - 1)
    return order.gather(1, pos)[:, 0], kept.gather(1, pos)[:, 0]


class PlainDecoder:
    def __init__(self, lm, rows, capacity, dtype, device):
        self.body = lm.model
        self.cache = KVCache(lm.config, rows, capacity, dtype, device)

    def step(self, ids, positions, key_mask):
        return self.body(ids, positions, key_mask, self.cache)[:, -1]


class TransformersDecoder:
    def __init__(self, lm):
        self.body = body_of(lm)
        self.past = None
        self.seen = 0  # tokens in the cache

    def step(self, ids, positions, key_mask):
        self.seen += ids.shape[1]
        out = self.body(
            input_ids=ids,
            attention_mask=key_mask[:, : self.seen].long(),
            position_ids=positions,
            past_key_values=self.past,
            use_cache=True,
        )
        self.past = out.past_key_values
        return out.last_hidden_state[:, -1]


def next_logits(lm, decoder, ids, positions, key_mask, compute_dtype):
    """The fp32 logits (B, V) of the last position after feeding `ids` (B, L)."""
    h = decoder.step(ids, positions, key_mask)
    weight, bias = head_of(lm)
    logits = (h.to(compute_dtype) @ weight.to(compute_dtype).t()).float()
    return logits + bias.float() if bias is not None else logits


def sample_rows(policy, prompts, seeds, members, params, device, compute_dtype):
    """Decodes each row (prompt ids, its seed, its sample index); returns [(ids, logprobs, finish)].
    Every model call goes through `policy` (model.Policy), so FSDP2 gathers what it shards."""
    out = []
    for s in range(0, len(prompts), ROWS_PER_PASS):
        e = min(len(prompts), s + ROWS_PER_PASS)
        out += decode_pass(policy, prompts[s:e], seeds[s:e], members[s:e], params, device, compute_dtype)
    return out


@torch.no_grad()
def decode_pass(policy, prompts, seeds, members, params, device, compute_dtype):
    B, P, T = len(prompts), max(len(p) for p in prompts), params["maxTokens"]
    # Left-padded prompts: row b's real tokens end at column P − 1, so every row decodes in step.
    ids = torch.zeros(B, P, dtype=torch.long)
    key_mask = torch.zeros(B, P + T, dtype=torch.bool)
    for b, p in enumerate(prompts):
        ids[b, P - len(p) :] = torch.tensor(p, dtype=torch.long)
        key_mask[b, P - len(p) : P] = True
    ids, key_mask = ids.to(device), key_mask.to(device)
    positions = (key_mask[:, :P].long().cumsum(-1) - 1).clamp_(min=0)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    seeds_t = torch.tensor(seeds, dtype=torch.long, device=device)
    members_t = torch.tensor(members, dtype=torch.long, device=device)
    stop = torch.tensor(params["stopTokenIds"] or [-1], dtype=torch.long, device=device)
    lm = policy.lm
    if isinstance(lm, PlainQwen2):
        decoder = PlainDecoder(lm, B, P + T, compute_dtype, device)
    else:
        decoder = TransformersDecoder(lm)
    tokens, logprobs = [], []
    done = torch.zeros(B, dtype=torch.bool, device=device)
    finished_at = torch.full((B,), T, dtype=torch.long, device=device)
    for t in range(T):
        with autocast(device, compute_dtype):
            logits = policy(run=lambda m: next_logits(m, decoder, ids, positions, key_mask, compute_dtype))
        u = uniforms(seeds_t, members_t, t)
        chosen, lp = choose(logits, u, params["temperature"], params["topK"], params["topP"])
        tokens.append(chosen)
        logprobs.append(lp)
        hit = (chosen[:, None] == stop[None]).any(-1) & ~done
        finished_at[hit] = t + 1
        done |= hit
        if bool(done.all()):
            break
        ids = chosen[:, None]
        positions = (lengths + t)[:, None]
        key_mask[:, P + t] = True
    tokens = torch.stack(tokens, 1).cpu()
    logprobs = torch.stack(logprobs, 1).float().cpu()
    result = []
    for b in range(B):
        n = int(finished_at[b])
        stopped = n < T or (n == T and bool(done[b]))
        result.append((tokens[b, :n].tolist(), logprobs[b, :n].tolist(), "stop" if stopped else "length"))
    return result
