#!/usr/bin/env bash
# Loopback WebSocket fan-out on the release server: commit-to-client latency of
# `jobUpdated` events with many concurrent subscribers, and the server's memory per
# idle subscriber (bench/ws_fanout.rs does the measuring). Runs once with the
# in-process event bus, then (when Redis answers on 127.0.0.1:6379, unless NO_REDIS=1)
# once more with REDIS_URL set, each on a fresh database.
# Usage: bench/ws_fanout.sh [subscribers] [events] [users] [-- extra ws_fanout args]
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSCRIBERS="${1:-1000}"
EVENTS="${2:-200}"
USERS="${3:-10}"
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
cargo build --release --bin plinth --example ws_fanout -q

# 1,000 sockets on each side of loopback, plus the server's own files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n) (65536 asked)"

PG=postgres://postgres@127.0.0.1:5432
PORT="${PORT:-18182}"
DATA="$(mktemp -d)"
DBS=()
SERVER=""
stop_server() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}
cleanup() {
  stop_server
  for db in "${DBS[@]}"; do
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  done
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run LABEL [VAR=value...]: a server on a fresh database, the benchmark, then stop.
run() {
  local label="$1"
  shift
  local db="plinth_wsbench_$$_${#DBS[@]}"
  DBS+=("$db")
  psql "$PG/postgres" -qc "CREATE DATABASE $db"
  rm -rf "${DATA:?}"/*
  # Cheap password hashes: registration is not measured, and 19 MiB argon2 buffers that
  # the allocator returns to the OS only later would blur the memory baseline.
  # The events are SCAN jobs: give the Free plan room for all of them.
  sed -e 's/^scans = 20$/scans = 1000000/' -e 's/^api_requests_per_minute = 60$/api_requests_per_minute = 100000000/' \
    plans.toml > "$DATA/plans.toml"
  env "$@" DATABASE_URL="$PG/$db" PLINTH_ADDR="127.0.0.1:$PORT" PLINTH_DATA_DIR="$DATA" RUST_LOG=warn \
    PLINTH_PLANS_FILE="$DATA/plans.toml" \
    PLINTH_LOGIN_LIMIT_PER_EMAIL=100000000 PLINTH_LOGIN_LIMIT_PER_IP=100000000 PLINTH_ARGON2_MEMORY_KIB=1024 \
    "$CARGO_TARGET_DIR/release/plinth" serve &
  SERVER=$!
  local up=""
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && { up=1; break; }
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$up" ] || { echo "the server did not become ready"; return 1; }
  echo
  echo "######## $label: $SUBSCRIBERS subscribers over $USERS users, $EVENTS events (server pid $SERVER)"
  local status=0
  "$CARGO_TARGET_DIR/release/examples/ws_fanout" --url "http://127.0.0.1:$PORT" --users "$USERS" \
    --subscribers "$SUBSCRIBERS" --events "$EVENTS" --server-pid "$SERVER" "${EXTRA[@]}" || status=$?
  kill -0 "$SERVER" 2>/dev/null || { echo "the server died during the run"; status=1; }
  local errors
  errors=$(curl -sf "http://127.0.0.1:$PORT/metrics" | grep '^plinth_graphql_errors_total' || true)
  echo "GraphQL errors during the run: ${errors:-none}"
  stop_server
  return "$status"
}

failed=0
run "in-process event bus" || failed=1
if [ "${NO_REDIS:-0}" != 1 ] && (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  run "Redis event bus (REDIS_URL=redis://127.0.0.1:6379)" REDIS_URL=redis://127.0.0.1:6379 || failed=1
else
  echo
  echo "(Redis run skipped: NO_REDIS=1 or nothing on 127.0.0.1:6379)"
fi
exit "$failed"
