#!/usr/bin/env bash
# The restructure's invariants, checked on every CI run (docs/ARCHITECTURE.md says why):
# the core crate builds without CLI/progress/plotting/anyhow crates, no environment reads outside
# the binary crate, no static atomics in the kernels, no source file over 800 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
banned=$(cargo tree -p tks-core -e normal --prefix none --format '{p}' 2>/dev/null \
    | awk '{print $1}' | grep -xE 'clap|indicatif|plotters|anyhow' | sort -u || true)
if [ -n "$banned" ]; then
    echo "tks-core depends on: $banned"; fail=1
fi
if grep -rnE 'std::env::var|env::var_os|env::var\(' crates/*/src; then
    echo "environment reads outside the binary crate (above)"; fail=1
fi
if grep -rnE 'static [A-Z_]+: *(\[)?Atomic' crates/core/src; then
    echo "static atomics in the core crate (above)"; fail=1
fi
long=$(find crates/*/src src -name '*.rs' -print0 | xargs -0 wc -l | awk '$2 != "total" && $1 > 800')
if [ -n "$long" ]; then
    echo "files over 800 lines:"; echo "$long"; fail=1
fi
members=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workspace_members"]))')
if [ "$members" -lt 3 ]; then
    echo "workspace has $members crates"; fail=1
fi
[ "$fail" -eq 0 ] && echo "structure: ok ($members crates)"
exit "$fail"
