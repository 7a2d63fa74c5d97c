# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # name, repo in; py, work, pids, status out: the caller's
# Shared by the browser checks (tests/oauth/run.sh, tests/approvals/run.sh, tests/conformance/run.sh);
# sourced, not run.
#
#   name=oauth; . tests/lib/browser.sh
#   browser_tools        Debian's Chromium (apt-get, as root, if missing) and the venv with the
#                        official MCP Python SDK and Playwright; sets $py
#   scratch_dir          a private scratch dir ($work) and an EXIT trap that stops every pid in
#                        $pids, removes $work if $status is 0, else keeps it and shows log tails
#
# OAUTH_VENV      the venv (default <repo>/.oauth-venv); reinstalled when OAUTH_PIP_SPEC changes
# OAUTH_PIP_SPEC  pip requirements (default: the versions last verified, below)
# Never `playwright install`: it would download a browser; the system's Chromium is used.

venv=${OAUTH_VENV:-$repo/.oauth-venv}
spec=${OAUTH_PIP_SPEC:-mcp==2.3.0 playwright==1.65.2}

die() { echo "$name: $*" >&2; exit 1; }
say() { echo "$name: $*" >&2; }

browser_tools() {
  local tool
  for tool in python3 curl flock cargo timeout; do
    command -v "$tool" >/dev/null || die "$tool is needed"
  done
  # A real browser: Debian's Chromium (Playwright drives it; it never downloads one).
  if [[ ! -x /usr/bin/chromium ]]; then
    say "installing Debian's chromium"
    ((EUID == 0)) || die "/usr/bin/chromium is missing and installing it needs root (apt-get install -y chromium)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y chromium >&2 || { apt-get update >&2 && apt-get install -y chromium >&2; }
    [[ -x /usr/bin/chromium ]] || die "apt-get did not install /usr/bin/chromium"
  fi
  # The SDK and Playwright in their own venv; reinstalled only when the requirements change.
  mkdir -p "$venv"
  (
    flock 9   # two runs sharing the venv must not install over each other
    # shellcheck disable=SC2086  # $spec is a list of requirements
    if [[ ! -x $venv/bin/python || $(cat "$venv/.requirement" 2>/dev/null) != "$spec" ]] \
      || ! "$venv/bin/python" -c 'import mcp.client.auth, playwright.async_api' 2>/dev/null; then
      say "installing $spec into $venv"
      rm -f "$venv/.requirement"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check $spec >&2
      echo "$spec" >"$venv/.requirement"
    fi
  ) 9>"$venv/.install-lock"
  py=$venv/bin/python
}

# shellcheck disable=SC2317  # only reached through the EXIT trap
browser_finish() {
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if ((status == 0)); then
    rm -rf "$work"
  else
    local log
    for log in "$work"/*.log; do
      [[ -s $log ]] || continue
      echo "--- last lines of $log" >&2
      tail -n 15 "$log" >&2
    done
    say "FAILED; logs and data kept in $work"
  fi
}

scratch_dir() {
  umask 077
  work=$(mktemp -d "${TMPDIR:-/tmp}/studio-mcp-$name.XXXXXX")
  status=1
  pids=()
  trap browser_finish EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
