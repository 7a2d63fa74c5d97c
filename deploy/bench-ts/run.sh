#!/usr/bin/env bash
# The TypeScript reference point: the official MCP TypeScript SDK (server.mjs: stateless, JSON
# responses, static bearer check, `whoami`) pinned to core 0, driven by the same load generator
# as deploy/bench.sh (`bench load`, pinned to core 1). Needs node ≥ 18 and npm; the SDK is
# installed under target/bench-ts (ignored by git).
#
#   deploy/bench-ts/run.sh [--duration-secs 5] [--concurrency 1,16,64] [--json out.json]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/deploy/bench-ts
work=${BENCH_TS_DIR:-$repo/target/bench-ts}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

command -v node >/dev/null || { echo "bench-ts: node is not installed" >&2; exit 1; }
mkdir -p "$work"
cp "$here/package.json" "$here/server.mjs" "$work/"
if [[ ! -d $work/node_modules/@modelcontextprotocol/sdk ]]; then
  (cd "$work" && npm install --no-audit --no-fund --loglevel=error)
fi
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  (cd "$repo" && cargo build --release -p tests --bin bench)
fi

pin_server=() pin_load=()
if command -v taskset >/dev/null && (( $(nproc --all) >= 2 )); then
  pin_server=(taskset -c 0) pin_load=(taskset -c "${BENCH_LOAD_CPU:-1}")
fi

addr_file=$(mktemp)
"${pin_server[@]}" node "$work/server.mjs" >"$addr_file" 2>"$work/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$addr_file"' EXIT
for _ in $(seq 1 500); do
  [[ -s $addr_file ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.01
done
addr=$(head -n1 "$addr_file")
echo "bench-ts: TypeScript SDK $(node -p "require('$work/node_modules/@modelcontextprotocol/sdk/package.json').version") on node $(node --version) at $addr (pid $pid)" >&2

"${pin_load[@]}" "$target_dir/release/bench" load --url "http://$addr/mcp" --token bench-token \
  --pid "$pid" --label "ts-sdk whoami" "$@"
