"""python/red_engine/nccl_sync.py on CPU: the SGLang group with gloo against two receiver
processes that join and receive as SGLang's workers do (the values arrive intact, in order), and
the vLLM group's rendezvous against two processes that read the NCCL unique id as vLLM's workers
do, with a recording NCCL library in place of libnccl (no GPU here). What needs a GPU and a real
vLLM or SGLang never ran: see the README."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import torch
    import torch.distributed as dist

    HAVE_TORCH = dist.is_available() and dist.is_gloo_available()
except ImportError:  # pragma: no cover
    HAVE_TORCH = False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receivers(args_of_rank, world):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return [
        subprocess.Popen([sys.executable, os.path.join(HERE, "receivers.py"), *map(str, args_of_rank(rank))], env=env)
        for rank in range(1, world)
    ]


@unittest.skipUnless(HAVE_TORCH, "torch with torch.distributed (gloo) is not installed")
class SglangGroupTest(unittest.TestCase):
    def test_two_receivers_get_every_tensor(self):
        from red_engine.nccl_sync import join_group, tensor_specs

        gen = torch.Generator().manual_seed(0)
        # bfloat16 too, which gloo (in torch 1.13) lacks: it travels as its bytes and arrives intact.
        tensors = [
            ("model.embed_tokens.weight", torch.randn(6, 4, generator=gen).to(torch.float16)),
            ("model.layers.0.self_attn.q_proj.bias", torch.randn(4, generator=gen)),
            ("model.norm.weight", torch.arange(5, dtype=torch.float32)),
            ("lm_head.weight", torch.randn(3, 4, generator=gen).to(torch.bfloat16)),
        ]
        specs = tensor_specs(tensors)
        self.assertEqual(specs[0], {"name": "model.embed_tokens.weight", "dtype": "float16", "shape": [6, 4]})
        port, world = free_port(), 3
        with tempfile.TemporaryDirectory() as tmp:
            out = lambda r: os.path.join(tmp, f"rank{r}.pt")
            procs = receivers(lambda r: ["sglang", "127.0.0.1", port, r, world, "weight_update_group", json.dumps(specs), out(r)], world)
            group = join_group("sglang", "127.0.0.1", port, world, backend="gloo", timeout_s=60)
            sent = group.broadcast(tensors)
            self.assertEqual(sent, 6 * 4 * 2 + 4 * 4 + 5 * 4 + 3 * 4 * 2)
            for p in procs:
                self.assertEqual(p.wait(timeout=60), 0)
            for r in range(1, world):
                got = torch.load(out(r))
                for name, t in tensors:
                    self.assertEqual(got[name].dtype, t.dtype)
                    self.assertTrue(torch.equal(got[name], t), name)
            group.close()


class RecordingNccl:
    """libnccl's four calls, recorded."""

    def __init__(self):
        self.calls = []
        self.unique_id = bytes(range(128))

    def get_unique_id(self):
        return self.unique_id

    def comm_init_rank(self, world_size, unique_id, rank):
        self.calls.append(("init", world_size, unique_id, rank))
        return 1234

    def broadcast(self, ptr, count, dtype, root, comm, stream):
        self.calls.append(("broadcast", count, dtype, root, comm, stream))

    def comm_destroy(self, comm):
        self.calls.append(("destroy", comm))


@unittest.skipUnless(HAVE_TORCH, "torch with torch.distributed is not installed")
class VllmGroupTest(unittest.TestCase):
    def test_workers_read_the_unique_id_and_tensors_go_one_broadcast_each(self):
        from red_engine.nccl_sync import join_group

        nccl, port, world = RecordingNccl(), free_port(), 2
        with tempfile.TemporaryDirectory() as tmp:
            out = lambda r: os.path.join(tmp, f"rank{r}.json")
            procs = receivers(lambda r: ["vllm", "127.0.0.1", port, r, world, out(r)], world)
            group = join_group("vllm", "127.0.0.1", port, world, nccl=nccl, stream=lambda: 77, timeout_s=60)
            for p in procs:
                self.assertEqual(p.wait(timeout=60), 0)
            for r in range(1, world):
                with open(out(r)) as f:
                    self.assertEqual(json.load(f)["unique_id"], nccl.unique_id.hex())
            group.broadcast([("a", torch.zeros(3, 2, dtype=torch.bfloat16)), ("b", torch.zeros(5))])
            group.close()
        # ncclBfloat16 = 9, ncclFloat32 = 7 (nccl.h); root 0; the communicator and stream given.
        self.assertEqual(
            nccl.calls,
            [
                ("init", 2, nccl.unique_id, 0),
                ("broadcast", 6, 9, 0, 1234, 77),
                ("broadcast", 5, 7, 0, 1234, 77),
                ("destroy", 1234),
            ],
        )

    def test_the_unique_id_pickles_as_vllms_class_without_vllm_installed(self):
        import pickle

        from red_engine.nccl_sync import VLLM_UNIQUE_ID_MODULE, vllm_unique_id_pickle

        data = vllm_unique_id_pickle(bytes(128))
        self.assertIn(VLLM_UNIQUE_ID_MODULE.encode(), data)
        self.assertIn(b"ncclUniqueId", data)
        self.assertNotIn("vllm", sys.modules)
        with self.assertRaises(ModuleNotFoundError):
            pickle.loads(data)  # only where vLLM (or a stand-in of its class) is

    def test_join_group_refuses_what_cannot_work(self):
        from red_engine.nccl_sync import join_group

        with self.assertRaisesRegex(ValueError, "world_size must be at least 2"):
            join_group("vllm", "127.0.0.1", 1, 1, nccl=RecordingNccl())
        with self.assertRaisesRegex(ValueError, 'protocol must be "vllm" or "sglang"'):
            join_group("trtllm", "127.0.0.1", 1, 2)


if __name__ == "__main__":
    unittest.main()
