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
step "tools/list in bursts through Caddy, on the shared server and on isolated instances"
burst 80 "https://mcp.localhost/mcp,${shared_token[acme]}" "https://mcp.localhost/mcp,${shared_token[globex]}" \
  "https://acme.mcp.localhost/mcp,${isolated_token[acme]}" "https://globex.mcp.localhost/mcp,${isolated_token[globex]}"
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
step "Prometheus: every server's /metrics scraped with its metrics token, the alert rules loaded"
prometheus_check shared isolated-acme isolated-globex isolated-initech
step "Prometheus mounts only the metrics-token volumes, and a metrics token opens nothing else"
for mount in $("$docker" inspect -f '{{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}' "$project-prometheus-1"); do
  case $mount in
    /etc/prometheus:false | /prometheus:true | /metrics-tokens/*:false) ;;
    *) die "Prometheus mounts $mount (only its own folders and the metrics-token volumes, read-only)" ;;
  esac
done
metrics_token=$(dc exec -T shared cat /metrics-token/token)
[[ $metrics_token == mtr_* ]] || die "the shared server's metrics token is not in its metrics-token volume"
python3 - "$metrics_token" <<'EOF' || die "the metrics token: wrong answers from the shared admin API"
import sys, urllib.error, urllib.request
def status(path):
    request = urllib.request.Request("http://127.0.0.1:8788" + path, headers={"authorization": "Bearer " + sys.argv[1]})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
got = {path: status(path) for path in ["/metrics", "/v1/tenants", "/v1/approvals", "/v1/server"]}
sys.exit(0 if got == {"/metrics": 200, "/v1/tenants": 401, "/v1/approvals": 401, "/v1/server": 401} else str(got))
EOF

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

# Backups exactly as deploy/README documents them: its nightly cron line (run by hand, with the
# generated folder for /srv/studio-mcp and a folder in it for /var/backups/studio-mcp, so that
# the secret search below reads the backups too), then its restore drills inside the containers.
step "backups: deploy/README's nightly line, then its restore drills in the containers"
mkdir -p "$out/backups"
cron=$(sed -n '\|^# /etc/cron.d/studio-mcp|,/^```/p' "$repo/deploy/README.md" | sed '1d;$d' \
  | sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}')
line=${cron#* root }
line=${line//\/srv\/studio-mcp/$out}
line=${line//\/var\/backups\/studio-mcp/$out/backups}
[[ $line == *"store backup"* ]] || die "no backup line in deploy/README.md: $cron"
# shellcheck disable=SC2317  # docker(), for the `docker` the eval'd lines call, is reached
(docker() { "$docker" "$@"; }; eval "$line") >"$work/backups.log" 2>&1 \
  || die "the nightly backup line: $(tail -n 3 "$work/backups.log")"
for s in shared isolated-acme isolated-globex; do
  file=$out/backups/$s-$(date +%F).backup
  [[ $(head -n 1 "$file" 2>/dev/null) == "studio-mcp backup" ]] \
    || die "no backup of $s from the nightly line: $(tail -n 3 "$work/backups.log")"
  ! dc exec -T "$s" test -e "/data/$s-$(date +%F).backup" || die "the copy in $s's volume was left"
done
step "  $(find "$out/backups" -name '*.backup' | wc -l) backups, $(du -sk "$out/backups" | cut -f1) KB"
mapfile -t drills < <(grep '^docker compose exec -T .* drill restore' "$repo/deploy/README.md")
((${#drills[@]} == 2)) || die "deploy/README.md shows ${#drills[@]} drill commands, not 2"
for drill in "${drills[@]}"; do
  # shellcheck disable=SC2317
  (docker() { "$docker" "$@"; }; cd "$out" && eval "$drill") >"$work/drill.log" 2>&1 \
    || die "$drill: $(tail -n 5 "$work/drill.log")"
  passed=$(grep 'restore drill passed' "$work/drill.log") || die "$drill: $(tail -n 5 "$work/drill.log")"
  step "  ${drill#docker compose exec -T }: ${passed##*, }"
done

# No secret anywhere it should not be.
step "searching docker inspect, the logs, the image and the generated folder for secrets"
secrets=("${shared_token[@]}" "${isolated_token[@]}")
for t in "${owners[@]}"; do
  for field in token plausible_token github_token cloudflare_token stripe_key; do
    secrets+=("$(owner "$t" "$field")")
  done
done
for key in "$out"/secrets/*/master.key; do secrets+=("$(cat "$key")"); done
# Each server's admin token, in its data volume, and its metrics token, which Prometheus reads:
# nothing may show them.
for service in shared isolated-acme isolated-globex isolated-initech; do
  secrets+=("$(dc exec -T "$service" cat /data/admin-token)")
  secrets+=("$(dc exec -T "$service" cat /metrics-token/token)")
done
mapfile -t -O "${#secrets[@]}" secrets <"$work/connector-secrets"  # invites, sessions, codes, OAuth tokens
search_image=1 search_for_secrets "${secrets[@]}"

size=$("$docker" image inspect -f '{{.Size}}' studio-mcp:latest)
step "image studio-mcp:latest: $((size / 1000000)) MB"
figures
