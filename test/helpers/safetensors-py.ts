// An independent safetensors reader for tests: Python's json, struct and numpy reading the format
// from its spec (8-byte little-endian header length, JSON header, raw little-endian data), so a
// file our writer produced is checked by code that shares nothing with src/model/safetensors.ts.
import { spawnSync } from 'node:child_process';

const READER = `
import json, struct, sys
import numpy as np
def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {})
    dtypes = {'F32': '<f4', 'BF16': '<u2', 'I32': '<i4', 'I64': '<i8'}
    tensors = {}
    for name, h in header.items():
        a, b = h['data_offsets']
        tensors[name] = (h['dtype'], np.frombuffer(data[a:b], dtype=dtypes[h['dtype']]).reshape(h['shape']))
    return meta, tensors
`;

/**
 * Runs \`code\` after the reader (\`read(path) -> (metadata, {name: (dtype, array)})\`) with
 * \`args\` as sys.argv[1:]; returns the JSON the code prints last.
 */
export function pySafetensors(code: string, args: string[]): unknown {
  const r = spawnSync('python3', ['-c', READER + code, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null');
}
