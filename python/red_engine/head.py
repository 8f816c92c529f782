"""The loss head: per scored row, log π(y) and the entropy H of softmax(h·Wᵀ + b), and the
gradient of the surrogate Σ_t (cl_t·log π_t + ce_t·H_t) (the trainer's coefficients dL/dlog π,
dL/dH) without ever holding the (N, V) logits: rows pass in chunks, and each chunk's

    dlogits = cl·(1[v=y] − p) − ce·p·(log p + H)

goes straight into dh (N, C) and dW (V, C) (fp32 accumulation). So a 16k-row micro-batch at vocab
151,936 holds one chunk of logits at a time. The gradients are computed in the forward pass and
handed to autograd by backward, scaled by the incoming gradient of the surrogate."""

import os

import torch

# Elements of one fp32 logits chunk (rows × V), plus as much again for p and dlogits: 2^25 (128 MB,
# 220 rows at V = 151,936) on a CPU; 2^27 (512 MB, 883 rows) on a GPU, where fewer, larger chunks
# keep the kernels busy.
CHUNK_ELEMENTS = {"cpu": 1 << 25, "cuda": 1 << 27}
CHUNK_OVERRIDE = int(os.environ.get("RED_ENGINE_HEAD_CHUNK_ELEMENTS", "0"))  # tests: many small chunks


def chunk_rows(vocab, device):
    return max(1, (CHUNK_OVERRIDE or CHUNK_ELEMENTS.get(device.type, 1 << 25)) // vocab)


def score_chunk(logits, targets):
    """logits (n, V) fp32 → log-softmax (n, V), log π(targets) (n), entropy (n)."""
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp, logp.gather(1, targets[:, None])[:, 0], entropy


class ScoredHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, targets, cl, ce, compute_dtype):
        # h (N, C) hidden states of the rows that predict `targets` (N); weight (V, C); bias (V) or None.
        N = h.shape[0]
        w = weight.to(compute_dtype)
        logprob = torch.empty(N, dtype=torch.float32, device=h.device)
        entropy = torch.empty(N, dtype=torch.float32, device=h.device)
        grads = cl is not None
        dh = torch.empty_like(h) if grads else None  # (N, C)
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if grads else None  # (V, C)
        db = torch.zeros(weight.shape[0], dtype=torch.float32, device=h.device) if grads and bias is not None else None
        step = chunk_rows(weight.shape[0], h.device)
        for s in range(0, N, step):
            e = min(N, s + step)
            hs = h[s:e].to(compute_dtype)
            logits = (hs @ w.t()).float()
            if bias is not None:
                logits += bias.float()
            logp, logprob[s:e], entropy[s:e] = score_chunk(logits, targets[s:e])
            if not grads:
                continue
            # dlogits = cl·(1[v=y] − p) − ce·p·(log p + H), built in place of the logits.
            p = logp.exp()
            g = logp.add_(entropy[s:e, None]).mul_(ce[s:e, None]).add_(cl[s:e, None]).mul_(p).neg_()
            g[torch.arange(e - s, device=g.device), targets[s:e]] += cl[s:e]
            gc = g.to(compute_dtype)
            dh[s:e] = (gc @ w).to(h.dtype)
            dw += (gc.t() @ hs).float()
            if db is not None:
                db += g.sum(0)
        surrogate = (cl * logprob).sum() + (ce * entropy).sum() if grads else logprob.new_zeros(())
        ctx.save_for_backward(dh, dw, db)
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(logprob, entropy)
        return surrogate, logprob, entropy

    @staticmethod
    def backward(ctx, grad_surrogate, _glogprob, _gentropy):
        dh, dw, db = ctx.saved_tensors
        dh = dh * grad_surrogate.to(dh.dtype)
        dw = (dw * grad_surrogate).to(ctx.weight_dtype)
        db = (db * grad_surrogate).to(ctx.bias_dtype) if db is not None else None
        return dh, dw, db, None, None, None, None


def scored_head(h, weight, bias, targets, cl=None, ce=None, compute_dtype=torch.float32):
    """(surrogate, log π (N), entropy (N)); the surrogate's backward yields the chunked gradients."""
    return ScoredHead.apply(h, weight, bias, targets, cl, ce, compute_dtype)
