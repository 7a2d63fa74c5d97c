#!/usr/bin/env bash
# OAuth end to end with clients nobody on the team wrote: the official MCP Python SDK's OAuth
# client, a client that behaves as claude.ai has been seen to, mcp-remote (the bridge Claude
# Desktop runs), and a real headless Chromium (Debian's, driven by Playwright) holding a virtual
# WebAuthn authenticator. See e2e.py and mcp_remote.py for what each run checks.
#
#   tests/oauth/run.sh
#
# Starts, on free loopback ports with temporary data dirs (so it never collides with a demo), the
# shared server and an isolated instance for acme, each with its two doors on two origins: the
# static door (public URL `http://localhost:<port>`, MCP at /mcp, bearer tokens) and the connector
# door (connector URL `http://localhost:<other port>/mcp`, OAuth; `localhost` because WebAuthn
# needs a domain). Provisions tenants and invites people through the real admin CLIs (invite links
# on the connector origin), then runs, after checking both doors of each server with plain HTTP:
# (a) shared server + the SDK with dynamic client registration, (b) shared server + the SDK with a
# Client ID Metadata Document served over HTTPS from a throwaway CA the server is told to trust
# (and a passkey sign-in), (c) isolated instance + the SDK with dynamic client registration,
# (d) shared server + a claude.ai-like client (metadata document, endpoints appended to the
# origin, refreshes, audience), and (e) mcp-remote's own OAuth flow against the shared server's
# connector, driven over stdio by the SDK, the person consenting in Chromium. No upstream is
# needed: every upstream base URL points at a closed loopback port. Everything started is stopped
# on exit; the scratch dir is removed on success and kept (and named) on failure.
#
# Installs what it needs, once: Debian's chromium (apt-get, as root) if /usr/bin/chromium is
# missing, a venv with the SDK and Playwright (never `playwright install`: it would download a
# browser; the system's Chromium is used), and mcp-remote (pinned by package.json and
# package-lock.json here, `npm ci` into a cache dir; run with the machine's Node, 20 or later).
#
# OAUTH_VENV      the venv (default <repo>/.oauth-venv); reinstalled when OAUTH_PIP_SPEC changes
# OAUTH_PIP_SPEC  pip requirements (default: the versions last verified, below)
# OAUTH_NODE_CACHE  where mcp-remote is installed (default
#                 ${XDG_CACHE_HOME:-$HOME/.cache}/studio-mcp/oauth-node); reinstalled when
#                 package.json or package-lock.json change
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

# mcp-remote, pinned by the lockfile, installed once into the cache; the machine's Node runs it.
for tool in node npm; do
  command -v "$tool" >/dev/null || die "$tool is needed (mcp-remote)"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || die "mcp-remote needs Node 20 or later; this is $(node --version)"
node_cache=${OAUTH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/studio-mcp/oauth-node}
mkdir -p "$node_cache"
stamp=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
(
  flock 9   # two runs sharing the cache must not install over each other
  if [[ $(cat "$node_cache/.installed" 2>/dev/null) != "$stamp" \
    || ! -e $node_cache/node_modules/mcp-remote/dist/proxy.js ]]; then
    say "installing mcp-remote into $node_cache"
    rm -f "$node_cache/.installed"
    cp "$here/package.json" "$here/package-lock.json" "$node_cache/"
    (cd "$node_cache" && npm ci --no-audit --no-fund --loglevel=error) >&2
    echo "$stamp" >"$node_cache/.installed"
  fi
) 9>"$node_cache/.lock"
mcp_remote=$node_cache/node_modules/mcp-remote/dist/proxy.js

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

# Six free loopback ports, all held while choosing so they differ.
read -r shared_port shared_admin shared_conn isolated_port isolated_admin isolated_conn < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
shared_url=http://localhost:$shared_port                # the static door's public URL
shared_connector=http://localhost:$shared_conn/mcp      # the connector URL: another origin, path /mcp
isolated_url=http://localhost:$isolated_port
isolated_connector=http://localhost:$isolated_conn/mcp

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
  STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$shared_admin" STUDIO_MCP_PUBLIC_URL="$shared_url"
  STUDIO_MCP_CONNECTOR_LISTEN="127.0.0.1:$shared_conn" STUDIO_MCP_CONNECTOR_URL="$shared_connector")
env "${shared_env[@]}" "$bin/shared-server" serve </dev/null >>"$work/shared-server.log" 2>&1 &
pids+=($!)
wait_healthy "$shared_port" "$!" "$work/shared-server.log" "the shared server"
wait_healthy "$shared_conn" "$!" "$work/shared-server.log" "the shared server's connector door"
admin() {
  env "${shared_env[@]}" "$bin/shared-server" --admin-url "http://127.0.0.1:$shared_admin" "$@" \
    2>>"$work/admin.log" && return
  die "shared-server $1 $2 failed (log: $work/admin.log)"
}
# An invite link: the CLI prints it alone on stdout; it must be on the connector origin.
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
shared_origin=${shared_connector%/mcp}
invite_alex=$(invite_link "$(admin person invite acme --name "Alex Rivera" --role member)" "$shared_origin")
invite_blake=$(invite_link "$(admin person invite globex --name "Blake Stone" --role member)" "$shared_origin")
invite_drew=$(invite_link "$(admin person invite acme --name "Drew Park" --role member)" "$shared_origin")
invite_emery=$(invite_link "$(admin person invite globex --name "Emery Hale" --role member)" "$shared_origin")
alex=$(admin person list acme | person_id "Alex Rivera")
blake=$(admin person list globex | person_id "Blake Stone")
drew=$(admin person list acme | person_id "Drew Park")
emery=$(admin person list globex | person_id "Emery Hale")

# 6. acme's isolated instance, its own data dir and public URL; one invited approver.
isolated_env=("${common_env[@]}" STUDIO_MCP_DATA_DIR="$work/isolated-acme" STUDIO_MCP_TENANT=acme
  STUDIO_MCP_LISTEN="127.0.0.1:$isolated_port" STUDIO_MCP_ADMIN_LISTEN="127.0.0.1:$isolated_admin"
  STUDIO_MCP_PUBLIC_URL="$isolated_url"
  STUDIO_MCP_CONNECTOR_LISTEN="127.0.0.1:$isolated_conn" STUDIO_MCP_CONNECTOR_URL="$isolated_connector")
env "${isolated_env[@]}" "$bin/isolated-server" serve </dev/null >>"$work/isolated-acme.log" 2>&1 &
pids+=($!)
wait_healthy "$isolated_port" "$!" "$work/isolated-acme.log" "the isolated instance"
wait_healthy "$isolated_conn" "$!" "$work/isolated-acme.log" "the isolated instance's connector door"
isolated() {
  env "${isolated_env[@]}" "$bin/isolated-server" --admin-url "http://127.0.0.1:$isolated_admin" "$@" \
    2>>"$work/admin.log" && return
  die "isolated-server $1 $2 failed (log: $work/admin.log)"
}
isolated tenant set --name "Acme Co (oauth e2e, isolated)" --webflow-site 64a0c0ffee00000000000a01 >/dev/null
invite_casey=$(invite_link "$(isolated person invite --name "Casey Moss" --role approver)" "${isolated_connector%/mcp}")
casey=$(isolated person list | person_id "Casey Moss")
say "servers up and people invited in $((SECONDS - start)) s"

# 7. The four runs (e2e.py bounds each step; `timeout` only guards against a hang). Each names
# its server's connector URL, its static door's MCP URL and the other server's connector URL.
e2e_status=0
e2e_start=$SECONDS
timeout --kill-after=10 300 "$py" "$here/e2e.py" check --certs "$work/certs" \
  --run a dcr "$shared_connector" "$shared_url/mcp" "$isolated_connector" acme "Alex Rivera" "$alex" "$invite_alex" \
  --run b cimd "$shared_connector" "$shared_url/mcp" "$isolated_connector" globex "Blake Stone" "$blake" "$invite_blake" \
  --run c dcr "$isolated_connector" "$isolated_url/mcp" "$shared_connector" acme "Casey Moss" "$casey" "$invite_casey" \
  --run d claude "$shared_connector" "$shared_url/mcp" "$isolated_connector" acme "Drew Park" "$drew" "$invite_drew" \
  </dev/null 2>&1 | tee "$work/e2e.out" || e2e_status=${PIPESTATUS[0]}
say "e2e.py: $( ((e2e_status == 0)) && echo passed || echo FAILED ) in $((SECONDS - e2e_start)) s"

# 8. (e) mcp-remote's OAuth flow, driven over stdio by the SDK (mcp_remote.py bounds each step).
remote_status=0
remote_start=$SECONDS
mkdir -p "$work/mcp-remote"
timeout --kill-after=10 300 "$py" "$here/mcp_remote.py" --mcp-remote "$mcp_remote" --node "$(command -v node)" \
  --work "$work/mcp-remote" --connector "$shared_connector" --static "$shared_url/mcp" --other "$isolated_connector" \
  --tenant globex --person "Emery Hale" "$emery" "$invite_emery" \
  </dev/null 2>&1 | tee "$work/mcp-remote.out" || remote_status=${PIPESTATUS[0]}
say "mcp_remote.py: $( ((remote_status == 0)) && echo passed || echo FAILED ) in $((SECONDS - remote_start)) s"

status=$((e2e_status || remote_status))
if ((status == 0)); then say "passed in $((SECONDS - start)) s"; fi
exit "$status"
