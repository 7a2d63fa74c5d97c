#!/usr/bin/env bash
# Approvals by a person, end to end, with clients nobody on the team wrote: the official MCP
# Python SDK as the model (static bearer token on /mcp) and a real headless Chromium (Debian's,
# driven by Playwright) holding a virtual WebAuthn authenticator as the person. See approvals.py
# for what each check does.
#
#   tests/approvals/run.sh
#
# Starts, on free loopback ports with a temporary data dir (so it never collides with a demo):
# the sandbox upstreams (target/debug/sandbox, as deploy/demo.sh does), a recording proxy in
# front of them (approvals.py proxy: every request the instance sends upstream is recorded, so a
# check can say "exactly one write" or "no write at all"), and acme's isolated instance with
# every upstream pointed at the proxy and acme's tenant set up as the demo does (site, custom
# domains, DNS zone and names, Stripe customer, credentials), an approver and a member invited
# through the real admin CLI. The instance has both doors, each on its own origin: the static
# door (`http://localhost:<port>`, the model's /mcp with the bearer token) and the connector door
# (`http://localhost:<port>/mcp`; the invite, sign-in and approval pages at the root of that
# origin, where approval links point). Then runs the checks: (1) adversarial model, (2) happy path per
# high-risk tool, (3) a member cannot decide, (4) the link by URL-mode elicitation. Everything
# started is stopped on exit; the scratch dir is removed on success and kept (and named) on
# failure.
#
# Shares tests/oauth's venv (same requirements, same lock, same install rule) and Chromium.
#
# OAUTH_VENV          the venv (default <repo>/.oauth-venv); reinstalled when OAUTH_PIP_SPEC changes
# OAUTH_PIP_SPEC      pip requirements (default: the versions tests/oauth last verified)
# APPROVALS_NO_BUILD  1: use the binaries already in the target dir (no cargo build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
start=$SECONDS

name=approvals
# shellcheck source=tests/lib/browser.sh
. "$repo/tests/lib/browser.sh"

# 1-2. Chromium and the venv (tests/lib/browser.sh).
browser_tools

# 3. The binaries (debug, the shared target dir).
if [[ ${APPROVALS_NO_BUILD:-0} != 1 ]]; then
  cargo build -p isolated-server --bin isolated-server -p tests --bin sandbox
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/debug
for b in isolated-server sandbox; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing (build it, or unset APPROVALS_NO_BUILD)"
done
built=$SECONDS

# 4. Scratch state, private to the user; every process we start is stopped on exit.
scratch_dir

# Four free loopback ports, all held while choosing so they differ (the sandbox picks its own).
read -r proxy_port isolated_port isolated_admin isolated_connector_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
isolated_url=http://localhost:$isolated_port   # the static door (the model's /mcp)
# The connector door: `localhost`, not the IP (passkeys need a host name); pages at its root.
isolated_connector_origin=http://localhost:$isolated_connector_port
isolated_connector_url=$isolated_connector_origin/mcp
proxy_url=http://127.0.0.1:$proxy_port

# 5. The sandbox upstreams: one JSON line {"base_url", "fixture"} on stdout once listening.
"$bin/sandbox" --listen 127.0.0.1:0 --owners acme,globex </dev/null >"$work/sandbox.json" 2>"$work/sandbox.log" &
pids+=($!)
sandbox_pid=$!
sandbox_ready() { [[ -s $work/sandbox.json && -z $(tail -c 1 "$work/sandbox.json") ]]; }
for _ in $(seq 100); do   # up to 10 s
  sandbox_ready && break
  kill -0 "$sandbox_pid" 2>/dev/null || die "the sandbox exited (log: $work/sandbox.log)"
  sleep 0.1
done
sandbox_ready || die "the sandbox did not report ready in 10 s (log: $work/sandbox.log)"
fixture() { python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).readline()); $1" "$work/sandbox.json"; }
sandbox_url=$(fixture 'print(d["base_url"])')
read -r site domain1 domain2 zone_id zone_name stripe_customer webflow_token cloudflare_token stripe_key blog < <(fixture '
o = next(o for o in d["fixture"]["owners"] if o["owner"] == "acme")
print(o["site_id"], *o["custom_domain_ids"][:2], o["zone_id"], o["zone_name"], o["stripe_customer"],
      o["token"], o["cloudflare_token"], o["stripe_key"], o["collection_ids"][0])')

# 6. The recording proxy between the instance and the sandbox.
"$py" "$here/approvals.py" proxy --port "$proxy_port" --to "$sandbox_url" --log "$work/upstream.jsonl" \
  </dev/null >>"$work/proxy.log" 2>&1 &
pids+=($!)
proxy_pid=$!
for i in $(seq 100); do   # up to 10 s
  curl -fsS -o /dev/null --max-time 2 "$proxy_url/__proxy/requests" 2>/dev/null && break
  if ! kill -0 "$proxy_pid" 2>/dev/null || ((i == 100)); then
    die "the recording proxy did not start on port $proxy_port (log: $work/proxy.log)"
  fi
  sleep 0.1
done

# Polls the health endpoint, naming the public host in `Host`; fails early if the process died.
wait_healthy() {
  local port=$1 pid=$2 log=$3 what=$4
  for i in $(seq 150); do   # up to 15 s
    curl -fsS -o /dev/null --max-time 2 -H "Host: localhost:$port" "http://127.0.0.1:$port/healthz" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null || ((i == 150)); then
      tail -n 20 "$log" >&2
      die "$what did not become healthy on port $port (log: $log)"
    fi
    sleep 0.1
  done
}

# 7. acme's isolated instance, every upstream at the recording proxy.
isolated_env=(STUDIO_MCP_DATA_DIR="$work/isolated-acme" STUDIO_MCP_TENANT=acme
  STUDIO_MCP_LISTEN="127.0.0.1:$isolated_port" STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$isolated_admin"
  STUDIO_MCP_PUBLIC_URL="$isolated_url"
  STUDIO_MCP_CONNECTOR_LISTEN="127.0.0.1:$isolated_connector_port" STUDIO_MCP_CONNECTOR_URL="$isolated_connector_url")
for upstream in WEBFLOW PLAUSIBLE GITHUB CLOUDFLARE STRIPE; do
  isolated_env+=("STUDIO_MCP_${upstream}_BASE_URL=$proxy_url")
done
env "${isolated_env[@]}" "$bin/isolated-server" serve </dev/null >>"$work/isolated-acme.log" 2>&1 &
pids+=($!)
isolated_pid=$!
wait_healthy "$isolated_port" "$isolated_pid" "$work/isolated-acme.log" "the isolated instance"
wait_healthy "$isolated_connector_port" "$isolated_pid" "$work/isolated-acme.log" "the isolated instance's connector door"
admin_url=http://127.0.0.1:$isolated_admin
isolated() {
  env "${isolated_env[@]}" "$bin/isolated-server" --admin-url "$admin_url" "$@" 2>>"$work/admin.log" && return
  die "isolated-server $1 $2 failed (log: $work/admin.log)"
}
# An invite link: the CLI prints it alone on stdout; it must be on the connector door's origin.
invite_link() {
  local link=$1
  [[ $link =~ ^"$isolated_connector_origin"/[^[:space:]]+$ ]] \
    || die "expected one invite link under $isolated_connector_origin, got: $link"
  echo "$link"
}
# A person's id from `person list` (tab-separated: ID, TENANT, NAME, ROLE, ...).
person_id() {
  local id
  id=$(awk -F'\t' -v name="$1" 'NR > 1 && $3 == name { print $1 }')
  [[ -n $id ]] || die "\`person list\` does not show $1"
  echo "$id"
}
isolated tenant set --name "Acme Co (approvals e2e)" --webflow-site "$site" \
  --custom-domain "$domain1" --custom-domain "$domain2" --dns-zone "$zone_id" \
  --dns-name "www.$zone_name" --dns-name "shop.$zone_name" --dns-name "*.shop.$zone_name" \
  --stripe-customer "$stripe_customer" --deletable-collection "$blog" >/dev/null
printf %s "$webflow_token" | isolated secret set acme webflow
printf %s "$cloudflare_token" | isolated secret set acme cloudflare
printf %s "$stripe_key" | isolated secret set acme stripe
token=$(isolated token issue acme --label "approvals e2e")
invite_approver=$(invite_link "$(isolated person invite --name "Casey Moss" --role approver)")
invite_member=$(invite_link "$(isolated person invite --name "Morgan Lee" --role member)")
people=$(isolated person list)
approver=$(person_id "Casey Moss" <<<"$people")
member=$(person_id "Morgan Lee" <<<"$people")
say "built in $((built - start)) s; sandbox, proxy and instance up, tenant set, people invited in $((SECONDS - built)) s"

# 8. The checks (approvals.py bounds each step; `timeout` only guards against a hang). The
# admin CLI it runs (approval list/approve/deny, audit) reads the instance's settings from the
# environment.
checks_status=0
printf %s "$token" >"$work/model-token"
env "${isolated_env[@]}" timeout --kill-after=10 170 "$py" "$here/approvals.py" check \
  --base "$isolated_url" --connector "$isolated_connector_url" --token-file "$work/model-token" --cli "$bin/isolated-server" --admin-url "$admin_url" \
  --proxy "$proxy_url" --sandbox "$work/sandbox.json" \
  --approver "Casey Moss" "$approver" "$invite_approver" \
  --member "Morgan Lee" "$member" "$invite_member" \
  </dev/null 2>&1 | tee "$work/checks.out" || checks_status=${PIPESTATUS[0]}

status=$checks_status
if ((status == 0)); then say "passed in $((SECONDS - start)) s (checks: $((SECONDS - built)) s)"; fi
exit "$status"
