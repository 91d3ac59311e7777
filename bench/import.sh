#!/usr/bin/env bash
# `plinth import` (docs/import.md): the dry-run report of a small folder with a few bad
# records, then the import rate of DRAFTS drafts (default 10,000) with PER photos each
# (default 3: 30,000 small real JPEGs, 320x240 grayscale, ~2 KB) into a fresh account of
# a fresh database, with the local object store under a temporary data dir. Uses the
# `plinth` binary at PLINTH_BIN, else the debug build (built here if missing); say which
# when quoting the numbers. Prints the report of each run and the rates the import
# measured (records per second and MB of photos per second of writing), and the wall
# time of the whole command (checking included).
#
# Usage: bench/import.sh [drafts] [photos per draft]
set -euo pipefail
cd "$(dirname "$0")/.."
DRAFTS="${1:-10000}"
PER="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
BIN="${PLINTH_BIN:-$CARGO_TARGET_DIR/debug/plinth}"
[ -x "$BIN" ] || cargo build --bin plinth -q
PG=postgres://postgres@127.0.0.1:5432
WORK="$(mktemp -d)"
DB="plinth_import_bench_$$"
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
cleanup() {
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export DATABASE_URL="$PG/$DB" PLINTH_DATA_DIR="$WORK/data" RUST_LOG=error
"$BIN" migrate >/dev/null
"$BIN" admin create --email bench@example.com >/dev/null
"$BIN" admin create --email sample@example.com >/dev/null

echo "== dry run of a sample folder with a few bad records (bench/import_sample.py bad)"
python3 bench/import_sample.py bad "$WORK/sample"
"$BIN" import --user sample@example.com --from "$WORK/sample" --dry-run || true

echo
echo "== $DRAFTS drafts with $PER photos each"
python3 bench/import_sample.py big "$WORK/big" "$DRAFTS" "$PER"
echo "folder: $(du -sh "$WORK/big" | cut -f1), photos: $(find "$WORK/big/photos" -type f | wc -l)"
start=$(date +%s.%N)
"$BIN" import --user bench@example.com --from "$WORK/big" --json >"$WORK/report.json"
end=$(date +%s.%N)
python3 - "$WORK/report.json" "$start" "$end" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for f in r["files"]:
    if f["records"]:
        print(f'{f["file"]}: {f["imported"]} imported, {f["rejected"]} rejected')
print(f'writing: {r["seconds"]:.1f} s, {r["recordsPerSecond"]:.0f} records/s, '
      f'{r["photoMbPerSecond"]:.2f} MB of photos/s ({r["photoBytes"] / 1e6:.1f} MB)')
print(f'whole command (checking, connecting, writing): {float(sys.argv[3]) - float(sys.argv[2]):.1f} s')
EOF
echo "== a second run imports nothing"
"$BIN" import --user bench@example.com --from "$WORK/big" | head -8
