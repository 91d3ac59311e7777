#!/usr/bin/env bash
# Queue-to-claim latency of the reference worker, end to end on loopback: a server in
# development (so it runs the reference worker itself, with its 1 s poll) on a fresh
# database; N SCAN jobs queued one at a time, each after the previous one finished and a
# pause (so the worker idles, and each job is queued at another point of its poll cycle).
# The latency is read from the server's own records: the job's `run_after` (when it was
# queued) to its "claimed" log line, so the same script measures any build of the worker.
# Usage: bench/job_claim.sh [jobs] [pause seconds]
#   BIN=path/to/plinth  the binary to run (default: build and run the release binary)
#   LISTEN=false        the worker polls only (every second), as before `jobQueued`
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-100}"
PAUSE="${2:-0.3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --bin plinth -q
  BIN="$CARGO_TARGET_DIR/release/plinth"
fi

PG=postgres://postgres@127.0.0.1:5432
PORT="${PORT:-18183}"
URL="http://127.0.0.1:$PORT/graphql"
DATA="$(mktemp -d)"
DB="plinth_claimbench_$$"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
# Room for every SCAN on the Free plan.
sed -e 's/^scans = 20$/scans = 1000000/' -e 's/^api_requests_per_minute = 60$/api_requests_per_minute = 100000000/' \
  plans.toml > "$DATA/plans.toml"
DATABASE_URL="$PG/$DB" PLINTH_ADDR="127.0.0.1:$PORT" PLINTH_DATA_DIR="$DATA" RUST_LOG=warn \
  PLINTH_PLANS_FILE="$DATA/plans.toml" PLINTH_ARGON2_MEMORY_KIB=1024 PLINTH_IN_PROCESS_WORKER=true PLINTH_WORKER_LISTEN="${LISTEN:-true}" \
  "$BIN" serve >"$DATA/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/serve.log"; exit 1; }
  sleep 0.1
done

gql() { # gql TOKEN QUERY -> the JSON answer
  curl -sf "$URL" -H 'content-type: application/json' ${1:+-H "authorization: Bearer $1"} \
    -d "$(jq -nc --arg q "$2" '{query: $q}')"
}
TOKEN=$(gql "" 'mutation { register(input: {email: "bench@example.com", password: "a long bench password 1"}) { accessToken } }' |
  jq -r .data.register.accessToken)
[ "$TOKEN" != null ] || { echo "registration failed"; exit 1; }
# Let the in-process worker start and settle into its idle loop.
sleep 2

for i in $(seq 1 "$JOBS"); do
  ID=$(gql "$TOKEN" 'mutation { createJob(input: {kind: SCAN}) { id } }' | jq -r .data.createJob.id)
  [ "$ID" != null ] || { echo "createJob failed"; exit 1; }
  for _ in $(seq 1 200); do
    [ "$(gql "$TOKEN" "{ job(id: \"$ID\") { status } }" | jq -r .data.job.status)" = SUCCEEDED ] && break
    sleep 0.02
  done
  sleep "$PAUSE"
done

echo "queue-to-claim over $JOBS SCAN jobs ($BIN, PLINTH_WORKER_LISTEN=${LISTEN:-true}):"
psql "$PG/$DB" -qAt -F ' ' -c "
  WITH waits AS (
    SELECT extract(epoch FROM min(l.created_at) - j.run_after) * 1000 AS ms
      FROM jobs j JOIN job_logs l ON l.user_id = j.user_id AND l.job_id = j.id AND l.message LIKE 'claimed%'
     GROUP BY j.id, j.run_after)
  SELECT 'n=' || count(*),
         'p50=' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || 'ms',
         'p99=' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) || 'ms',
         'max=' || round(max(ms)::numeric, 1) || 'ms'
    FROM waits"
