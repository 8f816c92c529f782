"""Rank 0 serves red's requests and every rank runs them in step.

Rank 0 reads a request, checks what it can alone (unknown handle, missing file: a one-line error,
the engine goes on), then broadcasts it (and its arrays) to the other ranks and all run it. An
exception once the ranks have started an operation ends the engine (they may be inside different
collectives): red gets the line and every rank stops. While red is quiet, rank 0 broadcasts a ping
every PING_S seconds, so the other ranks' waits (bounded by RED_ENGINE_COLLECTIVE_TIMEOUT_S) never run out."""

import os
import signal
import sys
import time
import traceback

import torch

from .checkpoints import check_state
from .dist import Ranks, die_with_parent
from .engine import Engine
from .weight_sync import broadcast_weights, check_broadcast, check_join, join_weight_group
from .wire import DTYPES, Channel, SharedArrays

PING_S = 20.0
ERROR_PREFIX = "red-engine-error: "


def one_line(err):
    text = f"{type(err).__name__}: {err}" if not isinstance(err, (ValueError, OSError, KeyError)) else str(err)
    return " ".join(text.split())


def report_and_exit(line, code=1):
    """The line red shows (stderr, marked), then the process ends at once."""
    sys.stderr.write(ERROR_PREFIX + line + "\n")
    sys.stderr.flush()
    if os.environ.get("RED_DEBUG") == "1":
        traceback.print_exc()
    os._exit(code)


def run(engine, op, msg, arrays):
    """(json fields, [(name, tensor)]) of one operation on this rank."""
    e = engine
    handlers = {
        "ping": lambda: {},
        "loadBatch": lambda: e.load_batch(arrays, msg["microBatchTokens"]),
        "releaseBatch": lambda: e.release_batch(msg["handle"]),
        "forward": lambda: e.forward(msg["handle"], msg["model"]),
        "forwardBackward": lambda: e.forward_backward(msg["handle"], arrays),
        "createOptimizer": lambda: e.create_optimizer(msg["name"], msg["settings"]),
        "optimStep": lambda: e.optim_step(msg["name"], msg["lr"], msg["maxGradNorm"]),
        "stash": e.stash,
        "restore": e.restore,
        "saveForSampler": lambda: e.save_for_sampler(msg["dir"], msg["dtype"]),
        "saveState": lambda: e.save_state(msg["dir"]),
        "loadState": lambda: e.load_state(msg["dir"]),
        "sample": lambda: e.sample(arrays, msg["params"]),
        "saveGrads": lambda: e.save_grads(msg["file"]),
        "loadGrads": lambda: e.load_grads(msg["file"], msg["prefix"]),
        "joinWeightGroup": lambda: join_weight_group(e, msg["group"]),
        "broadcastWeights": lambda: broadcast_weights(e, msg["tensors"]),
    }
    if op not in handlers:
        raise ValueError(f"unknown engine operation {op!r} (red and python/red_engine are from different versions)")
    out = handlers[op]()
    return out if isinstance(out, tuple) else (out, [])


def precheck(engine, msg, arrays):
    """Rank 0 alone, before any other rank hears of the request: user errors that leave the engine usable."""
    op = msg["op"]
    if op in ("forward", "forwardBackward") and msg["handle"] not in engine.batches:
        raise ValueError(f"{op}: batch {msg['handle']} is not loaded (released, or from another engine)")
    if op == "forward" and msg["model"] == "reference" and engine.reference is None:
        raise ValueError("forward(reference): no reference model was loaded (the engine was made without referencePath)")
    if op == "forwardBackward":
        n = engine.batches[msg["handle"]].scored_tokens
        for k in ("dLogprob", "dEntropy"):
            if arrays[k].numel() != n:
                raise ValueError(f"forwardBackward: {k} has {arrays[k].numel()} entries, the batch scores {n} tokens")
    if op == "optimStep" and msg["name"] not in engine.optimizers:
        raise ValueError(f"optimStep: no optimiser {msg['name']!r} (createOptimizer first)")
    if op == "restore" and engine.stashed is None:
        raise ValueError("restore: nothing was stashed")
    if op == "loadState":
        check_state(engine, msg["dir"])
    if op == "joinWeightGroup":
        check_join(msg["group"])
    if op == "broadcastWeights":
        check_broadcast(engine, msg["tensors"])
    if op == "sample" and any(not (0 <= i < engine.vocab_size) for i in arrays["promptIds"].tolist()):
        raise ValueError(f"sample: a prompt token id is outside the vocabulary [0, {engine.vocab_size})")


def serve(socket_path):
    """Rank 0."""
    channel = Channel(socket_path)
    ranks = Ranks()

    def fatal(line):
        try:
            channel.send({"event": "fatal", "error": line})
        finally:
            ranks.stop_children(2.0)
            report_and_exit(line)

    signal.signal(signal.SIGTERM, lambda *_: (ranks.stop_children(2.0), os._exit(143)))
    init = channel.recv(None)
    settings = init["settings"]
    try:
        shm = SharedArrays(init["shm"])
        ranks.spawn(settings["devices"], init["shm"])
        ranks.watch(fatal)
        ranks.init()
        ranks.broadcast_message(settings)
        engine = Engine(ranks, settings, lambda line: channel.send({"event": "log", "line": line}))
    except Exception as err:  # noqa: BLE001 — every failure becomes red's one line
        channel.send({"id": init["id"], "ok": False, "error": one_line(err)})
        ranks.stop_children(2.0)
        report_and_exit(one_line(err))
    channel.send({"id": init["id"], "ok": True, "info": engine_info(engine), "world": ranks.world})
    while True:
        cpu = time.thread_time()  # rank 0's CPU time on the wire: receiving, reading and writing arrays
        try:
            msg = channel.recv(PING_S)
        except EOFError:
            msg = {"op": "exit"}
        if msg is None:
            ranks.broadcast_message({"op": "ping", "arrays": []})
            continue
        if msg["op"] == "exit":
            ranks.broadcast_message({"op": "exit", "arrays": []})
            ranks.stop_children(10.0)
            if "id" in msg:
                channel.send({"id": msg["id"], "ok": True})
            return
        try:
            arrays = shm.read(msg.get("arrays", []))
            wire_cpu = time.thread_time() - cpu
            precheck(engine, msg, arrays)
        except Exception as err:  # noqa: BLE001
            channel.send({"id": msg["id"], "ok": False, "error": one_line(err)})
            continue
        started = time.perf_counter()
        try:
            ranks.broadcast_message(msg)
            arrays = ranks.broadcast_arrays(arrays, array_specs(msg))
            fields, outputs = run(engine, msg["op"], msg, arrays)
            engine_s = time.perf_counter() - started
            cpu = time.thread_time()
            fields["arrays"] = shm.write(outputs)
            wire_cpu += time.thread_time() - cpu
        except Exception as err:  # noqa: BLE001
            # With several ranks, a failed collective most often means a rank has died: say which.
            line = (ranks.dead_child() if ranks.world > 1 else None) or one_line(err)
            channel.send({"id": msg["id"], "ok": False, "error": line, "fatal": ranks.world > 1})
            if ranks.world > 1:
                ranks.stop_children(2.0)
                report_and_exit(line)
            continue
        # engineS: the request's time inside the engine, so red can tell the wire's share of a step;
        # wireCpuS: rank 0's CPU time on the wire, which a loaded machine's scheduling does not inflate.
        channel.send({"id": msg["id"], "ok": True, "engineS": engine_s, "wireCpuS": wire_cpu, **fields})


def array_specs(msg):
    return [(d["name"], DTYPES[d["dtype"]], d["length"]) for d in msg.get("arrays", [])]


def engine_info(engine):
    vocab = engine.vocab_size
    tensors = [{"name": n, "shape": list(p.shape)} for n, p in zip(engine.names, engine.params)]
    return {
        "parameters": sum(p.numel() for p in engine.params),
        "tensors": tensors,
        "vocabSize": vocab,
        "maxPositionEmbeddings": engine.max_positions,
        "impl": engine.impl,
        "device": str(engine.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def work():
    """Ranks 1..world-1: run whatever rank 0 broadcasts until it says exit."""
    if os.environ.get("RED_ENGINE_SPAWNED") == "1":
        die_with_parent()
    ranks = Ranks()
    try:
        ranks.init()
        settings = ranks.broadcast_message(None)
        engine = Engine(ranks, settings, lambda line: None)
        while True:
            msg = ranks.broadcast_message(None)
            if msg["op"] == "exit":
                return
            arrays = ranks.broadcast_arrays({}, array_specs(msg))
            run(engine, msg["op"], msg, arrays)
    except Exception as err:  # noqa: BLE001
        report_and_exit(one_line(err))
