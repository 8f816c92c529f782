#!/usr/bin/env bash
# The PyTorch engine's GPU check (issue 26), one prepared script of at most 8 minutes that writes
# its figures to $OUT (device-check.jsonl, device-check.log, e2e.log):
#   numerics  the engine on the transformers golden fixtures (transformers and plain Qwen2 paths)
#   speed     engine train-step tokens/s at the Qwen2.5-0.5B and 1.5B shapes (bf16, random weights)
#             beside a bare PyTorch + transformers loop of the same model and batch (target ≥ 0.95×)
#   scaling   DDP on 2 GPUs, where the machine has them
#   e2e       a 3-step `red train --method red` run on the built-in task with rollout.engine: engine
#
#   bash scripts/device-check.sh --prepare      here: packs node, bundles red, copies the fixtures
#                                               into .device/ (carry [".device"] to the GPU machine)
#   bash scripts/device-check.sh                there (PyTorch + transformers, no Node)
#   bash scripts/device-check.sh --cpu-dry-run  here: every part at tiny shapes on the CPU
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=gpu
case "${1:-}" in
  --prepare) mode=prepare ;;
  --cpu-dry-run) mode=cpu ;;
  "") ;;
  *)
    echo "usage: $0 [--prepare | --cpu-dry-run]" >&2
    exit 2
    ;;
esac

if [ "$mode" = prepare ]; then
  # The GPU machine has no Node and no node_modules: one bundle of red (its CAS worker beside it,
  # the native addon and package.json where their import.meta.url paths expect them).
  bash "$root/../shared/device/pack-node.sh"
  red="$root/.device/red"
  rm -rf "$red" "$root/.device/python" "$root/.device/fixtures"
  mkdir -p "$red/src/cli" "$red/build/Release" "$root/.device/python"
  esbuild=(npx --prefix "$root" esbuild --bundle --platform=node --format=esm --target=node20 --log-level=error
    --external:'*.node' --external:@resvg/resvg-js-linux-x64-gnu
    "--banner:js=import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);")
  "${esbuild[@]}" "$root/src/cli/main.ts" --outfile="$red/src/cli/main.mjs"
  "${esbuild[@]}" "$root/src/reward/casWorker.ts" --outfile="$red/src/cli/casWorker.mjs"
  cp "$root/build/Release/red_native.node" "$red/build/Release/"
  cp "$root/package.json" "$red/"
  cp -r "$root/python/red_engine" "$root/.device/python/"
  cp -r "$root/../shared/fixtures" "$root/.device/fixtures"
  du -sh "$root/.device"
  exit 0
fi

out=${OUT:-$root/device-out}
mkdir -p "$out"
: >"$out/device-check.jsonl"
export PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
fixtures="$root/.device/fixtures"
[ -d "$fixtures" ] || fixtures="$root/../shared/fixtures"
python=python3
if [ "$mode" = cpu ]; then
  # The first python3 that imports torch, as red itself looks for one.
  python=$(for p in $(type -ap python3) /usr/bin/python3; do "$p" -c 'import torch' 2>/dev/null && echo "$p" && break; done)
  [ -n "$python" ] || {
    echo "no python3 imports torch (apt-get install -y python3-torch libopenblas0-pthread)"
    exit 1
  }
  export RED_ENGINE_CPU=1
fi
status=0
"$python" -m py_compile "$root"/python/red_engine/*.py "$root/scripts/device_check.py"
timeout 330 "$python" "$root/scripts/device_check.py" --mode "$mode" --fixtures "$fixtures" \
  --out "$out/device-check.jsonl" 2>&1 | tee "$out/device-check.log" || status=1

# End to end: red itself (the checkout's node and sources here, the bundle there).
if [ "$mode" = cpu ]; then
  red=(node "$root/bin/red.js")
elif [ -s "$root/.device/node.xz" ] && [ -s "$root/.device/red/src/cli/main.mjs" ]; then
  xz -dc "$root/.device/node.xz" >/tmp/node && chmod +x /tmp/node
  red=(/tmp/node "$root/.device/red/src/cli/main.mjs")
else
  echo '{"check": "e2e", "note": "not run: no .device/node.xz and red bundle (bash scripts/device-check.sh --prepare first)"}' >>"$out/device-check.jsonl"
  exit "$status"
fi
work=$(mktemp -d /tmp/red-e2e-XXXXXX)
t0=$(date +%s)
if {
  timeout 30 "${red[@]}" data builtin --out "$work/data" &&
    timeout 60 "${red[@]}" pretrain --out "$work/base" --steps 100 --eval-per-level 0 &&
    PATH="$(dirname "$(command -v "$python")"):$PATH" timeout 120 "${red[@]}" train \
      --config "$root/examples/builtin/red.yaml" --out "$work/run" --max-steps 3 \
      --set "model.path=$work/base" --set "data.train=$work/data/train.jsonl" \
      --set engine.kind=torch --set rollout.engine=engine
} >"$out/e2e.log" 2>&1; then
  echo "{\"check\": \"e2e\", \"steps\": 3, \"seconds\": $(($(date +%s) - t0)), \"ok\": true}" >>"$out/device-check.jsonl"
else
  "$python" - "$out/e2e.log" "$(($(date +%s) - t0))" >>"$out/device-check.jsonl" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1], errors="replace") if l.strip()]
print(json.dumps({"check": "e2e", "ok": False, "seconds": int(sys.argv[2]), "last_line": lines[-1][:300] if lines else ""}))
PY
  status=1
fi
rm -rf "$work"
cat "$out/device-check.jsonl"
exit "$status"
