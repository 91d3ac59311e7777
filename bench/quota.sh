#!/usr/bin/env bash
# The added cost of a quota check (period lookup + conditional upsert) as the runtime
# role runs it under RLS, with pgbench on loopback; prints per-statement average latency
# and the p50/p99 of the whole transaction. Usage: bench/quota.sh [secs] [clients]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CLIENTS="${2:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
cargo build --release --bin plinth -q
PG=postgres://postgres@127.0.0.1:5432
DB="plinth_quota_$$"
LOGDIR="$(mktemp -d)"
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
trap 'psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; rm -rf "$LOGDIR"' EXIT
DATABASE_URL="$PG/$DB" RUST_LOG=error "$CARGO_TARGET_DIR/release/plinth" migrate >/dev/null
UID_="$(psql "$PG/$DB" -qAtc "INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), 'q@example.com', 'x') RETURNING id")"
cd "$LOGDIR"
pgbench -n -h 127.0.0.1 -U plinth_app -d "$DB" -f "$OLDPWD/bench/quota.sql" -D uid="$UID_" \
  -c "$CLIENTS" -j 2 -T "$SECS" -r -l --log-prefix=q | grep -E "latency|tps|^ +[0-9.]+ +[0-9]+ +(SELECT|INSERT|BEGIN|COMMIT)"
cat q.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "transaction latency p50 %.3f ms, p99 %.3f ms (n=%d)\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, NR}'
