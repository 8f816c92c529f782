"""The engine's operations, run by every rank on the same command (rank 0 reads it from red and
broadcasts it): the training-engine contract of src/train/engine.ts. Gradients are summed across
ranks, never averaged: red's losses already normalise over the whole batch."""

import contextlib
import math

import torch
import torch.distributed as dist
from torch import nn

from .batches import LoadedBatch
from .checkpoints import load_state, save_for_sampler, save_state, full_tensor, set_full_tensor
from .model import Coefficients, Policy, autocast, decoder_layers, enable_checkpointing, head_of, load_causal_lm
from .sample import sample_rows


class Engine:
    def __init__(self, ranks, settings, log):
        self.ranks = ranks
        self.settings = settings
        self.device = ranks.device
        bf16 = settings["precision"] == "bf16"
        self.compute_dtype = torch.bfloat16 if bf16 else torch.float32
        self.fsdp = settings["strategy"] == "fsdp" and ranks.world > 1
        lm, self.impl = load_causal_lm(settings["modelPath"])
        if settings["activationCheckpointing"]:
            enable_checkpointing(lm)
        self.vocab_size = head_of(lm)[0].shape[0]
        self.max_positions = int(getattr(getattr(lm, "config", None), "max_position_embeddings", 0) or 32768)
        self.names = [n for n, _ in lm.named_parameters()]
        self.params = [p for _, p in lm.named_parameters()]
        self.policy = self.place(Policy(lm, self.compute_dtype))
        self.params = [p for _, p in lm.named_parameters()]  # FSDP2's shards (DTensors) once placed
        self.trainable = self.wrap_ddp(self.policy)
        self.reference = None
        if settings.get("referencePath"):
            ref, _ = load_causal_lm(settings["referencePath"])
            ref.requires_grad_(False)
            self.reference = self.place(Policy(ref, self.compute_dtype))
        self.batches, self.next_batch = {}, 1
        self.optimizers, self.optimizer_settings, self.pending_optimizer_state = {}, {}, {}
        self.stashed = None
        self.weight_group = None  # rollout.weightSync nccl: rank 0's group with the servers (weight_sync.py)
        log(f"engine: {self.impl} model, {ranks.world} rank(s) on {self.device.type}, {settings['strategy']}, {settings['precision']}")

    # ---- placement --------------------------------------------------------------------------
    def place(self, policy):
        policy.to(self.device)
        if not self.fsdp:
            return policy
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # torch ≥ 2.6

        mp = MixedPrecisionPolicy(param_dtype=self.compute_dtype, reduce_dtype=torch.float32)
        for layer in decoder_layers(policy.lm):
            fully_shard(layer, mp_policy=mp)
        fully_shard(policy, mp_policy=mp)
        # Sum, not mean: every sharded unit reduces its own gradients, so each is told (torch ≥ 2.9
        # names it set_gradient_divide_factor, 2.6–2.8 set_reduce_scatter_divide_factor); where
        # neither exists the surrogate is scaled by the world size to undo the mean.
        units = [m for m in policy.modules() if hasattr(m, "set_requires_gradient_sync")]
        setter = next((n for n in ("set_gradient_divide_factor", "set_reduce_scatter_divide_factor") if hasattr(policy, n)), None)
        for unit in units if setter else []:
            getattr(unit, setter)(1.0)
        self.fsdp_scale = 1.0 if setter else float(self.ranks.world)
        return policy

    def wrap_ddp(self, policy):
        if self.fsdp or self.ranks.world == 1:
            return policy
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(policy, device_ids=[self.device.index] if self.device.type == "cuda" else None, broadcast_buffers=False)
        ddp.register_comm_hook(None, allreduce_sum)
        return ddp

    def autocast(self):
        # FSDP2 casts the parameters itself (MixedPrecisionPolicy); DDP and one rank autocast.
        return autocast(self.device, torch.float32 if self.fsdp else self.compute_dtype)

    # ---- batches ----------------------------------------------------------------------------
    def load_batch(self, arrays, budget):
        b = LoadedBatch(
            arrays["ids"].long(), arrays["cuSeqlens"].long(), arrays["scoredFrom"].long(), budget,
            self.ranks.rank, self.ranks.world, self.device,
        )
        handle = self.next_batch
        self.next_batch += 1
        self.batches[handle] = b
        return {"handle": handle, "scoredTokens": b.scored_tokens, "totalTokens": b.total_tokens}

    def release_batch(self, handle):
        self.batches.pop(handle, None)
        return {}

    @torch.no_grad()
    def forward(self, handle, which):
        b = self.batches[handle]
        model = self.policy if which == "policy" else self.reference
        lo, hi = b.slices[self.ranks.rank]
        logprob = torch.zeros(hi - lo, device=self.device)
        entropy = torch.zeros(hi - lo, device=self.device)
        for mb in b.micro:
            with self.autocast():
                _, lp, h = model(mb)
            if not mb.empty:
                logprob[mb.dst - lo], entropy[mb.dst - lo] = lp, h
        sizes = [e - s for s, e in b.slices]
        out = [self.ranks.gather_slices(t.cpu(), sizes) for t in (logprob, entropy)]
        return {}, [("logprob", out[0]), ("entropy", out[1])] if self.ranks.rank == 0 else []

    def forward_backward(self, handle, arrays):
        b = self.batches[handle]
        dlogprob, dentropy = arrays["dLogprob"].to(self.device), arrays["dEntropy"].to(self.device)
        carried = self.set_aside_grads()
        scale = getattr(self, "fsdp_scale", 1.0)
        for i, mb in enumerate(b.micro):
            last = i == len(b.micro) - 1
            cl = dlogprob[mb.dst] if not mb.empty else torch.zeros(1, device=self.device)
            ce = dentropy[mb.dst] if not mb.empty else torch.zeros(1, device=self.device)
            with self.sync(last), self.autocast():
                surrogate, _, _ = self.trainable(mb, Coefficients(cl, ce))
            (surrogate * scale).backward()
        self.restore_grads(carried)
        return {}, []

    def sync(self, last):
        """DDP / FSDP2 reduce the gradients in the last micro-batch's backward only."""
        if self.fsdp:
            self.policy.set_requires_gradient_sync(last)
            return contextlib.nullcontext()
        if isinstance(self.trainable, nn.parallel.DistributedDataParallel) and not last:
            return self.trainable.no_sync()
        return contextlib.nullcontext()

    def set_aside_grads(self):
        # DDP all-reduces p.grad as a whole: gradients accumulated by an earlier forwardBackward
        # (already summed) would be summed again. Keep them aside and add them back after.
        if not isinstance(self.trainable, nn.parallel.DistributedDataParallel):
            return None
        carried = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        return carried

    def restore_grads(self, carried):
        if carried is None:
            return
        for p, g in zip(self.params, carried):
            if g is not None:
                p.grad = g if p.grad is None else p.grad.add_(g)

    # ---- optimisers -------------------------------------------------------------------------
    def create_optimizer(self, name, s):
        decay, no_decay = [], []
        for n, p in zip(self.names, self.params):
            exempt = s["noDecay"] == "norms-and-biases" and (n.endswith(".bias") or n.endswith("norm.weight"))
            (no_decay if exempt else decay).append(p)
        groups = [{"params": decay, "weight_decay": s["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
        kwargs = {"fused": True} if self.device.type == "cuda" and not self.fsdp else {}
        opt = torch.optim.AdamW(groups, lr=0.0, betas=(s["beta1"], s["beta2"]), eps=s["eps"], **kwargs)
        self.optimizers[name] = opt
        self.optimizer_settings[name] = s
        if name in self.pending_optimizer_state:
            self.set_moments(name, *self.pending_optimizer_state.pop(name))
        return {}

    def optim_step(self, name, lr, max_norm):
        opt = self.optimizers[name]
        grads = [p for p in self.params if p.grad is not None]
        limit = math.inf if max_norm is None else max_norm
        norm = float(nn.utils.clip_grad_norm_(grads, limit)) if grads else 0.0
        applied = math.isfinite(norm)
        if applied:
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
        for p in self.params:
            p.grad = None
        return {"gradNorm": json_number(norm), "applied": applied}, []

    def moments(self, name):
        """(step, [(exp_avg, exp_avg_sq) per parameter, None where never stepped])."""
        opt = self.optimizers[name]
        step, out = 0, []
        for p in self.params:
            st = opt.state.get(p, {})
            if "step" in st:
                step = int(float(st["step"]))
            out.append((st["exp_avg"], st["exp_avg_sq"]) if "exp_avg" in st else None)
        return step, out

    def set_moments(self, name, step, tensors):
        """tensors: {hf name: (exp_avg, exp_avg_sq)} full fp32 CPU tensors."""
        opt = self.optimizers[name]
        fused = bool(opt.defaults.get("fused")) or bool(opt.defaults.get("capturable"))
        for n, p in zip(self.names, self.params):
            m, v = tensors[n]
            like = torch.zeros_like(p)
            opt.state[p] = {
                "step": torch.tensor(float(step), dtype=torch.float32, device=p.device if fused else "cpu"),
                "exp_avg": set_full_tensor(like, m),
                "exp_avg_sq": set_full_tensor(torch.zeros_like(p), v),
            }

    # ---- rollback ---------------------------------------------------------------------------
    def stash(self):
        self.stashed = {
            "params": [p.detach().clone() for p in self.params],
            "optimizers": {
                name: {p: {k: v.clone() for k, v in st.items()} for p, st in opt.state.items()}
                for name, opt in self.optimizers.items()
            },
        }
        return {}

    def restore(self):
        if self.stashed is None:
            raise ValueError("restore: nothing was stashed")
        with torch.no_grad():
            for p, s in zip(self.params, self.stashed["params"]):
                p.copy_(s)
        for name, states in self.stashed["optimizers"].items():
            if name in self.optimizers:
                self.optimizers[name].state.clear()
                for p, st in states.items():
                    self.optimizers[name].state[p] = {k: v.clone() for k, v in st.items()}
        return {}

    # ---- files ------------------------------------------------------------------------------
    def save_for_sampler(self, folder, dtype):
        save_for_sampler(self, folder, dtype)
        return {}

    def save_state(self, folder):
        save_state(self, folder)
        return {}

    def load_state(self, folder):
        load_state(self, folder)
        return {}

    def save_grads(self, path):
        """Test-only: every parameter's accumulated gradient (zeros where none) under its name."""
        from .safetensors import write

        grads = [(n, full_tensor(p.grad if p.grad is not None else torch.zeros_like(p)).float()) for n, p in zip(self.names, self.params)]
        if self.ranks.rank == 0:
            write(path, grads)
        return {}

    def load_grads(self, path, prefix):
        """Test-only: sets every gradient from tensors `<prefix><name>` of a safetensors file."""
        from .safetensors import SafetensorsFile

        st = SafetensorsFile(path)
        for n, p in zip(self.names, self.params):
            p.grad = set_full_tensor(torch.zeros_like(p), st.read(prefix + n).float())
        return {}

    # ---- sampling ---------------------------------------------------------------------------
    def sample(self, arrays, params):
        ids, offsets = arrays["promptIds"].tolist(), arrays["promptOffsets"].tolist()
        prompts = [ids[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        n = params["n"]
        rows = [(i, j) for i in range(len(prompts)) for j in range(n)]
        # DDP: every rank holds the whole model and decodes its share of the rows. FSDP2: every
        # forward is collective, so every rank decodes all rows (in step) and rank 0 keeps them.
        share = rows if self.fsdp else rows[self.ranks.rank :: self.ranks.world]
        decoded = sample_rows(
            self.policy, [prompts[i] for i, _ in share], [params["seeds"][i] for i, _ in share], [j for _, j in share],
            params, self.device, self.compute_dtype,
        ) if share else []
        parts = [list(zip(share, decoded))] if self.fsdp else self.ranks.gather_objects(list(zip(share, decoded)))
        if self.ranks.rank != 0:
            return {}, []
        by_row = dict(pair for part in parts for pair in part)
        out_ids, out_lp, lengths, finish = [], [], [], []
        for row in rows:
            t, lp, why = by_row[row]
            out_ids += t
            out_lp += lp
            lengths.append(len(t))
            finish.append(1 if why == "stop" else 0)
        return {}, [
            ("ids", torch.tensor(out_ids, dtype=torch.int32)),
            ("logprobs", torch.tensor(out_lp, dtype=torch.float32)),
            ("lengths", torch.tensor(lengths, dtype=torch.int32)),
            ("stopped", torch.tensor(finish, dtype=torch.uint8)),
        ]


def allreduce_sum(_state, bucket):
    """DDP comm hook: the all-reduce without DDP's division by the world size."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def json_number(x):
    """JSON has no NaN / Infinity: those travel as the strings JavaScript's Number() reads."""
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
