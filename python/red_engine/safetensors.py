"""The safetensors format, read and written without the safetensors package (Debian has none):
an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}}
(plus an optional "__metadata__" of strings), then the raw little-endian tensor bytes."""

import json
import os
import struct

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


class SafetensorsFile:
    """One file's header, read up front; tensors read one at a time."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError(f"{path}: truncated safetensors file (no header)")
            (n,) = struct.unpack("<Q", raw)
            size = os.fstat(f.fileno()).st_size
            if 8 + n > size:
                raise ValueError(f"{path}: truncated safetensors file (header of {n} bytes, file of {size})")
            header = json.loads(f.read(n).decode("utf-8"))
        self.metadata = header.pop("__metadata__", {}) or {}
        self.entries = header
        self.data_start = 8 + n

    def names(self):
        return list(self.entries)

    def shape(self, name):
        return list(self.entries[name]["shape"])

    def read(self, name):
        e = self.entries[name]
        dtype = DTYPES.get(e["dtype"])
        if dtype is None:
            raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {e['dtype']}")
        begin, end = e["data_offsets"]
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            buf = bytearray(f.read(end - begin))
        if len(buf) != end - begin:
            raise ValueError(f"{self.path}: truncated data for tensor {name}")
        if not buf:
            return torch.empty(e["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(e["shape"]).clone()


def folder_files(folder):
    """The folder's *.safetensors files in name order, as SafetensorsFile; fails naming the folder
    when there are none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not names:
        raise FileNotFoundError(f"{folder} holds no *.safetensors file")
    return [SafetensorsFile(os.path.join(folder, f)) for f in names]


def signature(folder):
    """{tensor name: (dtype, shape)} over every file of the folder, from the headers alone."""
    return {n: (f.entries[n]["dtype"], tuple(f.shape(n))) for f in folder_files(folder) for n in f.names()}


def tensors(folder):
    """Every tensor of the folder as (name, CPU tensor), read one at a time."""
    for f in folder_files(folder):
        for name in f.names():
            yield name, f.read(name)


def write(path, tensors, metadata=None):
    """Writes [(name, tensor)] (each made contiguous on the CPU, in its own dtype) to `path`
    through a temporary file renamed into place."""
    header, offset, parts = {}, 0, []
    for name, t in tensors:
        t = t.detach().to("cpu").contiguous()
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        parts.append(t)
        offset += nbytes
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # data aligned to 8 bytes, as the reference writer does
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for t in parts:
                if t.numel():
                    f.write(_bytes_of(t))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _bytes_of(t):
    """The tensor's raw bytes (a copy; numpy is not needed, and bf16 has no numpy dtype)."""
    buf = bytearray(t.numel() * t.element_size())
    torch.frombuffer(buf, dtype=t.dtype).copy_(t.reshape(-1))
    return buf
