"""The ranks: started by rank 0 itself (one per GPU, or `devices` CPU ranks: torchrun crashes in
torch 1.13), or by torchrun across nodes (RANK / WORLD_SIZE set before we start). Two process
groups: the default one (NCCL on GPUs, gloo on CPUs) for gradients and parameters, and a gloo
group for rank 0's commands and the batches it hands out, whose waits all have a timeout."""

import ctypes
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import torch
import torch.distributed as dist

TIMEOUT_S = float(os.environ.get("RED_ENGINE_COLLECTIVE_TIMEOUT_S", "600"))  # one collective or command wait


def die_with_parent(sig=signal.SIGKILL):
    """Linux: this process gets `sig` when the process that started it ends (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:  # the parent ended before prctl took effect
        os._exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ranks:
    """This process's place in the world, and (rank 0, when it started them) the other ranks."""

    def __init__(self):
        self.launched = "RANK" in os.environ and "RED_ENGINE_SPAWNED" not in os.environ
        self.children = []  # (rank, Popen, log path) of the ranks this process started
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.control = None
        self.device = torch.device("cpu")
        self.stopping = False  # the watchdog is quiet once rank 0 ends the ranks itself

    def spawn(self, devices, log_dir):
        """Rank 0, not under torchrun: starts ranks 1..devices-1 as `python -m red_engine --worker`."""
        if self.launched or devices <= 1:
            return
        gpus = torch.cuda.device_count() if os.environ.get("RED_ENGINE_CPU") != "1" else 0
        if 0 < gpus < devices:
            raise ValueError(f"engine.devices is {devices} but torch sees {gpus} GPU(s) on this machine; set engine.devices to at most {gpus}")
        port = free_port()
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(devices))
        os.environ.update(RANK="0", LOCAL_RANK="0", RED_ENGINE_SPAWNED="1")
        self.world = devices
        for r in range(1, devices):
            env = dict(os.environ, RANK=str(r), LOCAL_RANK=str(r))
            log = os.path.join(log_dir, f"rank-{r}.log")
            with open(log, "w") as f:
                p = subprocess.Popen(
                    [sys.executable, "-m", "red_engine", "--worker"], env=env, stdout=f, stderr=subprocess.STDOUT
                )
            self.children.append((r, p, log))

    def init(self):
        cuda = torch.cuda.is_available() and os.environ.get("RED_ENGINE_CPU") != "1"
        if cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            # torch's own thread count (OMP_NUM_THREADS, else its choice), shared by this node's ranks.
            per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(max(1, len(self.children) + 1))))
            torch.set_num_threads(max(1, torch.get_num_threads() // per_node))
        if self.world == 1:
            return
        timeout = datetime.timedelta(seconds=TIMEOUT_S)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
        self.control = dist.new_group(backend="gloo", timeout=timeout) if cuda else dist.group.WORLD

    def broadcast_message(self, msg):
        """Rank 0's command (a dict) to every rank; the others receive it."""
        if self.world == 1:
            return msg
        box = [msg]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def broadcast_arrays(self, arrays, specs):
        """{name: CPU tensor} from rank 0 to every rank; specs: [(name, dtype, length)]."""
        if self.world == 1:
            return arrays
        out = {}
        for name, dtype, length in specs:
            t = arrays[name] if self.rank == 0 else torch.empty(length, dtype=dtype)
            dist.broadcast(t, src=0, group=self.control)
            out[name] = t
        return out

    def gather_slices(self, local, sizes):
        """Rank 0 gets the concatenation, in rank order, of every rank's `local` (CPU, 1-D, its size
        from `sizes`); the others get None."""
        if self.world == 1:
            return local
        width = max(sizes)
        padded = torch.zeros(width, dtype=local.dtype)
        padded[: local.numel()] = local
        parts = [torch.empty(width, dtype=local.dtype) for _ in range(self.world)] if self.rank == 0 else None
        dist.gather(padded, parts, dst=0, group=self.control)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)]) if self.rank == 0 else None

    def gather_objects(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0, group=self.control)
        return out

    def watch(self, on_death):
        """Rank 0: a thread that calls on_death(line) as soon as a rank it started has ended."""
        if not self.children:
            return

        def loop():
            while True:
                for r, p, log in self.children:
                    code = p.poll()
                    if code is not None and not self.stopping:
                        on_death(f"engine rank {r} died ({exit_reason(code)}){last_line(log)}")
                        return
                time.sleep(0.2)

        threading.Thread(target=loop, daemon=True).start()

    def dead_child(self, wait_s=2.0):
        """The line of a rank this process started that has ended (waiting up to wait_s for one to
        be seen: a collective can fail on a dead peer a moment before its exit is), else None."""
        deadline = time.monotonic() + wait_s
        while self.children:
            for r, p, log in self.children:
                code = p.poll()
                if code is not None:
                    return f"engine rank {r} died ({exit_reason(code)}){last_line(log)}"
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return None

    def stop_children(self, wait_s=5.0):
        self.stopping = True
        for _, p, _ in self.children:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + wait_s
        for _, p, _ in self.children:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def exit_reason(code):
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def last_line(log):
    try:
        with open(log, errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""
