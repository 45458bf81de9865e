#!/usr/bin/env bash
# Side-by-side training benchmark: tks vs the PyTorch reference (plain torch) and SpikingJelly,
# on the configurations of `snn_reference.py bench`, on this machine, in one run.
#
#   bench/compare.sh                 # full grid, 3 rounds, 10 timed steps per process
#   ROUNDS=5 STEPS=20 bench/compare.sh
#   CONFIGS="smallcnn:4" bench/compare.sh
#   INFER=0 bench/compare.sh         # skip the inference comparison
#   CONFIGS=" " INFER_CONFIGS="vggsnn:4" bench/compare.sh   # inference only
#
# Creates a Python venv (default ~/.cache/tks-bench-venv, override with VENV=...), installs
# torch (from the default PyPI index, or $TORCH_INDEX, e.g. the PyTorch CPU-wheel index where it
# can be reached: its CPU kernels are the same and it is gigabytes smaller), numpy and
# spikingjelly, builds `tks` in release mode, then for each configuration runs $ROUNDS rounds
# (default 3) of: reference (`--impl ref`),
# SpikingJelly (`--impl sj`) and `tks bench`, each a fresh process. Interleaving them in rounds
# keeps a drift of the shared host (a neighbour starting, thermal or frequency changes) from
# showing up as a ratio: each ratio is computed within a round, and the table gives the median
# over rounds with its min–max, beside the load average. Ratios: tks/PyTorch and tks/SpikingJelly
# for throughput (samples/s, by the fastest step; higher = tks faster) and peak RSS (lower = tks
# leaner), and for tks its peak RSS at each T over its peak at the smallest T of the same model.
# On $LEAN_CONFIGS (default vggsnn:4 vggsnn:16) each round also runs tks with the memory-lean
# kernel policy (TKS_RECOMPUTE_CONV=1 TKS_PACK_SPIKES=1: conv inputs kept as bytes, conv outputs
# recomputed in the backward) as `tks-lean`: its memory and its time cost against plain tks.
# Then, unless INFER=0, the same for inference on $INFER_CONFIGS (default: the training grid up
# to T=8): each network is trained for $TRAIN_STEPS steps (default 40) and timed for
# $INFER_STEPS forward passes in eval mode (bench/infer_reference.py for PyTorch and
# SpikingJelly, `tks bench --inference` for tks, which runs its spike-aware convolution and then
# the dense one in the same process).
# Raw JSON lines (tagged with who, cfg and round) go to $OUT (default bench/results-<date>.jsonl).
# Benchmark on an idle machine: other processes on the cores make every number noisy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(cd "$here/.." && pwd)"
ref="${REFERENCE:-$crate/../shared/reference/snn_reference.py}"
venv="${VENV:-$HOME/.cache/tks-bench-venv}"
steps="${STEPS:-10}"
threads="${THREADS:-2}"
configs="${CONFIGS:-vggsnn:4 vggsnn:8 vggsnn:16 smallcnn:4}"
infer_configs="${INFER_CONFIGS:-vggsnn:4 vggsnn:8 smallcnn:4}"
rounds="${ROUNDS:-3}"
lean_configs="${LEAN_CONFIGS:-vggsnn:4 vggsnn:16}"
torch_index="${TORCH_INDEX:-}"
out="${OUT:-$here/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
python="${PYTHON:-python3}"
infer="${INFER:-1}"
train_steps="${TRAIN_STEPS:-40}"
infer_steps="${INFER_STEPS:-20}"

[ -f "$ref" ] || { echo "reference script not found: $ref (set REFERENCE=...)" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating venv $venv" >&2
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
  echo "== installing torch (${torch_index:-default PyPI index}) and numpy (may take minutes)" >&2
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet ${torch_index:+--index-url "$torch_index"} torch
  "$venv/bin/pip" install --quiet numpy
fi
have_sj=1
if ! "$venv/bin/python" -c "import spikingjelly" 2>/dev/null; then
  echo "== installing spikingjelly" >&2
  "$venv/bin/pip" install --quiet spikingjelly || have_sj=0
fi

echo "== building tks (release)" >&2
(cd "$crate" && cargo build --release --quiet --bin tks)
target="${CARGO_TARGET_DIR:-$crate/target}"
tks="$target/release/tks"

: > "$out"
# The host, so that runs on different machines are not read as a change of the code.
"$venv/bin/python" - "$threads" >> "$out" <<'PY'
import json, os, platform, sys
from importlib import metadata
cpu, flags = platform.processor() or platform.machine(), set()
try:
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            cpu = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
except OSError:
    pass
isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
versions = {}
for name in ("torch", "spikingjelly"):
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = None
print(json.dumps({"who": "host", "cfg": "host", "cpu": cpu, "isa": isa, "cores": os.cpu_count(),
                  "threads": int(sys.argv[1]), **versions}))
PY
# Sets model, T, batch and width for a `model:T` configuration.
parse_cfg() {
  model="${1%%:*}"; T="${1##*:}"
  if [ "$model" = vggsnn ]; then batch=16; width=0.25; else batch=64; width=1.0; fi
}
# record WHO CFG ROUND CMD...: runs CMD and appends its last (JSON) line to $out, tagged.
record() {
  local who="$1" cfg="$2" round="$3"; shift 3
  "$@" | tail -n 1 | sed "s/^{/{\"who\": \"$who\", \"cfg\": \"$cfg\", \"round\": $round, /" >> "$out"
}

for cfg in $configs; do
  parse_cfg "$cfg"
  common=(--model "$model" --width "$width" --T "$T" --batch "$batch" --steps "$steps" --loss tks)
  for round in $(seq 1 "$rounds"); do
    echo "== $model T=$T B=$batch round $round/$rounds: PyTorch reference" >&2
    record torch "$cfg" "$round" "$venv/bin/python" "$ref" bench "${common[@]}" --impl ref --threads "$threads"
    if [ "$have_sj" = 1 ]; then
      echo "== $model T=$T B=$batch round $round/$rounds: SpikingJelly" >&2
      record sj "$cfg" "$round" "$venv/bin/python" "$ref" bench "${common[@]}" --impl sj --threads "$threads" || true
    fi
    echo "== $model T=$T B=$batch round $round/$rounds: tks" >&2
    RAYON_NUM_THREADS="$threads" record tks "$cfg" "$round" "$tks" bench "${common[@]}" --no-compare-lif --no-compare-layers
    if [[ " $lean_configs " == *" $cfg "* ]]; then
      echo "== $model T=$T B=$batch round $round/$rounds: tks, memory-lean policy" >&2
      TKS_RECOMPUTE_CONV=1 TKS_PACK_SPIKES=1 RAYON_NUM_THREADS="$threads" \
        record tks-lean "$cfg" "$round" "$tks" bench "${common[@]}" --no-compare-lif --no-compare-layers
    fi
  done
done

if [ "$infer" = 1 ]; then
  for cfg in $infer_configs; do
    parse_cfg "$cfg"
    common=(--model "$model" --width "$width" --T "$T" --batch "$batch" --steps "$infer_steps"
            --train-steps "$train_steps")
    for round in $(seq 1 "$rounds"); do
      echo "== $model T=$T B=$batch round $round/$rounds: inference, PyTorch reference" >&2
      record torch-infer "$cfg" "$round" "$venv/bin/python" "$here/infer_reference.py" --reference "$ref" \
        "${common[@]}" --impl ref --threads "$threads"
      if [ "$have_sj" = 1 ]; then
        echo "== $model T=$T B=$batch round $round/$rounds: inference, SpikingJelly" >&2
        record sj-infer "$cfg" "$round" "$venv/bin/python" "$here/infer_reference.py" --reference "$ref" \
          "${common[@]}" --impl sj --threads "$threads" || true
      fi
      echo "== $model T=$T B=$batch round $round/$rounds: inference, tks" >&2
      RAYON_NUM_THREADS="$threads" record tks-infer "$cfg" "$round" "$tks" bench --inference "${common[@]}"
    done
  done
fi

"$venv/bin/python" "$here/compare_report.py" "$out"
echo "raw results: $out" >&2
