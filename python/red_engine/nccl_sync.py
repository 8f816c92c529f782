"""Trainer-side NCCL weight sync to inference servers: the trainer is rank 0 of a group that the
servers' workers join, and broadcasts each named tensor to them. The servers are driven over HTTP
at the same time by red's TypeScript side (src/rollout/weight-transfer.ts); this module only joins
the group and sends. It imports torch and the standard library, never vllm or sglang.

Two kinds of group, one per server family:

- ``"vllm"``: vLLM's weight-transfer engine (``--weight-transfer-config '{"backend":"nccl"}'``)
  forms a ``StatelessProcessGroup`` (a TCPStore at master_address:master_port, rank 0 its server)
  and a raw NCCL communicator whose unique id rank 0 publishes under ``broadcast_from/0/0`` as a
  pickled ``vllm.distributed.device_communicators.pynccl_wrapper.ncclUniqueId``. The trainer does
  the same through ctypes on libnccl (``VLLM_NCCL_SO_PATH``, else ``libnccl.so.2``, which torch's
  CUDA wheels load). Tensors go one ``ncclBroadcast`` each on the current CUDA stream (vLLM's
  unpacked mode, ``packed: false``).
- ``"sglang"``: SGLang's ``/init_weights_update_group`` joins a torch.distributed process group
  (``tcp://master_address:master_port``, a ``PrefixStore`` named group_name); the trainer joins it
  the same way as rank 0 and broadcasts with ``torch.distributed.broadcast``.

The API the engine calls::

    group = join_group("vllm" | "sglang", master_address, master_port, world_size,
                       group_name="weight_update_group", backend="nccl", timeout_s=600)
    group.broadcast(named_tensors)   # [(name, tensor)], in the order of the HTTP update's names
    group.close()
    tensor_specs(named_tensors)      # [{"name", "dtype", "shape"}] for the HTTP update

join_group returns once every rank has joined, so it is called while the servers' join calls are
in flight; broadcast likewise while their update calls are. Tensors must be on the GPU for NCCL
(any device torch.distributed's backend takes for "sglang" with backend="gloo", as in the tests).
Never run against a real vLLM or SGLang (neither installs on red's machines): see the README.
"""

from __future__ import annotations

import ctypes
import inspect
import os
import pickle
import sys
import types
from datetime import timedelta
from typing import Callable, Iterable, Optional, Protocol

import torch
import torch.distributed as dist

VLLM_UNIQUE_ID_MODULE = "vllm.distributed.device_communicators.pynccl_wrapper"

# ncclDataType_t (nccl.h)
NCCL_DTYPES = {
    torch.int8: 0,
    torch.uint8: 1,
    torch.int32: 2,
    torch.int64: 4,
    torch.float16: 6,
    torch.float32: 7,
    torch.float64: 8,
    torch.bfloat16: 9,
}


def tensor_specs(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> list[dict]:
    """Name, torch dtype name and shape of each tensor, as the servers' update calls take them."""
    return [
        {"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
        for name, t in named_tensors
    ]


class WeightGroup(Protocol):
    protocol: str

    def broadcast(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int: ...

    def close(self) -> None: ...


def join_group(
    protocol: str,
    master_address: str,
    master_port: int,
    world_size: int,
    group_name: str = "weight_update_group",
    backend: str = "nccl",
    timeout_s: float = 600,
    nccl: Optional["NcclLibrary"] = None,
    stream: Optional[Callable[[], int]] = None,
) -> WeightGroup:
    """Joins the group as rank 0 (see the module's docstring); returns once every rank has."""
    if world_size < 2:
        raise ValueError(f"world_size must be at least 2 (the trainer and one server worker), got {world_size}")
    if protocol == "vllm":
        return VllmGroup(master_address, master_port, world_size, timeout_s, nccl or NcclLibrary(), stream)
    if protocol == "sglang":
        return SglangGroup(master_address, master_port, world_size, group_name, backend, timeout_s)
    raise ValueError(f'protocol must be "vllm" or "sglang", got {protocol!r}')


class SglangGroup:
    """Rank 0 of the torch.distributed group SGLang's workers form in /init_weights_update_group."""

    protocol = "sglang"

    def __init__(self, address: str, port: int, world_size: int, name: str, backend: str, timeout_s: float):
        from torch.distributed import distributed_c10d as c10d

        self.backend = backend
        timeout = timedelta(seconds=timeout_s)
        store, rank, size = next(c10d.rendezvous(f"tcp://{address}:{port}", 0, world_size, timeout=timeout))
        store.set_timeout(timeout)
        # A group beside the trainer's own default one (DDP/FSDP), built as SGLang builds its side:
        # torch has no public call for a second top-level group, so its helper is used, whose
        # signature moved between versions (pg_options → backend_options, a (pg, store) result).
        helper = c10d._new_process_group_helper
        params = inspect.signature(helper).parameters
        options = {"backend_options" if "backend_options" in params else "pg_options": None}
        made = helper(
            size,
            rank,
            [],
            c10d.Backend(backend),
            c10d.PrefixStore(name, store),
            group_name=name,
            timeout=timeout,
            **options,
        )
        self.group = made[0] if isinstance(made, tuple) else made
        ranks = c10d._world.pg_group_ranks if hasattr(c10d, "_world") else c10d._pg_group_ranks  # torch < 2
        ranks[self.group] = {i: i for i in range(size)}

    def broadcast(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Sends each tensor from rank 0, in order; returns the bytes sent."""
        sent = 0
        for _, t in named_tensors:
            t = t.detach().contiguous()
            if self.backend == "gloo" and t.dtype == torch.bfloat16:
                t = t.view(torch.uint8)  # gloo (torch 1.13) has no bfloat16 (nor int16): the same bytes go as uint8
            dist.broadcast(t, src=0, group=self.group)
            sent += t.numel() * t.element_size()
        return sent

    def close(self) -> None:
        dist.destroy_process_group(self.group)


class NcclLibrary:
    """The four NCCL calls the vLLM group needs, through ctypes."""

    class UniqueId(ctypes.Structure):
        _fields_ = [("internal", ctypes.c_byte * 128)]

    def __init__(self, path: Optional[str] = None):
        self.lib = ctypes.CDLL(path or os.environ.get("VLLM_NCCL_SO_PATH") or "libnccl.so.2")
        self.lib.ncclGetErrorString.restype = ctypes.c_char_p
        self.lib.ncclCommInitRank.argtypes = [ctypes.c_void_p, ctypes.c_int, NcclLibrary.UniqueId, ctypes.c_int]
        self.lib.ncclBroadcast.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    def _check(self, result: int) -> None:
        if result != 0:
            raise RuntimeError(f"NCCL error {result}: {self.lib.ncclGetErrorString(result).decode()}")

    def get_unique_id(self) -> bytes:
        uid = NcclLibrary.UniqueId()
        self._check(self.lib.ncclGetUniqueId(ctypes.byref(uid)))
        return bytes(uid.internal)

    def comm_init_rank(self, world_size: int, unique_id: bytes, rank: int) -> int:
        uid = NcclLibrary.UniqueId()
        ctypes.memmove(uid.internal, unique_id, 128)
        comm = ctypes.c_void_p()
        self._check(self.lib.ncclCommInitRank(ctypes.byref(comm), world_size, uid, rank))
        return comm.value or 0

    def broadcast(self, ptr: int, count: int, dtype: int, root: int, comm: int, stream: int) -> None:
        self._check(self.lib.ncclBroadcast(ptr, ptr, count, dtype, root, comm, stream))

    def comm_destroy(self, comm: int) -> None:
        self._check(self.lib.ncclCommDestroy(ctypes.c_void_p(comm)))


def vllm_unique_id_pickle(unique_id: bytes) -> bytes:
    """The unique id as vLLM's rank 0 publishes it: a pickled pynccl_wrapper.ncclUniqueId.

    The pickle names that class by its module, so without vllm installed the module path is
    stood up in sys.modules for the dump only (with vllm installed its own class is used).
    """
    try:
        from vllm.distributed.device_communicators.pynccl_wrapper import ncclUniqueId  # type: ignore

        uid = ncclUniqueId()
        ctypes.memmove(uid.internal, unique_id, 128)
        return pickle.dumps(uid)
    except ImportError:
        pass
    parts = VLLM_UNIQUE_ID_MODULE.split(".")
    added = [".".join(parts[: i + 1]) for i in range(len(parts)) if ".".join(parts[: i + 1]) not in sys.modules]
    try:
        for name in added:
            sys.modules[name] = types.ModuleType(name)
        module = sys.modules[VLLM_UNIQUE_ID_MODULE]
        cls = type("ncclUniqueId", (ctypes.Structure,), {"_fields_": [("internal", ctypes.c_byte * 128)]})
        cls.__module__ = VLLM_UNIQUE_ID_MODULE
        module.ncclUniqueId = cls
        uid = cls()
        ctypes.memmove(uid.internal, unique_id, 128)
        return pickle.dumps(uid)
    finally:
        for name in added:
            del sys.modules[name]


class VllmGroup:
    """Rank 0 of vLLM's weight-transfer group: the StatelessProcessGroup's store and an NCCL communicator."""

    protocol = "vllm"

    def __init__(
        self,
        address: str,
        port: int,
        world_size: int,
        timeout_s: float,
        nccl: NcclLibrary,
        stream: Optional[Callable[[], int]],
    ):
        self.nccl = nccl
        self.stream = stream or (lambda: torch.cuda.current_stream().cuda_stream)
        store_args = dict(world_size=world_size, is_master=True, timeout=timedelta(seconds=timeout_s))
        store_args["wait_for_workers"] = False
        if "use_libuv" in (torch.distributed.TCPStore.__init__.__doc__ or ""):
            store_args["use_libuv"] = False  # vLLM's own store server does without it
        # Kept for the group's life: the workers read the unique id from it.
        self.store = torch.distributed.TCPStore(address, port, **store_args)
        unique_id = nccl.get_unique_id()
        self.store.set("broadcast_from/0/0", vllm_unique_id_pickle(unique_id))
        self.comm = nccl.comm_init_rank(world_size, unique_id, 0)

    def broadcast(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Sends each tensor from rank 0, in order, on the current CUDA stream; returns the bytes sent."""
        sent = 0
        for name, t in named_tensors:
            if t.dtype not in NCCL_DTYPES:
                raise ValueError(f"{name}: NCCL cannot send dtype {t.dtype}")
            t = t.detach().contiguous()
            self.nccl.broadcast(t.data_ptr(), t.numel(), NCCL_DTYPES[t.dtype], 0, self.comm, self.stream())
            sent += t.numel() * t.element_size()
        if torch.cuda.is_available():
            torch.cuda.current_stream().synchronize()
        return sent

    def close(self) -> None:
        self.nccl.comm_destroy(self.comm)
