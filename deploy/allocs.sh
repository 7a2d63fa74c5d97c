#!/usr/bin/env bash
# Allocations per MCP call: the shared server built with `--features dhat-heap` (every
# allocation counted by dhat, totals printed when it stops), driven with `bench load`
# (tools/call whoami, one client), twice per setting with different run lengths so that
# start-up cancels out: (blocks in the long run − blocks in the short run) / (calls in the long
# run − calls in the short run), the calls read from the server's own
# studio_mcp_mcp_requests_total. Once with the fast path (the default) and once with
# STUDIO_MCP_FAST_PATH=off (rmcp's transport for everything).
#
#   deploy/allocs.sh                  builds what it needs (the dhat build in target/dhat)
#   ALLOCS_SKIP_BUILD=1 deploy/allocs.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
dhat_dir=${DHAT_TARGET_DIR:-$target_dir/dhat}
if [[ ${ALLOCS_SKIP_BUILD:-0} != 1 ]]; then
  echo "allocs: building (the dhat build has a target dir of its own) …" >&2
  cargo build --release -p tests --bin bench
  cargo build --release -p shared-server --features dhat-heap --target-dir "$dhat_dir"
fi
bench=$target_dir/release/bench
server=$dhat_dir/release/shared-server

work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One run: prints "<calls> <blocks> <bytes>".
measure() {
  local mode=$1 secs=$2 dir=$work/$1-$2
  local port admin
  port=$(free_port) admin=$(free_port)
  "$bench" populate --dir "$dir" --tenants 1 --tokens-per-tenant 1 \
    --public-url "http://127.0.0.1:$port" >/dev/null 2>&1
  STUDIO_MCP_DATA_DIR=$dir STUDIO_MCP_PUBLIC_URL=http://127.0.0.1:$port \
    STUDIO_MCP_LISTEN=127.0.0.1:$port STUDIO_MCP_ADMIN_LISTEN=127.0.0.1:$admin \
    STUDIO_MCP_TENANT_RATE_PER_MIN=1000000000 STUDIO_MCP_FAST_PATH=$mode \
    bash -c 'cd "$1" && exec "$2" serve' _ "$work" "$server" >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$bench" load --url "http://127.0.0.1:$port/mcp" --tokens-file "$dir/tokens.txt" \
    --concurrency 1 --duration-secs "$secs" --warmup-secs 0 >/dev/null 2>&1
  local calls
  calls=$(curl -fs -H "Authorization: Bearer $(cat "$dir/admin-token")" \
    "http://127.0.0.1:$admin/metrics" |
    awk '/^studio_mcp_mcp_requests_total/ { n += $2 } END { print n + 0 }')
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  # dhat: Total:     1,234 bytes in 56 blocks  (dhat-heap.json lands in $work)
  local totals
  totals=$(grep -m1 'dhat: Total:' "$dir.log" | tr -d ',' | awk '{ print $6, $3 }')
  echo "$calls $totals"
}

printf '| front | allocations per call | bytes allocated per call |\n|---|---|---|\n'
for mode in on off; do
  read -r c1 b1 y1 < <(measure "$mode" 2)
  read -r c2 b2 y2 < <(measure "$mode" 6)
  python3 - "$mode" "$c1" "$b1" "$y1" "$c2" "$b2" "$y2" <<'EOF'
import sys
mode, c1, b1, y1, c2, b2, y2 = sys.argv[1], *map(int, sys.argv[2:])
calls = c2 - c1
label = "fast path" if mode == "on" else "rmcp only (STUDIO_MCP_FAST_PATH=off)"
print(f"| {label} | {(b2 - b1) / calls:.1f} | {(y2 - y1) / calls:.0f} |  ({calls} calls)")
EOF
done
