"""python/red_vllm without vLLM: the serve arguments it starts vLLM with, and its weight routes
against a stand-in of vLLM's engine client whose collective_rpc calls the worker extension on a
stand-in worker (a model whose load_weights records what it is given). Checkpoints are the shared
Hugging Face fixture, read back here with numpy as an independent reader. Never ran against a
real vLLM: see the README."""

import asyncio
import json
import os
import shutil
import struct
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "..", "..", "..", "shared", "fixtures", "qwen2-tiny-tied")

try:
    import numpy as np
    import torch

    HAVE_TORCH = True
except ImportError:  # pragma: no cover
    HAVE_TORCH = False


def model_folder(path):
    """The fixture's model files (its golden.safetensors holds test data, not weights) copied to path."""
    os.makedirs(path)
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(os.path.join(FIXTURE, f), path)
    return path


def numpy_tensors(folder):
    """{name: array} of a folder's F32 safetensors, read with numpy (not red's reader)."""
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            raw = fh.read()
        (n,) = struct.unpack("<Q", raw[:8])
        for name, info in json.loads(raw[8 : 8 + n]).items():
            if name == "__metadata__":
                continue
            assert info["dtype"] == "F32"
            a, b = info["data_offsets"]
            out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(info["shape"])
    return out


class StandInWorker:
    """What DiskReload needs of vLLM's GPU worker: model_runner.model_config.model and model.load_weights."""

    def __init__(self, served):
        from red_vllm.worker import DiskReload

        class Worker(DiskReload):
            pass

        self.loaded = []
        worker = Worker()
        model = type("Model", (), {"load_weights": lambda _, weights: self.loaded.extend(weights)})()
        config = type("Config", (), {"model": served})()
        worker.model_runner = type("Runner", (), {"model": model, "model_config": config})()
        self.worker = worker


class StandInEngine:
    """vLLM's engine client as red_vllm uses it, recording each call; collective_rpc runs the
    method on every worker as vLLM does."""

    def __init__(self, workers):
        self.workers, self.calls = workers, []

    async def collective_rpc(self, method, args=()):
        self.calls.append(("collective_rpc", method, args))
        return [getattr(w.worker, method)(*args) for w in self.workers]

    async def pause_generation(self, mode="abort"):
        self.calls.append(("pause", mode))

    async def resume_generation(self):
        self.calls.append(("resume",))

    async def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


class NoPauseEngine(StandInEngine):
    """A vLLM before pause_generation: hasattr says no."""

    def __getattribute__(self, name):
        if name == "pause_generation":
            raise AttributeError(name)
        return super().__getattribute__(name)


def run(coro):
    return asyncio.run(coro)


class ServeArgsTest(unittest.TestCase):
    def test_adds_the_worker_extension_and_processed_logprobs(self):
        from red_vllm.launcher import serve_args

        self.assertEqual(
            serve_args(["Qwen/Qwen2.5-0.5B", "--port", "8000"]),
            [
                "Qwen/Qwen2.5-0.5B",
                "--port",
                "8000",
                "--worker-extension-cls",
                "red_vllm.worker.DiskReload",
                "--logprobs-mode",
                "processed_logprobs",
            ],
        )
        self.assertEqual(serve_args(["m", "--logprobs-mode=raw_logprobs"])[-2:], ["--worker-extension-cls", "red_vllm.worker.DiskReload"])
        with self.assertRaisesRegex(SystemExit, "--worker-extension-cls is red-vllm's own"):
            serve_args(["m", "--worker-extension-cls", "x.Y"])


@unittest.skipUnless(HAVE_TORCH, "torch and numpy are not installed")
class RoutesTest(unittest.TestCase):
    def setUp(self):
        from red_vllm.launcher import RlRoutes

        self.tmp = tempfile.mkdtemp()
        self.served = model_folder(os.path.join(self.tmp, "served"))
        self.workers = [StandInWorker(self.served), StandInWorker(self.served)]  # tensor parallel 2
        self.engine = StandInEngine(self.workers)
        self.routes = RlRoutes(self.engine, self.served)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def folder(self, name, edit=None, tensors=None):
        """A copy of the fixture, its config.json edited or its safetensors replaced."""
        d = model_folder(os.path.join(self.tmp, name))
        if edit:
            with open(os.path.join(d, "config.json")) as f:
                config = json.load(f)
            edit(config)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f)
        if tensors is not None:
            header = {}
            blob = b""
            for name, a in tensors.items():
                header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [len(blob), len(blob) + a.nbytes]}
                blob += a.astype("<f4").tobytes()
            h = json.dumps(header).encode()
            with open(os.path.join(d, "model.safetensors"), "wb") as f:
                f.write(struct.pack("<Q", len(h)) + h + blob)
        return d

    def test_a_folder_loads_into_every_worker_between_pause_and_resume(self):
        status, answer = run(self.routes.update_weights_from_disk({"model_path": self.served, "weight_version": "7"}))
        self.assertEqual(status, 200, answer)
        self.assertEqual((answer["success"], answer["weight_version"]), (True, "7"))
        self.assertEqual(
            self.engine.calls,
            [
                ("pause", "wait"),
                ("collective_rpc", "red_load_weights_from_disk", (self.served,)),
                ("reset_prefix_cache",),
                ("resume",),
            ],
        )
        want = numpy_tensors(self.served)
        for w in self.workers:
            got = dict(w.loaded)
            self.assertEqual(set(got), set(want))
            for name, a in want.items():
                self.assertTrue(np.array_equal(got[name].numpy(), a), name)
        # No weight_version: SGLang's rule, the version stays.
        status, answer = run(self.routes.update_weights_from_disk({"model_path": self.served, "abort_all_requests": True}))
        self.assertEqual((status, answer["weight_version"]), (200, "7"))
        self.assertEqual(self.engine.calls[4], ("pause", "abort"))
        self.assertEqual(run(self.routes.get_weight_version()), (200, {"weight_version": "7"}))

    def test_a_folder_of_other_shapes_is_refused_before_any_weight_changes(self):
        want = numpy_tensors(self.served)
        name = sorted(want)[0]
        bad = dict(want, **{name: np.zeros((3, 3), dtype="<f4")})
        d = self.folder("reshaped", tensors=bad)
        status, answer = run(self.routes.update_weights_from_disk({"model_path": d, "weight_version": "8"}))
        self.assertEqual(status, 400)
        self.assertFalse(answer["success"])
        self.assertIn(f"has {name} of shape [3, 3]", answer["message"])
        self.assertEqual(answer["weight_version"], "0")
        for w in self.workers:
            self.assertEqual(w.loaded, [])
        self.assertEqual(self.engine.calls[-1], ("resume",))

    def test_a_changed_config_or_a_missing_folder_is_refused_without_touching_the_engine(self):
        d = self.folder("rope", edit=lambda c: c["rope_parameters"].update(rope_theta=20000.0))
        status, answer = run(self.routes.update_weights_from_disk({"model_path": d}))
        self.assertEqual(status, 400)
        self.assertIn("rope_theta (10000.0 → 20000.0)", answer["message"])
        status, answer = run(self.routes.update_weights_from_disk({"model_path": os.path.join(self.tmp, "nope")}))
        self.assertEqual(status, 400)
        self.assertIn("has no config.json", answer["message"])
        self.assertEqual(run(self.routes.update_weights_from_disk({}))[0], 400)
        self.assertEqual(self.engine.calls, [])

    def test_pause_modes_map_to_vllms(self):
        self.assertEqual(run(self.routes.pause_generation({}))[0], 200)
        self.assertEqual(run(self.routes.pause_generation({"mode": "in_place"}))[0], 200)
        status, answer = run(self.routes.pause_generation({"mode": "retract"}))
        self.assertEqual((status, answer["error"]["param"]), (400, "mode"))
        self.assertEqual(run(self.routes.continue_generation({}))[0], 200)
        self.assertEqual(self.engine.calls, [("pause", "abort"), ("pause", "keep"), ("resume",)])

    def test_a_vllm_without_pause_loads_between_steps(self):
        from red_vllm.launcher import RlRoutes

        engine = NoPauseEngine(self.workers)
        status, _ = run(RlRoutes(engine, self.served).update_weights_from_disk({"model_path": self.served}))
        self.assertEqual(status, 200)
        self.assertEqual([c[0] for c in engine.calls], ["collective_rpc", "reset_prefix_cache"])


if __name__ == "__main__":
    unittest.main()
