#!/usr/bin/env bash
# Writes the docker compose deployment of studio-mcp (the shared server, one isolated instance
# per tenant, Caddy in front) from the running shared server's tenants:
#
#   deploy/generate-compose.sh <out-dir> [--domain <studio domain>] [--image <image>] [--no-tenants]
#                              [--shared-replicas N --postgres [--postgres-image <image>]]
#                              [--with-prometheus [--prometheus-image <image>]]
#
# <out-dir> gets docker-compose.yml, caddy/Caddyfile and onboard.sh (rewritten every run) and secrets/
# (created once: a run never overwrites a file there). --no-tenants renders only the shared
# server and Caddy without asking the admin API: the first deployment. --shared-replicas N
# --postgres runs the shared server as shared-1 … shared-N on a `postgres` service, balanced by
# Caddy; --with-prometheus adds a `prometheus` service scraping every server (its configuration,
# the alert rules and a README in prometheus/). Pass the same options on every later run.
#
# Environment, as for the other admin subcommands: STUDIO_MCP_ADMIN_URL (default
# http://127.0.0.1:8788), STUDIO_MCP_ADMIN_TOKEN (default: $STUDIO_MCP_DATA_DIR/admin-token or,
# when neither is set, <out-dir>/secrets/shared/admin-token of a deployment with replicas, or
# the token inside its running `shared` container), STUDIO_MCP_DATA_DIR. SHARED_SERVER_BIN: the shared-server binary to run
# (default: the newer of target/release and target/debug, built in debug when neither has it).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "generate-compose: $*" >&2; exit 2; }
[[ $# -ge 1 && $1 != -* ]] \
  || die "usage: $0 <out-dir> [--domain <studio domain>] [--image <image>] [--no-tenants] [--shared-replicas N --postgres] [--with-prometheus]"
out=$1

bin=${SHARED_SERVER_BIN:-}
if [[ -z $bin ]]; then
  # The newer of the release and debug builds that knows `compose` (an old build may not).
  target=${CARGO_TARGET_DIR:-$repo/target}
  for candidate in "$target/release/shared-server" "$target/debug/shared-server"; do
    if [[ -x $candidate ]] && "$candidate" compose --help >/dev/null 2>&1 \
      && [[ -z $bin || $candidate -nt $bin ]]; then
      bin=$candidate
    fi
  done
  if [[ -z $bin ]]; then
    (cd "$repo" && cargo build -p shared-server --bin shared-server) >&2
    bin=$target/debug/shared-server
  fi
fi
[[ -x $bin ]] || die "$bin is not an executable shared-server binary (SHARED_SERVER_BIN?)"

no_tenants=0
for arg in "$@"; do [[ $arg == --no-tenants ]] && no_tenants=1; done
if [[ -z ${STUDIO_MCP_ADMIN_TOKEN:-} ]]; then
  if ((no_tenants)); then
    # The admin API is not called, but the admin client is built up front and wants a token.
    export STUDIO_MCP_ADMIN_TOKEN=unused
  elif [[ -z ${STUDIO_MCP_DATA_DIR:-} && -r $out/secrets/shared/admin-token ]]; then
    # Replicas: the admin token is a secret file every replica is given.
    STUDIO_MCP_ADMIN_TOKEN=$(<"$out/secrets/shared/admin-token")
    export STUDIO_MCP_ADMIN_TOKEN
  elif [[ -z ${STUDIO_MCP_DATA_DIR:-} && -f $out/docker-compose.yml ]] && command -v docker >/dev/null; then
    # The deployment's own shared server: its admin token is in its data volume (or, replicas,
    # in shared-1's secrets when this user cannot read the file).
    service=shared token_file=/data/admin-token
    if grep -q '^  shared-1:$' "$out/docker-compose.yml"; then
      service=shared-1 token_file=/run/secrets/shared-admin-token
    fi
    STUDIO_MCP_ADMIN_TOKEN=$(docker compose -f "$out/docker-compose.yml" exec -T "$service" cat "$token_file") \
      || die "cannot read the admin token from the running $service container; set STUDIO_MCP_ADMIN_TOKEN"
    export STUDIO_MCP_ADMIN_TOKEN
  fi
fi

exec "$bin" compose "$@"
