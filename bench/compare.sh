#!/usr/bin/env bash
# Side-by-side training benchmark: tks vs the PyTorch reference (plain torch) and SpikingJelly,
# on the configurations of `snn_reference.py bench`, back to back on this machine, in one run.
#
#   bench/compare.sh                 # full grid, 10 timed steps per config
#   STEPS=20 bench/compare.sh        # more steps
#   CONFIGS="smallcnn:4" bench/compare.sh
#   INFER=0 bench/compare.sh         # skip the inference comparison
#
# Creates a Python venv (default ~/.cache/tks-bench-venv, override with VENV=...), installs
# torch, numpy and spikingjelly from the default PyPI index, builds `tks` in release mode, then
# for each configuration runs: reference (`--impl ref`), SpikingJelly (`--impl sj`) and
# `tks bench`, one process each, and prints a table of the ratios tks/PyTorch and
# tks/SpikingJelly for throughput (samples/s, higher = tks faster) and peak RSS (lower = tks
# leaner). Then, unless INFER=0, the same for inference: each network is trained for
# $TRAIN_STEPS steps (default 40) and timed for $INFER_STEPS forward passes in eval mode
# (bench/infer_reference.py for PyTorch and SpikingJelly, `tks bench --inference` for tks,
# which runs its spike-aware convolution and then the dense one in the same process).
# Raw JSON lines go to $OUT (default bench/results-<date>.jsonl).
# Benchmark on an idle machine: other processes on the cores make every number noisy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(cd "$here/.." && pwd)"
ref="${REFERENCE:-$crate/../shared/reference/snn_reference.py}"
venv="${VENV:-$HOME/.cache/tks-bench-venv}"
steps="${STEPS:-10}"
threads="${THREADS:-2}"
configs="${CONFIGS:-vggsnn:4 vggsnn:8 smallcnn:4}"
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
  echo "== installing torch numpy (default PyPI index; may take minutes)" >&2
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet torch numpy
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
# Sets model, T, batch and width for a `model:T` configuration.
parse_cfg() {
  model="${1%%:*}"; T="${1##*:}"
  if [ "$model" = vggsnn ]; then batch=16; width=0.25; else batch=64; width=1.0; fi
}
# record WHO CFG CMD...: runs CMD and appends its last (JSON) line to $out, tagged.
record() {
  local who="$1" cfg="$2"; shift 2
  "$@" | tail -n 1 | sed "s/^{/{\"who\": \"$who\", \"cfg\": \"$cfg\", /" >> "$out"
}

for cfg in $configs; do
  parse_cfg "$cfg"
  common=(--model "$model" --width "$width" --T "$T" --batch "$batch" --steps "$steps" --loss tks)
  echo "== $model T=$T B=$batch: PyTorch reference" >&2
  record torch "$cfg" "$venv/bin/python" "$ref" bench "${common[@]}" --impl ref --threads "$threads"
  if [ "$have_sj" = 1 ]; then
    echo "== $model T=$T B=$batch: SpikingJelly" >&2
    record sj "$cfg" "$venv/bin/python" "$ref" bench "${common[@]}" --impl sj --threads "$threads" || true
  fi
  echo "== $model T=$T B=$batch: tks" >&2
  RAYON_NUM_THREADS="$threads" record tks "$cfg" "$tks" bench "${common[@]}" --no-compare-lif --no-compare-layers
done

if [ "$infer" = 1 ]; then
  for cfg in $configs; do
    parse_cfg "$cfg"
    common=(--model "$model" --width "$width" --T "$T" --batch "$batch" --steps "$infer_steps"
            --train-steps "$train_steps")
    echo "== $model T=$T B=$batch: inference, PyTorch reference" >&2
    record torch-infer "$cfg" "$venv/bin/python" "$here/infer_reference.py" --reference "$ref" \
      "${common[@]}" --impl ref --threads "$threads"
    if [ "$have_sj" = 1 ]; then
      echo "== $model T=$T B=$batch: inference, SpikingJelly" >&2
      record sj-infer "$cfg" "$venv/bin/python" "$here/infer_reference.py" --reference "$ref" \
        "${common[@]}" --impl sj --threads "$threads" || true
    fi
    echo "== $model T=$T B=$batch: inference, tks" >&2
    RAYON_NUM_THREADS="$threads" record tks-infer "$cfg" "$tks" bench --inference "${common[@]}"
  done
fi

"$venv/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["cfg"], {})[r["who"]] = r
def f(x, d=1):
    return "—" if x is None else f"{x:.{d}f}"
print("| config | ms/step mean (min): PyTorch · SJ · tks | tks/PyTorch throughput (by min step) "
      "| tks/SJ throughput (by min step) | peak RSS MiB PyTorch · SJ · tks | tks/PyTorch memory "
      "| tks/SJ memory | tks CPU util | load avg |")
print("|---|---|---|---|---|---|---|---|---|")
for cfg, d in by.items():
    t, s, k = d.get("torch"), d.get("sj"), d.get("tks")
    if not k:
        continue
    model, T = cfg.split(":")
    name = f"{model} T={T} B={k['batch']}"
    thr = lambda o: None if not o else k["samples_per_s"] / o["samples_per_s"]
    thr_min = lambda o: None if not o else o["ms_per_step_min"] / k["ms_per_step_min"]
    mem = lambda o: None if not o else k["peak_rss_mib"] / o["peak_rss_mib"]
    ms = lambda o: "—" if not o else f"{o['ms_per_step']:.0f} ({o['ms_per_step_min']:.0f})"
    rss = lambda o: "—" if not o else f"{o['peak_rss_mib']:.0f}"
    loads = [x for o in (t, s, k) if o for x in o.get("loadavg_1m_start_end", [])]
    load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"
    print(f"| {name} | {ms(t)} · {ms(s)} · {ms(k)} | {f(thr(t), 2)}× ({f(thr_min(t), 2)}×) "
          f"| {f(thr(s), 2)}× ({f(thr_min(s), 2)}×) | {rss(t)} · {rss(s)} · {rss(k)} "
          f"| {f(mem(t), 2)}× | {f(mem(s), 2)}× | {k['cpu_utilisation']:.2f} | {load} |")
inf = [(cfg, d) for cfg, d in by.items() if d.get("tks-infer")]
if inf:
    print()
    print("Inference (eval mode, forward passes after the training warm-up):")
    print()
    print("| config | ms/pass median: PyTorch · SJ · tks dense · tks spike-aware | tks/PyTorch throughput "
          "| tks/SJ throughput | tks spike-aware/dense | conv input density (sparse calls) |")
    print("|---|---|---|---|---|---|")
    for cfg, d in inf:
        t, s, k = d.get("torch-infer"), d.get("sj-infer"), d["tks-infer"]
        model, T = cfg.split(":")
        med = lambda o: None if not o else o["ms_per_step_median"]
        kd, ka = k["dense"]["ms_per_step_median"], k["ms_per_step_median"]
        ratio = lambda o: None if not o else med(o) / ka
        conv = k["conv"]
        print(f"| {model} T={T} B={k['batch']} | {f(med(t))} · {f(med(s))} · {kd:.1f} · {ka:.1f} "
              f"| {f(ratio(t), 2)}× | {f(ratio(s), 2)}× | {kd / ka:.2f}× "
              f"| {conv['mean_input_density']:.3f} ({conv['sparse_calls']}/{conv['calls']}) |")
print()
print("throughput ratio > 1: tks faster; memory ratio < 1: tks leaner. A 1-minute load average "
      "above ~0.5 on this machine means other processes competed for the cores: the ratios are then "
      "noisy (PyTorch's OpenMP threads suffer most); compare the by-min-step ratios.")
PY
echo "raw results: $out" >&2
