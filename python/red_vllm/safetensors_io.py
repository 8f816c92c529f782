"""Reading a Hugging Face folder's safetensors with torch alone (no safetensors package): the
8-byte little-endian header length, the JSON header, then each tensor's bytes at its offsets."""

from __future__ import annotations

import json
import mmap
import os
from typing import Iterator

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def safetensors_files(folder: str) -> list[str]:
    """The folder's *.safetensors files in name order; fails naming the folder when there are none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no *.safetensors file")
    return [os.path.join(folder, f) for f in files]


def header(path: str) -> dict:
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(size))
    meta.pop("__metadata__", None)
    return meta


def signature(folder: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} over every file of the folder, from the headers alone."""
    out = {}
    for path in safetensors_files(folder):
        for name, info in header(path).items():
            out[name] = (info["dtype"], tuple(info["shape"]))
    return out


def tensors(folder: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the folder as (name, CPU tensor), one file mapped at a time."""
    for path in safetensors_files(folder):
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(size))
            meta.pop("__metadata__", None)
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        base = 8 + size
        for name, info in meta.items():
            start, end = info["data_offsets"]
            dtype = DTYPES[info["dtype"]]
            raw = bytearray(data[base + start : base + end])  # a copy: the map closes after the file
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            yield name, t.reshape(info["shape"])
        data.close()
