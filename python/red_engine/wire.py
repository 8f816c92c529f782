"""Rank 0's side of the wire to red (src/train/engines/torch-wire.ts has the other side).

Control: a Unix socket carrying frames of a 4-byte little-endian length and that many bytes of
UTF-8 JSON; requests {id, op, ...} get {id, ok: true, ...} or {id, ok: false, error: "one line"};
rank 0 may also send {event: "fatal" | "log", ...} at any time.
Bulk arrays never travel as JSON: red writes them into the file `to-engine` of the shared-memory
folder (/dev/shm, else the temp dir) and names them {name, dtype, offset, length}; rank 0 writes
its outputs into `from-engine` likewise. Both files are mapped once and grown, never re-created."""

import json
import mmap
import os
import socket
import struct
import threading

import torch

DTYPES = {"i32": torch.int32, "f32": torch.float32, "u8": torch.uint8}
NAMES = {v: k for k, v in DTYPES.items()}


class Channel:
    """The framed JSON socket; sends are locked (the watchdog thread may send a fatal event)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lock = threading.Lock()

    def send(self, msg):
        raw = json.dumps(msg, separators=(",", ":")).encode("utf-8")
        with self.lock:
            self.sock.sendall(struct.pack("<I", len(raw)) + raw)

    def recv(self, timeout):
        """The next message, None on timeout; raises EOFError when red has gone."""
        self.sock.settimeout(timeout)
        try:
            head = self._exactly(4, first=True)
        except socket.timeout:
            return None
        self.sock.settimeout(None)
        (n,) = struct.unpack("<I", head)
        return json.loads(self._exactly(n).decode("utf-8"))

    def _exactly(self, n, first=False):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("red closed the engine's socket")
            buf += chunk
            if first:
                self.sock.settimeout(None)  # a frame has begun: read the rest of it
        return bytes(buf)


class MappedFile:
    """A file mapped whole, re-mapped when it has grown (the writer grows it, never shrinks it)."""

    def __init__(self, path, create):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        self.map = None
        self.size = 0

    def ensure(self, size, grow):
        if size == 0:
            return
        current = os.fstat(self.fd).st_size
        if grow and current < size:
            current = max(size, 2 * current, 1 << 20)
            os.ftruncate(self.fd, current)
        if current < size:
            raise ValueError(f"{self.path}: holds {current} bytes, the request names {size}")
        if self.map is None or self.size < current:
            self.map = mmap.mmap(self.fd, current)  # the old map goes when its last view does
            self.size = current

    def view(self, dtype, offset, length):
        if length == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(self.map, dtype=dtype, count=length, offset=offset)


class SharedArrays:
    def __init__(self, folder):
        self.inbound = MappedFile(os.path.join(folder, "to-engine"), create=False)
        self.outbound = MappedFile(os.path.join(folder, "from-engine"), create=True)

    def read(self, descs):
        """{name: tensor} copied out of `to-engine` (the next request reuses its bytes)."""
        out = {}
        for d in descs:
            dtype = DTYPES[d["dtype"]]
            end = d["offset"] + d["length"] * torch.tensor([], dtype=dtype).element_size()
            self.inbound.ensure(end, grow=False)
            out[d["name"]] = self.inbound.view(dtype, d["offset"], d["length"]).clone()
        return out

    def write(self, arrays):
        """[(name, tensor)] into `from-engine`, one after the other (8-byte aligned); their descriptors."""
        descs, offset = [], 0
        for name, t in arrays:
            t = t.detach().to("cpu").contiguous().reshape(-1)
            descs.append({"name": name, "dtype": NAMES[t.dtype], "offset": offset, "length": t.numel()})
            offset += -(-t.numel() * t.element_size() // 8) * 8
        self.outbound.ensure(offset, grow=True)
        for d, (_, t) in zip(descs, arrays):
            self.outbound.view(DTYPES[d["dtype"]], d["offset"], d["length"]).copy_(t.detach().reshape(-1))
        return descs
