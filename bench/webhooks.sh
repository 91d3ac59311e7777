#!/usr/bin/env bash
# Loopback Stripe webhook throughput on the release server: distinct events applied per
# second with CONCURRENCY deliveries in flight, the latency of one delivery, and the
# throughput of redeliveries answered "duplicate" (bench/webhooks.rs does the
# measuring). The server runs on a fresh database; the example starts its own fake
# Stripe on 127.0.0.1:$STRIPE_PORT, which the server is told about at start
# (PLINTH_STRIPE_API_BASE): the server only calls Stripe when a checkout starts, so the
# fake may come up after the server.
# Usage: bench/webhooks.sh [events] [concurrency] [users] [-- extra webhooks args]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-20000}"
CONCURRENCY="${2:-16}"
USERS="${3:-64}"
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
cargo build --release --bin plinth --example webhooks -q

PG=postgres://postgres@127.0.0.1:5432
PORT="${PORT:-18183}"
STRIPE_PORT="${STRIPE_PORT:-18184}"
SECRET="whsec_bench_$$"
DB="plinth_whbench_$$"
DATA="$(mktemp -d)"
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

for p in "$PORT" "$STRIPE_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "something already listens on 127.0.0.1:$p (set PORT / STRIPE_PORT)"
    exit 1
  fi
done

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
# Cheap password hashes and no sign-in throttling: registration is set-up, not measured.
DATABASE_URL="$PG/$DB" PLINTH_ADDR="127.0.0.1:$PORT" PLINTH_DATA_DIR="$DATA" RUST_LOG=warn \
  PLINTH_LOGIN_LIMIT_PER_EMAIL=100000000 PLINTH_LOGIN_LIMIT_PER_IP=100000000 PLINTH_ARGON2_MEMORY_KIB=1024 \
  PLINTH_STRIPE_SECRET_KEY=sk_test_bench PLINTH_STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT/" \
  PLINTH_STRIPE_WEBHOOK_SECRET="$SECRET" \
  "$CARGO_TARGET_DIR/release/plinth" serve &
SERVER=$!
up=""
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && { up=1; break; }
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.1
done
[ -n "$up" ] || { echo "the server did not become ready"; exit 1; }

echo "######## $EVENTS events over $USERS customers, $CONCURRENCY in flight (server pid $SERVER, 2 cores shared with Postgres and the client)"
status=0
"$CARGO_TARGET_DIR/release/examples/webhooks" --url "http://127.0.0.1:$PORT" --stripe-port "$STRIPE_PORT" \
  --webhook-secret "$SECRET" --users "$USERS" --events "$EVENTS" --concurrency "$CONCURRENCY" \
  --database-url "$PG/$DB" "${EXTRA[@]}" || status=$?
kill -0 "$SERVER" 2>/dev/null || { echo "the server died during the run"; status=1; }
metrics=$(curl -sf "http://127.0.0.1:$PORT/metrics" || true)
echo
echo "server's count of webhook requests by status:"
echo "$metrics" | grep '^plinth_http_requests_total' | grep 'route="/webhooks/stripe"' || echo "  none"
errors=$(echo "$metrics" | grep '^plinth_graphql_errors_total' || true)
echo "GraphQL errors during the run: ${errors:-none}"
exit "$status"
