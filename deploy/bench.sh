#!/usr/bin/env bash
# studio-mcp benchmark: builds the shared server and the `bench` binary in release mode, then
# runs `target/release/bench` pinned to core 1 (it pins each server it starts to core 0), so the
# load generator and the server never share a core. Measures the sled store and PostgreSQL in
# turn, and three replicas on PostgreSQL; unless given `--postgres URL`, it starts a throwaway
# PostgreSQL cluster (tests/lib/postgres.sh) pinned to core 0 beside the servers, and stops it
# afterwards. Takes about five minutes with the defaults.
#
#   deploy/bench.sh                                  the full run: 1, 10000 tenants × 1, 16, 64 clients × sled, postgres
#   deploy/bench.sh --duration-secs 2 --tenants 1    any `bench run` option (see `bench run --help`)
#   deploy/bench.sh --stores sled --replicas-revokes 0    sled only, no PostgreSQL at all
#   deploy/bench.sh --postgres postgres://u@host:5432/postgres    an existing cluster
#   BENCH_JSON=bench.json deploy/bench.sh            also write machine-readable results
#   BENCH_SESSION=0 deploy/bench.sh                  skip the replayed assistant session
#   BENCH_COMPARE=0 deploy/bench.sh                  skip the side-by-side comparison
#
# Then it measures the shared server side by side with the axum floor and a minimal rmcp
# server, in interleaved rounds: static and OAuth tokens, the fast path on and off, sled and
# PostgreSQL, with the ratios and the goals (`bench compare`, about five minutes).
#
# After the throughput run it replays an assistant's session of about fifty tool calls against
# the sandbox upstreams (150 ms latency, Webflow's 60 requests a minute), the upstream read cache
# off and then on, and prints that table too (`bench session`, about twenty seconds).
#
# Environment: CARGO_TARGET_DIR (as cargo), BENCH_SKIP_BUILD=1 (use the binaries already built),
# BENCH_LOAD_CPU (default 1: the core the load generator runs on), BENCH_PG_CPU (default 0: the
# core the throwaway PostgreSQL runs on; 1 puts it beside the load generator instead, as if the
# database had a machine of its own).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  echo "bench: building release binaries (the first build takes several minutes) …" >&2
  cargo build --release -p shared-server -p tests --bin shared-server --bin bench
fi

args=(run "$@")
compare=(compare "$@")
[[ -n ${BENCH_JSON:-} ]] && args+=(--json "$BENCH_JSON")

bench=$target_dir/release/bench
[[ -x $bench ]] || { echo "bench: $bench missing; run without BENCH_SKIP_BUILD" >&2; exit 1; }

cores=$(nproc 2>/dev/null || echo 1)
pin=1
command -v taskset >/dev/null && (( cores >= 2 )) || pin=0

# Does this run need PostgreSQL, and was it given one?
given_pg=0 stores=sled,postgres revokes=30 no_pin=0
for ((i = 1; i <= $#; i++)); do
  arg=${!i}
  next=$((i + 1))
  case $arg in
    --postgres|--postgres=*) given_pg=1 ;;
    --stores) stores=${!next:-} ;;
    --stores=*) stores=${arg#--stores=} ;;
    --replicas-revokes) revokes=${!next:-} ;;
    --replicas-revokes=*) revokes=${arg#--replicas-revokes=} ;;
    --no-pin) no_pin=1 ;;
  esac
done
if (( given_pg == 0 )) && { [[ ,$stores, == *,postgres,* ]] || [[ $revokes != 0 ]]; }; then
  # shellcheck source=../tests/lib/postgres.sh
  . tests/lib/postgres.sh
  postgres_start >&2   # exports STUDIO_MCP_TEST_POSTGRES; stops the cluster on exit
  if (( pin == 1 && no_pin == 0 )); then
    # The database's work for a call (the audit batches, the change feed) is the server's
    # cost: by default on the server's core, not the load generator's. Backends forked later
    # inherit the postmaster's affinity; the ones already running are pinned one by one.
    pg_cpu=${BENCH_PG_CPU:-0}
    postmaster=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    for pid in "$postmaster" $(ps -o pid= --ppid "$postmaster"); do
      taskset -a -p -c "$pg_cpu" "$pid" >/dev/null
    done
    echo "bench: PostgreSQL (postmaster $postmaster) pinned to core $pg_cpu" >&2
  fi
  args+=(--postgres "$STUDIO_MCP_TEST_POSTGRES")
  compare+=(--postgres "$STUDIO_MCP_TEST_POSTGRES")
fi

# Not `exec`: the EXIT trap stops the throwaway cluster afterwards.
run_bench() {
  if (( pin == 1 )); then
    taskset -c "${BENCH_LOAD_CPU:-1}" "$bench" "$@"
  else
    echo "bench: taskset missing or one core: load generator and server will share CPUs" >&2
    "$bench" "$@"
  fi
}
run_bench "${args[@]}"
if [[ ${BENCH_COMPARE:-1} != 0 ]]; then
  run_bench "${compare[@]}"
fi

# The session's cost is upstream latency and quota, not CPU: no pinning.
if [[ ${BENCH_SESSION:-1} != 0 ]]; then
  "$bench" session
fi
