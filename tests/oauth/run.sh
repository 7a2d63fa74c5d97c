#!/usr/bin/env bash
# OAuth end to end with clients nobody on the team wrote: the official MCP Python SDK's OAuth
# client and a real headless Chromium (Debian's, driven by Playwright) holding a virtual WebAuthn
# authenticator. See e2e.py for what each run checks.
#
#   tests/oauth/run.sh
#
# Starts, on free loopback ports with temporary data dirs (so it never collides with a demo), the
# shared server and an isolated instance for acme, both with a `http://localhost:<port>` public
# URL (WebAuthn needs a domain), provisions tenants and invites people through the real admin
# CLIs, then runs three checks: (a) shared server + dynamic client registration, (b) shared server
# + a Client ID Metadata Document served over HTTPS from a throwaway CA the server is told to trust
# (and a passkey sign-in), (c) isolated instance + dynamic client registration. No upstream is
# needed: every upstream base URL points at a closed loopback port. Everything started is stopped
# on exit; the scratch dir is removed on success and kept (and named) on failure.
#
# Installs what it needs, once: Debian's chromium (apt-get, as root) if /usr/bin/chromium is
# missing, and a venv with the SDK and Playwright (never `playwright install`: it would download
# a browser; the system's Chromium is used).
#
# OAUTH_VENV      the venv (default <repo>/.oauth-venv); reinstalled when OAUTH_PIP_SPEC changes
# OAUTH_PIP_SPEC  pip requirements (default: the versions last verified, below)
# OAUTH_NO_BUILD  1: use the binaries already in the target dir (no cargo build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
start=$SECONDS

name=oauth
# shellcheck source=tests/lib/browser.sh
. "$repo/tests/lib/browser.sh"

# 1-2. Chromium and the venv (tests/lib/browser.sh).
browser_tools

# 3. The binaries (debug, the shared target dir).
if [[ ${OAUTH_NO_BUILD:-0} != 1 ]]; then
  cargo build --bin shared-server --bin isolated-server
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/debug
for b in shared-server isolated-server; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing (build it, or unset OAUTH_NO_BUILD)"
done

# 4. Scratch state, private to the user; every process we start is stopped on exit.
scratch_dir

# Four free loopback ports, all held while choosing so they differ.
read -r shared_port shared_admin isolated_port isolated_admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
shared_url=http://localhost:$shared_port
isolated_url=http://localhost:$isolated_port

# A throwaway CA for the Client ID Metadata Document server (e2e.py serves it with this cert).
"$py" "$here/e2e.py" certs "$work/certs"

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

# Settings both servers share: no upstream is reachable (whoami needs none); client metadata
# documents may be fetched from loopback, over TLS the throwaway CA vouches for (tests only).
common_env=(STUDIO_MCP_OAUTH_CLIENT_METADATA_ALLOW_PRIVATE=1
  STUDIO_MCP_OAUTH_CLIENT_METADATA_CA="$work/certs/ca.pem")
for upstream in WEBFLOW PLAUSIBLE GITHUB CLOUDFLARE STRIPE; do
  common_env+=("STUDIO_MCP_${upstream}_BASE_URL=http://127.0.0.1:9")
done

# 5. The shared server; tenants acme and globex, one invited person each, through the admin CLI.
shared_env=("${common_env[@]}" STUDIO_MCP_DATA_DIR="$work/shared" STUDIO_MCP_LISTEN="127.0.0.1:$shared_port"
  STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$shared_admin" STUDIO_MCP_PUBLIC_URL="$shared_url")
env "${shared_env[@]}" "$bin/shared-server" serve </dev/null >>"$work/shared-server.log" 2>&1 &
pids+=($!)
wait_healthy "$shared_port" "$!" "$work/shared-server.log" "the shared server"
admin() {
  env "${shared_env[@]}" "$bin/shared-server" --admin-url "http://127.0.0.1:$shared_admin" "$@" \
    2>>"$work/admin.log" && return
  die "shared-server $1 $2 failed (log: $work/admin.log)"
}
# An invite link: the CLI prints it alone on stdout; it must be on the public URL.
invite_link() {
  local link=$1 base=$2
  [[ $link =~ ^"$base"/[^[:space:]]+$ ]] || die "expected one invite link under $base, got: $link"
  echo "$link"
}
admin tenant add acme --name "Acme Co (oauth e2e)" --webflow-site 64a0c0ffee00000000000a01 >/dev/null
admin tenant add globex --name "Globex (oauth e2e)" --webflow-site 64a0c0ffee00000000000b01 >/dev/null
# A person's id from `person list` (tab-separated: ID, TENANT, NAME, ...); whoami must name it.
person_id() {
  local id
  id=$(awk -F'\t' -v name="$1" 'NR > 1 && $3 == name { print $1 }')
  [[ -n $id ]] || die "\`person list\` does not show $1"
  echo "$id"
}
invite_alex=$(invite_link "$(admin person invite acme --name "Alex Rivera" --role member)" "$shared_url")
invite_blake=$(invite_link "$(admin person invite globex --name "Blake Stone" --role member)" "$shared_url")
alex=$(admin person list acme | person_id "Alex Rivera")
blake=$(admin person list globex | person_id "Blake Stone")

# 6. acme's isolated instance, its own data dir and public URL; one invited approver.
isolated_env=("${common_env[@]}" STUDIO_MCP_DATA_DIR="$work/isolated-acme" STUDIO_MCP_TENANT=acme
  STUDIO_MCP_LISTEN="127.0.0.1:$isolated_port" STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$isolated_admin"
  STUDIO_MCP_PUBLIC_URL="$isolated_url")
env "${isolated_env[@]}" "$bin/isolated-server" serve </dev/null >>"$work/isolated-acme.log" 2>&1 &
pids+=($!)
wait_healthy "$isolated_port" "$!" "$work/isolated-acme.log" "the isolated instance"
isolated() {
  env "${isolated_env[@]}" "$bin/isolated-server" --admin-url "http://127.0.0.1:$isolated_admin" "$@" \
    2>>"$work/admin.log" && return
  die "isolated-server $1 $2 failed (log: $work/admin.log)"
}
isolated tenant set --name "Acme Co (oauth e2e, isolated)" --webflow-site 64a0c0ffee00000000000a01 >/dev/null
invite_casey=$(invite_link "$(isolated person invite --name "Casey Moss" --role approver)" "$isolated_url")
casey=$(isolated person list | person_id "Casey Moss")
say "servers up and people invited in $((SECONDS - start)) s"

# 7. The three runs (e2e.py bounds each step; `timeout` only guards against a hang).
e2e_status=0
timeout --kill-after=10 170 "$py" "$here/e2e.py" check --certs "$work/certs" \
  --run a dcr "$shared_url" acme "Alex Rivera" "$alex" "$invite_alex" \
  --run b cimd "$shared_url" globex "Blake Stone" "$blake" "$invite_blake" \
  --run c dcr "$isolated_url" acme "Casey Moss" "$casey" "$invite_casey" \
  </dev/null 2>&1 | tee "$work/e2e.out" || e2e_status=${PIPESTATUS[0]}

status=$e2e_status
if ((status == 0)); then say "passed in $((SECONDS - start)) s"; fi
exit "$status"
