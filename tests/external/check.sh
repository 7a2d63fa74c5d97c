#!/usr/bin/env bash
# External check: the official MCP Python SDK (a client nobody on the team wrote) against a fresh
# demo — sandbox upstreams, the shared server, tenants provisioned by the real admin CLI — on free
# ports, so it can run beside a developer's own demo. First checks the demo's layout (each server's
# connector door on an origin of its own at exactly /mcp, invite links there, no OAuth document on
# the static door, its /connector 410 naming the connector URL). Exits non-zero if any check fails.
#
#   tests/external/check.sh
#
# EXTERNAL_VENV      venv holding the SDK (default <repo>/.demo-venv), created on first use
# EXTERNAL_MCP_SPEC  pip requirement for the SDK (default: the version last verified, below);
#                    EXTERNAL_MCP_SPEC=mcp tries the newest release
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
venv=${EXTERNAL_VENV:-$repo/.demo-venv}
spec=${EXTERNAL_MCP_SPEC:-mcp==2.3.0}
start=$SECONDS

# 1. The SDK in its own venv; reinstalled only when the requirement changes.
if [[ ! -x $venv/bin/python || $(cat "$venv/.requirement" 2>/dev/null) != "$spec" ]]; then
  echo "check: installing $spec into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec"
  echo "$spec" >"$venv/.requirement"
fi

# 2. A detached demo in a scratch dir, stopped on any exit; its files are kept if a check fails.
demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/studio-mcp-external.XXXXXX")
status=1
# shellcheck disable=SC2317  # only reached through the EXIT trap
finish() {
  [[ -f $demo_dir/pids ]] && DEMO_DIR=$demo_dir "$repo/deploy/demo.sh" stop 2>/dev/null
  if ((status == 0)); then
    rm -rf "$demo_dir"
  else
    echo "check: FAILED; demo output and logs kept in $demo_dir" >&2
  fi
}
trap finish EXIT

# Six free loopback ports, for both servers' static door, admin API and connector door (all
# sockets held open while choosing, so they differ).
read -r mcp_port admin_port connector_port isolated_port isolated_admin isolated_connector < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

if ! DEMO_DETACH=1 DEMO_DIR=$demo_dir DEMO_LISTEN=127.0.0.1:$mcp_port DEMO_ADMIN_LISTEN=127.0.0.1:$admin_port \
  DEMO_CONNECTOR_LISTEN=127.0.0.1:$connector_port DEMO_ISOLATED_LISTEN=127.0.0.1:$isolated_port \
  DEMO_ISOLATED_ADMIN_LISTEN=127.0.0.1:$isolated_admin DEMO_ISOLATED_CONNECTOR_LISTEN=127.0.0.1:$isolated_connector \
  "$repo/deploy/demo.sh" >"$demo_dir/demo.out"; then
  echo "check: the demo did not start" >&2
  exit 1
fi

# 3. The layout, then the client.
# shellcheck source=/dev/null  # written by demo.sh: ACME_TOKEN, GLOBEX_TOKEN, MCP_URL, CONNECTOR_URL, …
. "$demo_dir/tokens.env"

# The demo's layout: two doors per server, each on its own origin. The static door never
# mentions OAuth; the connector door is at exactly /mcp, its invites and pages at its root.
layout_status=0
ok() { echo "  ok   $1"; }
fail() { echo "  FAIL $1" >&2; layout_status=1; }
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null || true; }
echo "== layout"
for names in "MCP_URL CONNECTOR_URL ACME_INVITE" "ACME_ISOLATED_URL ACME_ISOLATED_CONNECTOR_URL ACME_ISOLATED_INVITE"; do
  read -r static_var connector_var invite_var <<<"$names"
  static=${!static_var} connector=${!connector_var} invite=${!invite_var}
  static_origin=${static%/mcp} connector_origin=${connector%/mcp}
  if [[ $connector == http://localhost:*/mcp && $connector_origin != "$static_origin" ]]; then
    ok "$connector_var=$connector: an origin of its own, path /mcp"
  else
    fail "$connector_var=$connector is not <an origin other than $static_origin>/mcp"
  fi
  if [[ $invite == "$connector_origin"/* ]]; then
    ok "$invite_var is on the connector origin"
  else
    fail "$invite_var=$invite is not under $connector_origin"
  fi
  prm=$(curl -sS --max-time 5 "$connector_origin/.well-known/oauth-protected-resource/mcp" || true)
  if [[ $(json_field "$prm" resource) == "$connector" ]]; then
    ok "$connector_origin/.well-known/oauth-protected-resource/mcp names resource $connector"
  else
    fail "$connector_origin/.well-known/oauth-protected-resource/mcp: $prm"
  fi
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$static_origin/.well-known/oauth-protected-resource/mcp" || true)
  if [[ $code == 404 ]]; then
    ok "the static door has no protected resource metadata ($static_origin/.well-known/oauth-protected-resource/mcp: 404)"
  else
    fail "$static_origin/.well-known/oauth-protected-resource/mcp answered $code"
  fi
  gone=$(curl -sS -w ' %{http_code}' --max-time 5 "$static_origin/connector" || true)
  if [[ $gone == *"$connector"*" 410" ]]; then
    ok "$static_origin/connector: 410 naming $connector"
  else
    fail "$static_origin/connector answered: $gone"
  fi
done

# The client, once per tenant; each tries to read the other tenant's site.
site_of() {
  python3 -c 'import json,sys
d = json.loads(open(sys.argv[1]).readline())
print(next(o["site_id"] for o in d["fixture"]["owners"] if o["owner"] == sys.argv[2]))' \
    "$demo_dir/sandbox.json" "$1"
}
client_status=0
for pair in acme:globex globex:acme; do
  tenant=${pair%%:*} other=${pair##*:}
  token_var=${tenant^^}_TOKEN
  echo "== $tenant"
  "$venv/bin/python" "$repo/tests/external/python_client.py" --url "$MCP_URL" \
    --token "${!token_var}" --tenant "$tenant" --foreign-site "$(site_of "$other")" || client_status=$?
done

status=$((client_status || layout_status))
if ((status == 0)); then echo "check: passed in $((SECONDS - start)) s"; fi
exit "$status"
