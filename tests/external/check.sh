#!/usr/bin/env bash
# External check: the official MCP Python SDK (a client nobody on the team wrote) against a fresh
# demo — sandbox upstreams, the shared server, tenants provisioned by the real admin CLI — on free
# ports, so it can run beside a developer's own demo. Exits non-zero if any client check fails.
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

# Two free loopback ports (both sockets held open while choosing, so they differ).
read -r mcp_port admin_port < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')

if ! DEMO_DETACH=1 DEMO_DIR=$demo_dir DEMO_LISTEN=127.0.0.1:$mcp_port \
  DEMO_ADMIN_LISTEN=127.0.0.1:$admin_port "$repo/deploy/demo.sh" >"$demo_dir/demo.out"; then
  echo "check: the demo did not start" >&2
  exit 1
fi

# 3. The client, once per tenant; each tries to read the other tenant's site.
# shellcheck source=/dev/null  # written by demo.sh: ACME_TOKEN, GLOBEX_TOKEN, MCP_URL
. "$demo_dir/tokens.env"
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

status=$client_status
if ((status == 0)); then echo "check: passed in $((SECONDS - start)) s"; fi
exit "$status"
