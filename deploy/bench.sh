#!/usr/bin/env bash
# studio-mcp benchmark: builds the shared server and the `bench` binary in release mode, then
# runs `target/release/bench` pinned to core 1 (it pins each server it starts to core 0), so the
# load generator and the server never share a core. Takes a few minutes with the defaults.
#
#   deploy/bench.sh                                  the full run: 1, 1000, 10000 tenants × 1, 16, 64 clients
#   deploy/bench.sh --duration-secs 2 --tenants 1    any `bench run` option (see `bench run --help`)
#   BENCH_JSON=bench.json deploy/bench.sh            also write machine-readable results
#
# Environment: CARGO_TARGET_DIR (as cargo), BENCH_SKIP_BUILD=1 (use the binaries already built),
# BENCH_LOAD_CPU (default 1: the core the load generator runs on).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  echo "bench: building release binaries (the first build takes several minutes) …" >&2
  cargo build --release -p shared-server -p tests --bin shared-server --bin bench
fi

args=(run "$@")
[[ -n ${BENCH_JSON:-} ]] && args+=(--json "$BENCH_JSON")

bench=$target_dir/release/bench
[[ -x $bench ]] || { echo "bench: $bench missing; run without BENCH_SKIP_BUILD" >&2; exit 1; }

cores=$(nproc 2>/dev/null || echo 1)
if command -v taskset >/dev/null && (( cores >= 2 )); then
  exec taskset -c "${BENCH_LOAD_CPU:-1}" "$bench" "${args[@]}"
else
  echo "bench: taskset missing or one core: load generator and server will share CPUs" >&2
  exec "$bench" "${args[@]}"
fi
