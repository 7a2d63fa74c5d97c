# shellcheck shell=bash disable=SC2154,SC2034  # run.sh defines what is used here and reads what is set
# The shared server as two replicas on PostgreSQL behind Caddy: sourced by run.sh, which defines
# the helpers (dc, admin, generate, client, …). Tenants are the shared server's only (no
# isolated instances: those do not change with replicas), onboarded through shared-1.
out=$work/postgres
shared_services=(shared-1 shared-2)
shared_token=() isolated_token=()

step "postgres: generating --shared-replicas 2 --postgres (--no-tenants) and bringing it up"
generate --no-tenants --shared-replicas 2 --postgres
write_override
up
wait_healthy
read_fixture
fetch_root_cert
# Each replica's own view: /healthz on its MCP port, from inside its container (not published).
healthz() {
  dc exec -T "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8787 && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && tail -n 1 <&3'
}
for replica in "${shared_services[@]}"; do
  health=$(healthz "$replica")
  [[ $health == "ok: replica $replica, PostgreSQL postgres:5432/studio_mcp" ]] \
    || die "$replica's /healthz: $health"
done
step "  both replicas answer /healthz: $(healthz shared-2)"

# A replica's metrics (admin API, published on the host's loopback), with the one admin token
# every replica was given.
admin_token=$(<"$out/secrets/shared/admin-token")
replica_admin_port() { if [[ $1 == shared-1 ]]; then echo 8788; else echo $((18800 + ${1#shared-})); fi; }
metric_sum() {  # metric_sum <replica> <metric name prefix>: the sum of its series
  curl -sf -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$(replica_admin_port "$1")/metrics" \
    | awk -v m="$2" 'index($0, m) == 1 { n += $NF } END { print n + 0 }'
}

step "two tenants onboarded through shared-1's admin API; calls through Caddy"
add_shared_tenant acme
add_shared_tenant globex
rounds=()
for _ in 1 2 3; do
  for t in acme globex; do rounds+=("https://mcp.localhost/mcp,${shared_token[$t]},$t,webflow_list_sites"); done
done
client "${rounds[@]}"
served=()
for replica in "${shared_services[@]}"; do
  n=$(metric_sum "$replica" 'studio_mcp_tool_calls_total{tenant="')
  ((n > 0)) || die "$replica served no tool call of ${#rounds[@]} sessions through Caddy"
  served+=("$replica: $n")
done
step "  $(grep -c '^PASS' "$work/client.log") checks passed; tool calls per replica: ${served[*]}"
step "connectors at connect.localhost, balanced across both replicas (every step in the shared store)"
rm -f "$work/connector-secrets"
calls_before=()
for replica in "${shared_services[@]}"; do calls_before+=("$(metric_sum "$replica" 'studio_mcp_tool_calls_total{tenant="')"); done
connector_flows shared:acme shared:globex
for i in "${!shared_services[@]}"; do
  n=$(metric_sum "${shared_services[$i]}" 'studio_mcp_tool_calls_total{tenant="')
  ((n > calls_before[i])) || die "${shared_services[$i]} served none of the connector flows' tool calls"
  served[i]="${shared_services[$i]}: $((n - calls_before[i]))"
done
step "  whoami calls with OAuth access tokens per replica: ${served[*]}"

step "regenerating: the same options keep every file under secrets/; without --postgres, refused"
secret_sums() { (cd "$1" && find secrets -type f -exec sha256sum {} + | sort); }
sums=$(secret_sums "$out")
# A copy, with the tenants (listed by shared-1's admin API, its token read from the copy's
# secrets/shared/admin-token): isolated instances beside the replicas, secrets kept.
cp -a "$out" "$work/regenerated"
regenerate_copy() { local out=$work/regenerated; generate --shared-replicas 2 --postgres; }
regenerate_copy
for service in shared-1 shared-2 postgres isolated-acme isolated-globex; do
  grep -q "^  $service:$" "$work/regenerated/docker-compose.yml" || die "regenerated without $service"
done
[[ $(secret_sums "$work/regenerated" | grep -v -e /acme/ -e /globex/) == "$sums" ]] \
  || die "regenerating changed a file under secrets/"
if SHARED_SERVER_BIN=$repo/target/dist/shared-server deploy/generate-compose.sh "$out" --no-tenants \
  >/dev/null 2>"$work/refused.log"; then
  die "a folder rendered for PostgreSQL was regenerated without --postgres"
fi
grep -q -- "--postgres" "$work/refused.log" || die "unclear refusal: $(cat "$work/refused.log")"
[[ $(secret_sums "$out") == "$sums" ]] || die "the refused run changed a file under secrets/"
step "  a copy regenerated with its tenants (isolated-acme, isolated-globex beside the replicas) kept its secrets; without --postgres: refused, nothing changed"

step "revoking acme's token through shared-1: refused on its next requests, whichever replica answers"
token_id=$(admin token list acme | awk '/compose-test/ { print $1; exit }')
[[ -n $token_id ]] || die "no token id for acme: $(admin token list acme)"
admin token revoke "$token_id" >/dev/null 2>>"$work/admin.log"
refused=()
for _ in 1 2 3 4; do refused+=("https://mcp.localhost/mcp,${shared_token[acme]},acme,REFUSED"); done
client "${refused[@]}" "https://mcp.localhost/mcp,${shared_token[globex]},globex,webflow_list_sites"
counts=()
for replica in "${shared_services[@]}"; do
  n=$(metric_sum "$replica" 'studio_mcp_token_refusals_total{reason="revoked"}')
  ((n > 0)) || die "$replica refused no revoked token (4 requests through Caddy)"
  counts+=("$replica: $n")
done
step "  $(grep -c '^PASS' "$work/client.log") checks passed; revoked-token refusals per replica: ${counts[*]}"

step "stopping shared-2: once Caddy's active health check finds it gone, calls keep working"
# Caddy retries a request whose replica cannot be dialled on another one (lb_try_duration), but
# Debian's Caddy 2.6 loses a POST body on that retry (caddyserver/caddy#7546, fixed upstream by
# #7547), so this waits for the health check (every 3 s) to take shared-2 out before calling.
since=$(date +%s)
dc stop shared-2 2>>"$work/up.log"
deadline=$((SECONDS + 30))
until "$docker" logs --since "$since" "$project-caddy-1" 2>&1 | grep 'health_checker' | grep -q '"shared-2:8787"'; do
  ((SECONDS < deadline)) || die "Caddy's health check did not notice shared-2 stopping within 30 s"
  sleep 0.5
done
before=$(metric_sum shared-1 'studio_mcp_tool_calls_total{tenant="')
again=()
for _ in 1 2 3 4; do again+=("https://mcp.localhost/mcp,${shared_token[globex]},globex,webflow_list_sites"); done
client "${again[@]}"
after=$(metric_sum shared-1 'studio_mcp_tool_calls_total{tenant="')
((after >= before + 8)) || die "shared-1 served $((after - before)) tool calls of 8"
step "  $(grep -c '^PASS' "$work/client.log") checks passed, every call served by shared-1"

step "searching docker inspect, the logs and the generated folder for secrets"
secrets=("${shared_token[@]}")
for t in acme globex; do
  for field in token plausible_token github_token; do secrets+=("$(owner "$t" "$field")"); done
done
for file in shared/master.key shared/signing.key shared/admin-token postgres-password; do
  secrets+=("$(<"$out/secrets/$file")")
done
mapfile -t -O "${#secrets[@]}" secrets <"$work/connector-secrets"  # invites, sessions, codes, OAuth tokens
search_for_secrets "${secrets[@]}"
figures
