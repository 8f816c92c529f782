"""red-vllm: vLLM's OpenAI server with the routes red's trainer speaks to every fleet.

``red-vllm --model M [any vllm serve argument]`` (or ``python -m red_vllm``) starts ``vllm serve``
with a worker extension (red_vllm.worker.DiskReload) and adds SGLang's weight-control routes, so
that a trainer with ``rollout.engine: remote`` syncs vLLM exactly as it syncs SGLang and red serve:

- ``POST /update_weights_from_disk {model_path, weight_version?, abort_all_requests?}`` loads a
  Hugging Face folder's safetensors into every worker (names and shapes checked first, so a bad
  folder leaves the served weights as they were), after the running requests finish;
- ``POST /pause_generation {mode: abort | in_place}`` and ``POST /continue_generation``;
- ``GET /get_weight_version``.

It also starts vLLM with ``--logprobs-mode processed_logprobs`` unless told otherwise: the logprobs
of the distribution each token was drawn from, which red's importance-sampling correction needs
(vLLM's default is the model's raw log-softmax). The route logic (launcher.RlRoutes, worker) is
tested against stand-in engine objects; none of it has run against a real vLLM: see the README.
"""

__version__ = "0.1.0"
