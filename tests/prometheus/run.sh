#!/usr/bin/env bash
# The Prometheus alert rules (deploy/prometheus/alerts.yml): promtool checks them and runs their
# unit tests (alerts_test.yml fires each alert from synthetic series). Installs promtool from
# Debian's prometheus package if it is missing. That every metric a rule names is exposed by a
# real server is a test of the suite (metrics::every_metric_an_alert_names_is_exposed).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian's prometheus package)"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
cd deploy/prometheus
promtool check rules alerts.yml
promtool test rules alerts_test.yml
