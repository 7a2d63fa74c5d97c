#!/usr/bin/env bash
# studio-mcp demo: builds the binaries, starts the sandbox upstreams, the shared server and an
# isolated instance for acme, provisions two demo tenants (acme read-write, globex read-only)
# with the real admin CLIs and prints ready-to-paste client configuration. Stays in the
# foreground until Ctrl-C.
#
#   deploy/demo.sh          run the demo (Ctrl-C stops everything)
#   deploy/demo.sh stop     stop a demo started with DEMO_DETACH=1
#
# Each server has two doors, each on its own origin: the static door (`http://localhost:<port>/mcp`,
# bearer tokens: Claude Code, Cursor, VS Code, scripts) and the connector door
# (`http://localhost:<port>/mcp` on another port, OAuth: claude.ai, Claude Desktop's Connectors,
# ChatGPT; the invite, sign-in, consent and approval pages at the root of that origin).
#
# Environment: DEMO_PROFILE=debug|release, DEMO_DIR (state, default <repo>/.demo, wiped each run),
# DEMO_LISTEN / DEMO_ADMIN_LISTEN / DEMO_CONNECTOR_LISTEN (shared server: static door, admin API,
# connector door; default 127.0.0.1:8787 / 127.0.0.1:8788 / 127.0.0.1:8789),
# DEMO_ISOLATED_LISTEN / DEMO_ISOLATED_ADMIN_LISTEN / DEMO_ISOLATED_CONNECTOR_LISTEN (acme's
# isolated instance; default 127.0.0.1:8790 / 127.0.0.1:8791 / 127.0.0.1:8792),
# DEMO_DETACH=1 (print, leave both processes running, write their pids to $DEMO_DIR/pids).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
DEMO_DIR=${DEMO_DIR:-$repo/.demo}
DEMO_PROFILE=${DEMO_PROFILE:-debug}
LISTEN=${DEMO_LISTEN:-127.0.0.1:8787}
ADMIN_LISTEN=${DEMO_ADMIN_LISTEN:-127.0.0.1:8788}
CONNECTOR_LISTEN=${DEMO_CONNECTOR_LISTEN:-127.0.0.1:8789}
ISOLATED_LISTEN=${DEMO_ISOLATED_LISTEN:-127.0.0.1:8790}
ISOLATED_ADMIN_LISTEN=${DEMO_ISOLATED_ADMIN_LISTEN:-127.0.0.1:8791}
ISOLATED_CONNECTOR_LISTEN=${DEMO_ISOLATED_CONNECTOR_LISTEN:-127.0.0.1:8792}

die() { echo "demo: $*" >&2; exit 1; }

# `demo.sh stop`: kill the processes a detached demo left behind (only if they are still ours).
if [[ ${1:-} == stop ]]; then
  [[ -f $DEMO_DIR/pids ]] || die "no $DEMO_DIR/pids: is a detached demo running (same DEMO_DIR)?"
  read -r -a pids <"$DEMO_DIR/pids"
  for pid in "${pids[@]}"; do
    comm=$(ps -p "$pid" -o comm= 2>/dev/null || true)
    [[ $comm == shared-server || $comm == isolated-server || $comm == sandbox ]] && kill "$pid"
  done
  for _ in $(seq 50); do   # up to 5 s for a graceful exit
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  rm -f "$DEMO_DIR/pids"
  echo "demo stopped" >&2
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [stop]"

# Fail early, with a useful message, if a listen address is already taken.
# (create_server sets SO_REUSEADDR, as the server does, so TIME_WAIT leftovers do not count.)
port_free() {
  python3 -c 'import socket, sys
h, p = sys.argv[1].rsplit(":", 1); h = h.strip("[]")
socket.create_server((h, int(p)), family=socket.AF_INET6 if ":" in h else socket.AF_INET).close()' "$1" 2>/dev/null
}
port_free "$LISTEN" || die "$LISTEN is in use (another demo?); pick another address with DEMO_LISTEN=127.0.0.1:<port>"
port_free "$ADMIN_LISTEN" || die "$ADMIN_LISTEN is in use; pick another address with DEMO_ADMIN_LISTEN=127.0.0.1:<port>"
port_free "$CONNECTOR_LISTEN" || die "$CONNECTOR_LISTEN is in use; pick another address with DEMO_CONNECTOR_LISTEN=127.0.0.1:<port>"
port_free "$ISOLATED_LISTEN" || die "$ISOLATED_LISTEN is in use; pick another address with DEMO_ISOLATED_LISTEN=127.0.0.1:<port>"
port_free "$ISOLATED_ADMIN_LISTEN" || die "$ISOLATED_ADMIN_LISTEN is in use; pick another address with DEMO_ISOLATED_ADMIN_LISTEN=127.0.0.1:<port>"
port_free "$ISOLATED_CONNECTOR_LISTEN" || die "$ISOLATED_CONNECTOR_LISTEN is in use; pick another address with DEMO_ISOLATED_CONNECTOR_LISTEN=127.0.0.1:<port>"

# Build (debug by default: quick). Cargo's progress goes to stderr.
case $DEMO_PROFILE in
  debug) cargo build -p shared-server -p isolated-server -p tests --bins ;;
  release) cargo build --release -p shared-server -p isolated-server -p tests --bins ;;
  *) die "DEMO_PROFILE must be debug or release" ;;
esac
bin=${CARGO_TARGET_DIR:-$repo/target}/$DEMO_PROFILE

# Everything from here on (tokens, keys, logs) is private to the user.
umask 077
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"

# Children are killed on any exit, unless a detached demo finished starting (keep=1).
keep=0
child_pids=()
# shellcheck disable=SC2317  # only reached through the EXIT trap
cleanup() {
  ((keep)) && return
  ((${#child_pids[@]})) || return 0
  kill "${child_pids[@]}" 2>/dev/null || true
  wait "${child_pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Sandbox upstreams: one JSON line {"base_url", "fixture"} on stdout once listening.
"$bin/sandbox" --listen 127.0.0.1:0 --owners acme,globex \
  </dev/null >"$DEMO_DIR/sandbox.json" 2>"$DEMO_DIR/sandbox.log" &
child_pids+=($!)
# The line can reach the file in several writes: it is complete once the file ends in a newline.
sandbox_ready() { [[ -s $DEMO_DIR/sandbox.json && -z $(tail -c 1 "$DEMO_DIR/sandbox.json") ]]; }
for _ in $(seq 100); do   # up to 10 s
  sandbox_ready && break
  kill -0 "${child_pids[0]}" 2>/dev/null || { tail -n 20 "$DEMO_DIR/sandbox.log" >&2; die "the sandbox exited"; }
  sleep 0.1
done
sandbox_ready || die "the sandbox did not report ready in 10 s (see $DEMO_DIR/sandbox.log)"
fixture() { python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).readline()); $1" "$DEMO_DIR/sandbox.json"; }
base_url=$(fixture 'print(d["base_url"])')
# One line per owner: owner, site id, first collection id, Plausible site, first repository,
# and the owner's Webflow, Plausible and GitHub (sandbox) credentials.
owners=$(fixture 'print("\n".join(" ".join([o["owner"], o["site_id"], o["collection_ids"][0], o["plausible_site"], o["github_repos"][0], o["token"], o["plausible_token"], o["github_token"]]) for o in d["fixture"]["owners"]))')
# acme's isolated instance: zone, zone name, custom domains, Stripe customer and credentials.
read -r zone_id zone_name domain1 domain2 stripe_customer cloudflare_token stripe_key blog_collection webflow_app_token < <(fixture '
o = next(o for o in d["fixture"]["owners"] if o["owner"] == "acme")
print(o["zone_id"], o["zone_name"], *o["custom_domain_ids"][:2], o["stripe_customer"], o["cloudflare_token"], o["stripe_key"], o["collection_ids"][0], o["webflow_app_token"])')

# 2. The shared server, every upstream pointed at the sandbox.
export STUDIO_MCP_DATA_DIR=$DEMO_DIR/shared
export STUDIO_MCP_LISTEN=$LISTEN
export STUDIO_MCP_ADMIN_LISTEN=$ADMIN_LISTEN
export STUDIO_MCP_PUBLIC_URL=http://localhost:${LISTEN##*:}
# The connector door. `localhost`, not the IP: passkeys (invite links, connector sign-in) need a
# host name. Its URL's path is exactly /mcp (claude.ai refuses any other).
connector_url=http://localhost:${CONNECTOR_LISTEN##*:}/mcp
export STUDIO_MCP_CONNECTOR_LISTEN=$CONNECTOR_LISTEN STUDIO_MCP_CONNECTOR_URL=$connector_url
for upstream in WEBFLOW PLAUSIBLE GITHUB CLOUDFLARE STRIPE; do
  export "STUDIO_MCP_${upstream}_BASE_URL=$base_url"
done
mcp_url=$STUDIO_MCP_PUBLIC_URL/mcp
"$bin/shared-server" serve </dev/null >>"$DEMO_DIR/shared-server.log" 2>&1 &
child_pids+=($!)
for i in $(seq 150); do   # up to 15 s
  curl -fsS -o /dev/null "http://$LISTEN/healthz" 2>/dev/null \
    && curl -fsS -o /dev/null "http://$CONNECTOR_LISTEN/healthz" 2>/dev/null && break
  if ! kill -0 "${child_pids[1]}" 2>/dev/null || ((i == 150)); then
    tail -n 20 "$DEMO_DIR/shared-server.log" >&2
    die "the shared server did not become healthy (log: $DEMO_DIR/shared-server.log)"
  fi
  sleep 0.1
done

# 3. Provision the demo tenants through the real admin CLI (it reads <data dir>/admin-token).
# Their chatter on stderr goes to admin.log; on failure its tail is shown.
admin() {
  "$bin/shared-server" "$@" 2>>"$DEMO_DIR/admin.log" && return
  tail -n 5 "$DEMO_DIR/admin.log" >&2
  die "shared-server $1 $2 failed (log: $DEMO_DIR/admin.log)"
}
declare -A token invite
while read -r owner site collection plausible_site github_repo webflow_token plausible_token github_token; do
  flags=()
  [[ $owner == globex ]] && flags+=(--read-only)
  admin tenant add "$owner" --name "${owner^} Co (demo)" --webflow-site "$site" \
    --writable-collection "$collection" --plausible-site "$plausible_site" --github-repo "$github_repo" \
    "${flags[@]}" >/dev/null
  printf %s "$webflow_token" | admin secret set "$owner" webflow
  printf %s "$plausible_token" | admin secret set "$owner" plausible
  printf %s "$github_token" | admin secret set "$owner" github
  token[$owner]=$(admin token issue "$owner" --label demo)
  invite[$owner]=$(admin person invite "$owner" --name "${owner^} demo person" --role approver)
  [[ $owner == acme ]] && acme_site=$site && acme_webflow_token=$webflow_token
done <<<"$owners"

# 4. acme's isolated instance (publish, DNS, billing): its own data dir, keys and tokens.
isolated_public=http://localhost:${ISOLATED_LISTEN##*:}
isolated_url=$isolated_public/mcp
isolated_connector_url=http://localhost:${ISOLATED_CONNECTOR_LISTEN##*:}/mcp
(
  export STUDIO_MCP_DATA_DIR=$DEMO_DIR/isolated-acme STUDIO_MCP_TENANT=acme
  export STUDIO_MCP_LISTEN=$ISOLATED_LISTEN STUDIO_MCP_ADMIN_LISTEN=$ISOLATED_ADMIN_LISTEN
  export STUDIO_MCP_PUBLIC_URL=$isolated_public
  export STUDIO_MCP_CONNECTOR_LISTEN=$ISOLATED_CONNECTOR_LISTEN STUDIO_MCP_CONNECTOR_URL=$isolated_connector_url
  exec "$bin/isolated-server" serve </dev/null >>"$DEMO_DIR/isolated-acme.log" 2>&1
) &
child_pids+=($!)
for i in $(seq 150); do   # up to 15 s
  curl -fsS -o /dev/null "http://$ISOLATED_LISTEN/healthz" 2>/dev/null \
    && curl -fsS -o /dev/null "http://$ISOLATED_CONNECTOR_LISTEN/healthz" 2>/dev/null && break
  if ! kill -0 "${child_pids[2]}" 2>/dev/null || ((i == 150)); then
    tail -n 20 "$DEMO_DIR/isolated-acme.log" >&2
    die "the isolated instance did not become healthy (log: $DEMO_DIR/isolated-acme.log)"
  fi
  sleep 0.1
done
isolated() {
  STUDIO_MCP_DATA_DIR=$DEMO_DIR/isolated-acme STUDIO_MCP_TENANT=acme STUDIO_MCP_ADMIN_LISTEN=$ISOLATED_ADMIN_LISTEN \
    STUDIO_MCP_PUBLIC_URL=$isolated_public STUDIO_MCP_CONNECTOR_LISTEN=$ISOLATED_CONNECTOR_LISTEN \
    STUDIO_MCP_CONNECTOR_URL=$isolated_connector_url "$bin/isolated-server" "$@" 2>>"$DEMO_DIR/admin.log" && return
  tail -n 5 "$DEMO_DIR/admin.log" >&2
  die "isolated-server $1 $2 failed (log: $DEMO_DIR/admin.log)"
}
isolated tenant set --name "Acme Co (demo)" --webflow-site "$acme_site" \
  --custom-domain "$domain1" --custom-domain "$domain2" --dns-zone "$zone_id" \
  --dns-name "www.$zone_name" --dns-name "shop.$zone_name" --dns-name "*.shop.$zone_name" \
  --stripe-customer "$stripe_customer" --deletable-collection "$blog_collection" >/dev/null
printf %s "$acme_webflow_token" | isolated secret set acme webflow
printf %s "$webflow_app_token" | isolated secret set acme webflow-app
printf %s "$cloudflare_token" | isolated secret set acme cloudflare
printf %s "$stripe_key" | isolated secret set acme stripe
isolated_token=$(isolated token issue acme --label demo)
isolated_invite=$(isolated person invite acme --name "Acme demo person" --role approver)

# Tokens and URLs for scripts (mode 600): ACME_TOKEN=…, GLOBEX_TOKEN=…, MCP_URL=…, CONNECTOR_URL=….
(
  for owner in "${!token[@]}"; do echo "${owner^^}_TOKEN=${token[$owner]}"; done | sort
  echo "MCP_URL=$mcp_url"
  echo "ACME_ISOLATED_TOKEN=$isolated_token"
  echo "ACME_ISOLATED_URL=$isolated_url"
  for owner in "${!invite[@]}"; do echo "${owner^^}_INVITE=${invite[$owner]}"; done | sort
  echo "CONNECTOR_URL=$connector_url"
  echo "ACME_ISOLATED_INVITE=$isolated_invite"
  echo "ACME_ISOLATED_CONNECTOR_URL=$isolated_connector_url"
) >"$DEMO_DIR/tokens.env"
# The same as a project .mcp.json for Claude Code (also kept in the demo dir).
python3 - "studio-acme=$mcp_url=${token[acme]}" "studio-globex=$mcp_url=${token[globex]}" \
  "studio-acme-isolated=$isolated_url=$isolated_token" >"$DEMO_DIR/mcp.json" <<'PY'
import json, sys
entries = [a.split("=", 2) for a in sys.argv[1:]]
servers = {n: {"type": "http", "url": u, "headers": {"Authorization": f"Bearer {t}"}} for n, u, t in entries}
print(json.dumps({"mcpServers": servers}, indent=2))
PY

# 5. The summary (stdout).
cat <<EOF

studio-mcp demo is running. Each server has two doors, each on its own origin:
  static door    : $mcp_url   (shared; bearer tokens: Claude Code, Cursor, VS Code, scripts)
  connector door : $connector_url   (shared; OAuth: claude.ai, Claude Desktop's Connectors, ChatGPT)
  isolated       : $isolated_url, connector $isolated_connector_url
                   (acme only: publish, DNS, billing, each approved by a person)
  tenants        : acme (read-write), globex (read-only); each token sees only its own data
  upstreams      : the sandbox at $base_url

EOF
for owner in acme globex; do
  cat <<EOF
== $owner
  token:          ${token[$owner]}
  Claude Code:    claude mcp add --transport http studio-$owner $mcp_url --header "Authorization: Bearer ${token[$owner]}"
  Claude Desktop: npx mcp-remote $mcp_url --header "Authorization:Bearer ${token[$owner]}"
  connector URL:  $connector_url   (OAuth: Claude and ChatGPT connectors, Claude Code)
  invite link:    ${invite[$owner]}
                  Send the client: "In Claude: Settings → Connectors → Add custom connector, paste
                  this URL, then open your invite link." To try it here with Claude Code, open the
                  invite link in your browser (it creates a passkey), then:
                  claude mcp add --transport http studio-$owner-oauth $connector_url

EOF
done
cat <<EOF
== acme, isolated instance
  token:          $isolated_token
  Claude Code:    claude mcp add --transport http studio-acme-isolated $isolated_url --header "Authorization: Bearer $isolated_token"
  connector URL:  $isolated_connector_url   (approval links: ${isolated_connector_url%/mcp}/approve/<id>)
  invite link:    $isolated_invite

== check a connector the way claude.ai and ChatGPT will (one line per step, with the fix)
  $bin/shared-server doctor $connector_url --static-url $mcp_url
  $bin/isolated-server doctor $isolated_connector_url --static-url $isolated_url
  Here every step but one says ok: claude.ai and ChatGPT need https on port 443 (a deployment's
  connector URL, e.g. https://connect.<domain>/mcp), so the verdict is "fine for Claude Code and
  mcp-remote here".

== on one host name
  Both servers are on localhost, and browsers ignore ports for cookies and passkeys: each
  server's session cookie reaches the other (each has its own name, so neither reads the other's),
  and your browser offers both servers' passkeys (named "<person> — <tenant>, studio-mcp shared"
  or "… isolated"). Fine for this local demo only; a deployment gives every connector door a host
  of its own (compose: connect.<domain>, <tenant>.connect.<domain>).

== .mcp.json (project-scoped; also in $DEMO_DIR/mcp.json)
$(cat "$DEMO_DIR/mcp.json")

== try it
  curl -s $mcp_url -H "Authorization: Bearer ${token[acme]}" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'

== files
  logs:   $DEMO_DIR/shared-server.log, $DEMO_DIR/isolated-acme.log, $DEMO_DIR/sandbox.log, $DEMO_DIR/admin.log
  tokens: $DEMO_DIR/tokens.env (for scripts: tokens, MCP_URL, CONNECTOR_URL, invites), admin token in $STUDIO_MCP_DATA_DIR/admin-token
  admin:  STUDIO_MCP_DATA_DIR=$STUDIO_MCP_DATA_DIR STUDIO_MCP_ADMIN_LISTEN=$ADMIN_LISTEN $bin/shared-server tenant list
EOF

if [[ ${DEMO_DETACH:-0} == 1 ]]; then
  echo "${child_pids[*]}" >"$DEMO_DIR/pids"
  keep=1
  echo "  stop:   DEMO_DIR=$DEMO_DIR $repo/deploy/demo.sh stop"
  exit 0
fi
echo
echo "Press Ctrl-C to stop."
# Returns when either child exits (then the EXIT trap stops the other) or on Ctrl-C / SIGTERM.
wait -n "${child_pids[@]}" || true
die "a demo process exited; see the logs in $DEMO_DIR"
