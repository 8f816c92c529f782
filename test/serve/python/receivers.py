"""Stand-ins for the server side of NCCL weight sync, run as separate processes by
test_nccl_sync.py: what SGLang's workers and vLLM's workers do when their join and receive calls
arrive, written from their sources (SGLang: model_runner.init_weights_update_group and
update_weights_from_distributed; vLLM: StatelessProcessGroup.create and PyNcclCommunicator's
unique-id exchange), with gloo in place of NCCL where a GPU would be needed.

    python3 receivers.py sglang ADDRESS PORT RANK WORLD GROUP SPECS_JSON OUT
    python3 receivers.py vllm ADDRESS PORT RANK WORLD OUT
"""

import ctypes
import json
import pickle
import sys
import types
from datetime import timedelta

import torch
import torch.distributed as dist


def join_sglang(address, port, rank, world, group, backend="gloo"):
    """SGLang's /init_weights_update_group on one worker: rank `rank` of a group named `group`."""
    from torch.distributed import distributed_c10d as c10d

    timeout = timedelta(seconds=60)
    store, rank, world = next(c10d.rendezvous(f"tcp://{address}:{port}", rank, world, timeout=timeout))
    store.set_timeout(timeout)
    store = c10d.PrefixStore(group, store)
    try:
        made = c10d._new_process_group_helper(world, rank, [], c10d.Backend(backend), store, group_name=group, pg_options=None, timeout=timeout)
    except TypeError:
        made = c10d._new_process_group_helper(world, rank, [], c10d.Backend(backend), store, group_name=group, backend_options=None, timeout=timeout)
    pg = made[0] if isinstance(made, tuple) else made
    ranks = c10d._world.pg_group_ranks if hasattr(c10d, "_world") else c10d._pg_group_ranks  # torch < 2
    ranks[pg] = {i: i for i in range(world)}
    return pg


def receive_sglang(pg, specs):
    """SGLang's /update_weights_from_distributed: {name: tensor} from rank 0's broadcasts."""
    received, handles = {}, []
    for spec in specs:  # SGLang posts every receive at once, then waits
        t = torch.empty(spec["shape"], dtype=getattr(torch, spec["dtype"]))
        # gloo (torch 1.13) has no bfloat16: nccl_sync sends its bytes as uint8, received the same way.
        into = t.view(torch.uint8) if t.dtype == torch.bfloat16 else t
        handles.append(dist.broadcast(into, src=0, group=pg, async_op=True))
        received[spec["name"]] = t
    for h in handles:
        h.wait()
    return received


def sglang(address, port, rank, world, group, specs, out):
    torch.save(receive_sglang(join_sglang(address, port, rank, world, group), specs), out)


def vllm(address, port, rank, world, out):
    # vLLM's pynccl_wrapper.ncclUniqueId, under its module path, for the unpickling.
    parts = "vllm.distributed.device_communicators.pynccl_wrapper".split(".")
    for i in range(len(parts)):
        sys.modules[".".join(parts[: i + 1])] = types.ModuleType(".".join(parts[: i + 1]))

    class ncclUniqueId(ctypes.Structure):
        _fields_ = [("internal", ctypes.c_byte * 128)]

    ncclUniqueId.__module__ = ".".join(parts)
    sys.modules[".".join(parts)].ncclUniqueId = ncclUniqueId
    store = torch.distributed.TCPStore(address, port, world_size=world, is_master=False, timeout=timedelta(seconds=60))
    uid = pickle.loads(store.get("broadcast_from/0/0"))  # PyNcclCommunicator: group.broadcast_obj(unique_id, src=0)
    assert isinstance(uid, ncclUniqueId), type(uid)
    with open(out, "w") as f:
        json.dump({"rank": rank, "unique_id": bytes(uid.internal).hex()}, f)


if __name__ == "__main__":
    kind, address, port, rank, world = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if kind == "sglang":
        sglang(address, port, rank, world, sys.argv[6], json.loads(sys.argv[7]), sys.argv[8])
    else:
        vllm(address, port, rank, world, sys.argv[6])
