# shellcheck shell=bash disable=SC2154,SC2034  # run.sh defines what is used here and reads what is set
# The shared server alone on its embedded store, with isolated instances: sourced by run.sh,
# which defines the helpers (dc, admin, generate, calls, …).
out=$work/sled
shared_services=(shared)

step "sled: generating the first deployment (--no-tenants --with-prometheus) and bringing it up"
generate --no-tenants --with-prometheus
write_override
up
wait_healthy
read_fixture

step "two tenants, provisioned with the documented commands; regenerated; up -d"
add_shared_tenant acme
add_shared_tenant globex
generate --with-prometheus
write_override isolated-acme isolated-globex
up
wait_healthy
onboard_isolated acme
onboard_isolated globex
fetch_root_cert
step "calling every tenant through Caddy with the official MCP Python SDK"
calls acme globex
step "connectors: the shared server's at connect.localhost, acme's instance's at acme.connect.localhost"
connector_flows shared:acme isolated:acme

# A third tenant: only its own services are created, and Prometheus recreated (its new job and
# the new instance's volume).
step "a third tenant: add, regenerate, up -d"
before=$(container_ids)
caddy_started=$("$docker" inspect -f '{{.State.StartedAt}}' "$project-caddy-1")
add_shared_tenant initech
generate --with-prometheus
write_override isolated-acme isolated-globex isolated-initech
up
wait_healthy
after=$(container_ids)
new=$(comm -13 <(echo "$before") <(echo "$after"))
gone=$(comm -23 <(echo "$before") <(echo "$after"))
[[ $(echo "$gone" | awk '{print $1}') == "$project-prometheus-1" ]] \
  || die "containers other than Prometheus were replaced by adding a tenant: $gone"
[[ $(echo "$new" | awk '{print $1}' | tr '\n' ' ') == "$project-isolated-initech-1 $project-prometheus-1 " ]] \
  || die "unexpected new containers: $new"
[[ $("$docker" inspect -f '{{.State.StartedAt}}' "$project-caddy-1") == "$caddy_started" ]] \
  || die "Caddy was restarted"
step "  only isolated-initech was created and Prometheus recreated; every other container kept its id; Caddy was not restarted"
onboard_isolated initech
calls initech acme
connector_flows isolated:initech
step "Prometheus: every server's /metrics scraped with its admin token, the alert rules loaded"
prometheus_check shared isolated-acme isolated-globex isolated-initech

# Crash and restart, down and up.
step "killing the shared server's process: the restart policy brings it back"
restarts=$("$docker" inspect -f '{{.RestartCount}}' "$project-shared-1")
pid=$("$docker" inspect -f '{{.State.Pid}}' "$project-shared-1")
kill -9 "$pid"
deadline=$((SECONDS + 60))
until [[ $("$docker" inspect -f '{{.RestartCount}}' "$project-shared-1") -gt $restarts \
  && $("$docker" inspect -f '{{.State.Running}}' "$project-shared-1") == true ]]; do
  ((SECONDS < deadline)) || die "the shared container was not restarted"
  sleep 0.5
done
calls acme globex initech
step "docker compose down, then up: every volume's data is kept"
dc down 2>>"$work/up.log"
up
wait_healthy
calls acme globex initech

# No secret anywhere it should not be.
step "searching docker inspect, the logs, the image and the generated folder for secrets"
secrets=("${shared_token[@]}" "${isolated_token[@]}")
for t in "${owners[@]}"; do
  for field in token plausible_token github_token cloudflare_token stripe_key; do
    secrets+=("$(owner "$t" "$field")")
  done
done
for key in "$out"/secrets/*/master.key; do secrets+=("$(cat "$key")"); done
# Each server's admin token, in its data volume: Prometheus reads them, nothing may show them.
for service in shared isolated-acme isolated-globex isolated-initech; do
  secrets+=("$(dc exec -T "$service" cat /data/admin-token)")
done
mapfile -t -O "${#secrets[@]}" secrets <"$work/connector-secrets"  # invites, sessions, codes, OAuth tokens
search_image=1 search_for_secrets "${secrets[@]}"

size=$("$docker" image inspect -f '{{.Size}}' studio-mcp:latest)
step "image studio-mcp:latest: $((size / 1000000)) MB"
figures
