"""The vLLM worker extension red-vllm starts vLLM with (``--worker-extension-cls
red_vllm.worker.DiskReload``): its methods join vLLM's GPU worker and are called on every worker
through the engine's ``collective_rpc``. Loading goes through the model's own ``load_weights``,
which maps Hugging Face names onto vLLM's fused, tensor-parallel parameters (as prime-rl's and
SkyRL's reload-from-path workers do). Simplified: unquantized models only (a quantized one would
need its post-load processing run again)."""

from __future__ import annotations

import os

from red_engine import safetensors as safetensors_io


class DiskReload:
    """Mixed into vLLM's worker (which provides self.model_runner)."""

    def red_checkpoint_signature(self) -> dict:
        """The names, dtypes and shapes every later folder must have: the last folder loaded, or
        the served model's own folder when it is a local one (a Hub id is resolved by vLLM
        elsewhere: then the first folder loaded sets them)."""
        if getattr(self, "_red_signature", None) is None:
            served = str(self.model_runner.model_config.model)
            if os.path.isdir(served):
                try:
                    self._red_signature = safetensors_io.signature(served)
                except FileNotFoundError:
                    self._red_signature = None
        return getattr(self, "_red_signature", None) or {}

    def red_load_weights_from_disk(self, model_path: str) -> dict:
        """Loads the folder's tensors into the served model; refuses one of other names or shapes
        before touching a parameter. Returns {tensors, bytes}."""
        new = safetensors_io.signature(model_path)
        old = self.red_checkpoint_signature()
        if old:
            missing = sorted(set(old) - set(new))
            extra = sorted(set(new) - set(old))
            reshaped = sorted(n for n in set(old) & set(new) if old[n][1] != new[n][1])
            problems = []
            if missing:
                problems.append(f"lacks {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
            if extra:
                problems.append(f"has unknown {', '.join(extra[:3])}{' …' if len(extra) > 3 else ''}")
            for n in reshaped[:3]:
                problems.append(f"has {n} of shape {list(new[n][1])}, not {list(old[n][1])}")
            if problems:
                raise ValueError(f"{model_path} does not match the served model: it {'; it '.join(problems)}")
        count = size = 0

        def stream():
            nonlocal count, size
            for name, t in safetensors_io.tensors(model_path):
                count += 1
                size += t.numel() * t.element_size()
                yield name, t

        self.model_runner.model.load_weights(weights=stream())
        self._red_signature = new
        return {"tensors": count, "bytes": size}
