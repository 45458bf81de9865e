#!/usr/bin/env bash
# GPU check for a borrowed GPU machine (no internet needed), under 5 minutes.
#
#   bench/gpu_check.sh [PATH/TO/tks] [DEVICE]
#
# The binary is a release build made elsewhere with `cargo build --release --features wgpu`
# (copy it over; the machine needs a Vulkan loader, libvulkan.so.1, and a GPU driver). DEVICE
# defaults to `wgpu` (wgpu's pick: a high-power GPU first); `wgpu:0` names the first discrete GPU.
# For the small CNN and VGG-SNN it trains a few steps on the GPU and on Flex with the same seed
# and batch (`tks bench`'s random data), compares the losses and prints samples/s of each.
# Each run has 120 s; on a software adapter (wgpu:cpu, lavapipe) VGG-SNN does not fit in that
# (checked here: the small CNN matched Flex to 4e-4 relative, at 0.07x its speed).
set -euo pipefail
tks="${1:-target/release/tks}"
device="${2:-wgpu}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
[ -x "$tks" ] || { echo "error: $tks is not an executable tks binary (build with --features wgpu)"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
check() {
    local name="$1"; shift
    local flex gpu
    flex="$(timeout 120 "$tks" bench "$@" --no-compare-lif --no-compare-layers --lif-path reference --T 4 --steps 5 --seed 1 --device flex 2>/dev/null | tail -1)" \
        || { echo "$name: flex run failed"; status=1; return; }
    gpu="$(timeout 120 "$tks" bench "$@" --no-compare-lif --no-compare-layers --lif-path reference --T 4 --steps 5 --seed 1 --device "$device" 2>"$work/err" | tail -1)" \
        || { echo "$name: $device run failed: $(tail -3 "$work/err")"; status=1; return; }
    python3 - "$name" "$flex" "$gpu" <<'PY' || status=1
import json, sys
name, flex, gpu = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
fl, gl = flex["losses"], gpu["losses"]
worst = max(abs(a - b) / (1 + abs(a)) for a, b in zip(fl, gl))
print(f"{name}: losses flex {[round(x, 5) for x in fl]}")
print(f"{name}: losses gpu  {[round(x, 5) for x in gl]}  (largest relative difference {worst:.2e})")
print(f"{name}: samples/s flex {flex['samples_per_s']:.1f}, gpu {gpu['samples_per_s']:.1f} ({gpu['samples_per_s'] / flex['samples_per_s']:.2f}x)")
sys.exit(0 if worst < 1e-3 and len(fl) == len(gl) else 1)
PY
}
check "small CNN" --model smallcnn --batch 64
check "VGG-SNN w0.25" --model vggsnn --batch 16
[ "$status" -eq 0 ] && echo "gpu_check: ok" || echo "gpu_check: FAILED"
exit "$status"
