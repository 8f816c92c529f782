"""rollout.weightSync nccl, the engine's part: rank 0 joins the inference servers' transfer group and
broadcasts every parameter to it (nccl_sync.py does both; src/rollout/weight-transfer.ts drives the
servers over HTTP at the same time). Tensors go one at a time, each gathered whole (FSDP2: every rank
takes part in each gather) and cast to the served dtype, so no rank holds a second copy of the model."""

import torch

from .nccl_sync import join_group

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def check_join(group):
    """Rank 0, before the other ranks hear of the request."""
    if group["protocol"] not in ("vllm", "sglang"):
        raise ValueError(f"joinWeightGroup: protocol must be vllm or sglang, got {group['protocol']!r}")
    if group["worldSize"] < 2:
        raise ValueError(f"joinWeightGroup: the group needs the trainer and at least one server worker, got world size {group['worldSize']}")


def check_broadcast(engine, specs):
    """Rank 0: a group to send to, and every tensor known with its shape (the servers were told these)."""
    if engine.weight_group is None:
        raise ValueError("broadcastWeights: no weight group joined (joinWeightGroup first)")
    shapes = {n: list(p.shape) for n, p in zip(engine.names, engine.params)}
    for s in specs:
        if s["name"] not in shapes:
            raise ValueError(f"broadcastWeights: the model has no tensor {s['name']!r}")
        if list(s["shape"]) != shapes[s["name"]]:
            raise ValueError(f"broadcastWeights: {s['name']} has shape {shapes[s['name']]}, the request says {s['shape']}")
        if s["dtype"] not in DTYPES:
            raise ValueError(f"broadcastWeights: {s['name']}: dtype {s['dtype']!r} is not one of {', '.join(DTYPES)}")


def join_weight_group(engine, group):
    if engine.ranks.rank != 0:
        return {}
    if engine.weight_group is not None:  # a second init (servers restarted): the old group is gone
        engine.weight_group.close()
        engine.weight_group = None
    engine.weight_group = join_group(
        group["protocol"],
        group["masterAddress"],
        int(group["masterPort"]),
        int(group["worldSize"]),
        group_name=group["groupName"],
        backend=group["backend"],
        timeout_s=float(group["timeoutS"]),
    )
    return {}


def broadcast_weights(engine, specs):
    by_name = dict(zip(engine.names, engine.params))

    def tensors():
        for s in specs:
            p = by_name[s["name"]]
            whole = p.full_tensor() if hasattr(p, "full_tensor") else p  # on the engine's device
            yield s["name"], whole.detach().to(DTYPES[s["dtype"]])

    if engine.ranks.rank != 0:
        if engine.fsdp:
            for _ in tensors():  # the gathers are collective; rank 0 alone sends
                pass
        return {}
    return {"bytes": engine.weight_group.broadcast(tensors())}
