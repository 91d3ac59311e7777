# Sourced by the bench scripts that drive the server over HTTP: builds the release
# server, makes a fresh database and data dir, and defines `serve VAR=value ...`, which
# starts `plinth serve` on 127.0.0.1:$PORT with those settings and waits until it is
# ready. Everything is removed on exit. Set PORT before sourcing.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
cargo build --release --bin plinth -q

PG=postgres://postgres@127.0.0.1:5432
DB="plinth_bench_$$"
DATA="$(mktemp -d)"
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$DATA"
}
trap cleanup EXIT

serve() {
  env DATABASE_URL="$PG/$DB" PLINTH_ADDR="127.0.0.1:$PORT" PLINTH_DATA_DIR="$DATA" RUST_LOG=warn "$@" \
    "$CARGO_TARGET_DIR/release/plinth" serve &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "the server did not become ready on port $PORT" >&2
  return 1
}
