"""red-vllm's launcher: vLLM's ``serve`` with red's worker extension and the SGLang-style weight
routes added to its FastAPI app. RlRoutes holds the routes' logic against vLLM's engine client
(the ``app.state.engine_client`` of its API server): collective_rpc, pause_generation,
resume_generation, reset_prefix_cache; the FastAPI binding and the start of vLLM only wire it in.
Simplified: one API server process (--api-server-count 1, vLLM's default), since the routes are
added to the app of this process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, Optional

WORKER_EXTENSION = "red_vllm.worker.DiskReload"

# The config.json keys a served model cannot change while serving (as red serve refuses them too).
FIXED_CONFIG = [
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rope_theta",
    "rms_norm_eps",
    "tie_word_embeddings",
    "max_position_embeddings",
]


def serve_args(argv: list[str]) -> list[str]:
    """vLLM serve's arguments: the user's, with red's worker extension and processed logprobs."""
    args = list(argv)
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    if "--worker-extension-cls" in given:
        raise SystemExit(
            f"red-vllm: --worker-extension-cls is red-vllm's own ({WORKER_EXTENSION}); vLLM takes one, so leave it out"
        )
    args += ["--worker-extension-cls", WORKER_EXTENSION]
    if "--logprobs-mode" not in given:
        args += ["--logprobs-mode", "processed_logprobs"]
    return args


def config_of(folder: str) -> dict:
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    # transformers 5 keeps rope_theta under rope_parameters
    if "rope_theta" not in config and isinstance(config.get("rope_parameters"), dict):
        config["rope_theta"] = config["rope_parameters"].get("rope_theta")
    return config


class RlRoutes:
    """SGLang's /update_weights_from_disk, /pause_generation, /continue_generation and
    /get_weight_version over a vLLM engine client. Each handler takes the JSON body and returns
    (HTTP status, JSON answer)."""

    def __init__(self, engine: Any, served_path: str, weight_version: str = "0"):
        self.engine = engine
        self.served_path = served_path
        self.weight_version = weight_version
        self.lock = asyncio.Lock()

    async def update_weights_from_disk(self, body: dict) -> tuple[int, dict]:
        path = body.get("model_path")
        version = body.get("weight_version")
        if not isinstance(path, str) or not path:
            return 400, self._failed("model_path must be a model folder path")
        if version is not None and not isinstance(version, str):
            return 400, self._failed("weight_version must be a string")
        path = os.path.abspath(path)
        problem = self._config_problem(path)
        if problem:
            return 400, self._failed(f"cannot load {path}: {problem}")
        async with self.lock:
            t0 = time.perf_counter()
            # SGLang's rule: requests in flight finish on the old weights, unless told to abort.
            paused = await self._pause("abort" if body.get("abort_all_requests") else "wait")
            try:
                await self.engine.collective_rpc("red_load_weights_from_disk", args=(path,))
                if hasattr(self.engine, "reset_prefix_cache"):
                    await self.engine.reset_prefix_cache()  # cached keys/values came from the old weights
            except Exception as err:  # the worker refused the folder before touching a weight
                return 400, self._failed(f"cannot load {path}: {err}")
            finally:
                if paused:
                    await self.engine.resume_generation()
            self.served_path = path
            if version is not None:
                self.weight_version = version
            seconds = time.perf_counter() - t0
            return 200, {
                "success": True,
                "message": f"loaded {path} in {seconds:.2f} s",
                "num_paused_requests": 0,
                "weight_version": self.weight_version,
            }

    async def pause_generation(self, body: dict) -> tuple[int, dict]:
        mode = body.get("mode", "abort")
        vllm_mode = {"abort": "abort", "in_place": "keep"}.get(mode)
        if vllm_mode is None:
            return 400, {"error": {"message": f"mode must be abort or in_place; red-vllm has no {mode!r}", "param": "mode"}}
        if not await self._pause(vllm_mode):
            return 400, {"error": {"message": "this vLLM has no pause_generation (vLLM ≥ 0.12 has)", "param": None}}
        return 200, {"success": True, "message": f"paused ({mode})", "weight_version": self.weight_version}

    async def continue_generation(self, body: Optional[dict] = None) -> tuple[int, dict]:
        if hasattr(self.engine, "resume_generation"):
            await self.engine.resume_generation()
        return 200, {"success": True, "message": "continued", "weight_version": self.weight_version}

    async def get_weight_version(self) -> tuple[int, dict]:
        return 200, {"weight_version": self.weight_version}

    async def _pause(self, mode: str) -> bool:
        """vLLM's pause (abort, wait or keep); False where this vLLM has none (the load then runs between steps)."""
        if not hasattr(self.engine, "pause_generation"):
            return False
        await self.engine.pause_generation(mode=mode)
        return True

    def _config_problem(self, path: str) -> Optional[str]:
        try:
            new = config_of(path)
        except FileNotFoundError:
            return "it has no config.json"
        except (OSError, ValueError) as err:
            return f"its config.json cannot be read ({err})"
        try:
            old = config_of(self.served_path)
        except (OSError, ValueError):
            return None  # served from a Hub id: the workers' shape check stands alone
        changed = [f"{k} ({old.get(k)!r} → {new.get(k)!r})" for k in FIXED_CONFIG if old.get(k) != new.get(k)]
        if changed:
            return f"its config.json changes {', '.join(changed)}, which a running server cannot apply; restart red-vllm on this folder"
        return None

    def _failed(self, message: str) -> dict:
        return {"success": False, "message": message, "weight_version": self.weight_version}


def install(app: Any, served_path: str) -> RlRoutes:
    """Adds the routes to vLLM's FastAPI app; the engine client is the app's, read per request."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    class LazyEngine:
        def __getattr__(self, name: str) -> Any:
            return getattr(app.state.engine_client, name)

    routes = RlRoutes(LazyEngine(), served_path)

    async def body_of(request: Request) -> dict:
        text = await request.body()
        return json.loads(text) if text.strip() else {}

    @app.post("/update_weights_from_disk")
    async def update_weights_from_disk(request: Request):
        status, answer = await routes.update_weights_from_disk(await body_of(request))
        return JSONResponse(answer, status_code=status)

    @app.post("/pause_generation")
    async def pause_generation(request: Request):
        status, answer = await routes.pause_generation(await body_of(request))
        return JSONResponse(answer, status_code=status)

    @app.post("/continue_generation")
    async def continue_generation(request: Request):
        status, answer = await routes.continue_generation()
        return JSONResponse(answer, status_code=status)

    @app.get("/get_weight_version")
    async def get_weight_version():
        status, answer = await routes.get_weight_version()
        return JSONResponse(answer, status_code=status)

    return routes


def main(argv: Optional[list[str]] = None) -> None:
    """Starts ``vllm serve`` with serve_args(argv), the routes added to its app."""
    args = serve_args(sys.argv[1:] if argv is None else argv)
    try:
        import vllm.entrypoints.openai.api_server as api_server
        from vllm.entrypoints.cli.main import main as vllm_main
    except ImportError as err:
        raise SystemExit(f"red-vllm: vLLM is not installed in this Python ({sys.executable}): pip install vllm ({err})")
    build_app = api_server.build_app

    def build_app_with_routes(parsed: Any, *rest: Any, **kw: Any) -> Any:
        app = build_app(parsed, *rest, **kw)
        install(app, str(parsed.model))
        return app

    api_server.build_app = build_app_with_routes
    sys.argv = ["vllm", "serve", *args]
    vllm_main()
