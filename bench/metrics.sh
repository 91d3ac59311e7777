#!/usr/bin/env bash
# Latency of every business metric on 100,000 customers with 24 months of history
# (bench/metrics_seed.sql): a fresh database is migrated with the `plinth` binary
# (PLINTH_BIN, else the debug build, built here if missing), seeded in SQL, then each
# metric's statements run RUNS times (default 5) for the 24 months up to now, exactly as
# the server sends them for an administrator: as the runtime login role, in one
# transaction switched to `plinth_metrics` for an admin's id (and JIT off, as the
# server's switch does), through the metrics functions and their row-level security.
# It prints each metric's median and slowest run (ms, psql's \timing: execution and
# transfer of every row), the CPU time its backend used (which the load of a shared
# machine does not inflate; parallel workers' is not counted), and EXPLAIN (ANALYZE,
# BUFFERS) of the slowest metric's first statement.
#
# Usage: bench/metrics.sh [runs]   (KEEP_DB=1 keeps the database and prints its name;
# BENCH_DB=<name> reuses a kept one, migrated to this checkout, without seeding again)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/plinth-target}"
BIN="${PLINTH_BIN:-$CARGO_TARGET_DIR/debug/plinth}"
[ -x "$BIN" ] || cargo build --bin plinth -q
PG=postgres://postgres@127.0.0.1:5432
WORK="$(mktemp -d)"
if [ -n "${BENCH_DB:-}" ]; then
  # A database seeded by an earlier run (KEEP_DB=1): migrated to this checkout, kept.
  DB="$BENCH_DB"
  KEEP_DB=1
else
  DB="plinth_metrics_bench_$$"
  psql "$PG/postgres" -qc "CREATE DATABASE $DB"
fi
cleanup() {
  if [ -z "${KEEP_DB:-}" ]; then psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  else echo "kept database $DB"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
DATABASE_URL="$PG/$DB" PLINTH_DATA_DIR="$WORK/data" RUST_LOG=error "$BIN" migrate >/dev/null

if [ -z "${BENCH_DB:-}" ]; then
  started=$(date +%s)
  psql "$PG/$DB" -qX -f bench/metrics_seed.sql >/dev/null
  echo "seeded in $(( $(date +%s) - started )) s:"
fi
psql "$PG/$DB" -qXAt -F ' ' -c "
  SELECT 'users', count(*) FROM users UNION ALL
  SELECT 'subscription history rows', count(*) FROM billing_subscription_history UNION ALL
  SELECT '  of them cancellations', count(*) FROM billing_subscription_history WHERE status = 'canceled' UNION ALL
  SELECT '  reactivations (second subscriptions)', count(*) FROM billing_subscription_history
    WHERE subscription_id LIKE '%\_b' UNION ALL
  SELECT '  yearly', count(*) FROM billing_subscription_history WHERE billing_interval = 'year' UNION ALL
  SELECT 'jobs', count(*) FROM jobs UNION ALL
  SELECT 'tickets', count(*) FROM tickets UNION ALL
  SELECT 'CSAT ratings', count(*) FROM ticket_csat UNION ALL
  SELECT 'NPS answers', count(*) FROM nps_responses UNION ALL
  SELECT 'experiment assignments', count(*) FROM experiment_assignments" | sed 's/^/  /'

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
ADMIN="$(psql "$PG/$DB" -qXAt -c "SELECT id FROM users WHERE role = 'admin'")"
FROM="$(psql "$PG/$DB" -qXAt -c "SELECT date_trunc('month', now() - interval '24 months', 'UTC')")"
TO="$(psql "$PG/$DB" -qXAt -c "SELECT now()")"
R="'$FROM', '$TO'"
# Each metric as the statements its service sends (business/store.rs, feedback/store.rs,
# experiments/store.rs), `until` of cohorts being now.
declare -A SQL=(
  [calibration]="SELECT count(*) FROM generate_series(1, 3000000);"
  [mrr_month]="SELECT * FROM metrics.mrr($R, 'month');"
  [mrr_week]="SELECT * FROM metrics.mrr($R, 'week');"
  [mrr_day]="SELECT * FROM metrics.mrr($R, 'day');"
  [churn_month]="SELECT * FROM metrics.churn($R, 'month');"
  [churn_week]="SELECT * FROM metrics.churn($R, 'week');"
  [conversion]="SELECT * FROM metrics.conversion($R);"
  [activation]="SELECT * FROM metrics.activation($R, 7);"
  [cohorts_active]="SELECT * FROM metrics.cohorts($R, 'active', '$TO');"
  [cohorts_revenue]="SELECT * FROM metrics.cohorts($R, 'revenue', '$TO');"
  [supportMetrics]="SELECT * FROM metrics.support($R); SELECT * FROM metrics.support_csat($R);"
  [usageTotals]="SELECT * FROM metrics.usage_totals($R);"
  [experimentResults]="SELECT * FROM metrics.experiment_results('pricing.page', 'clicked_buy');"
  [experimentResults_paid]="SELECT * FROM metrics.experiment_results('pricing.page', 'paid');"
  [npsSummary]="SELECT * FROM metrics.nps_summary($R); SELECT * FROM metrics.nps_distribution($R); SELECT * FROM metrics.nps_monthly($R); SELECT * FROM metrics.nps_comments($R, 20);"
)
ORDER=(mrr_month mrr_week mrr_day churn_month churn_week conversion activation cohorts_active cohorts_revenue
       supportMetrics usageTotals experimentResults experimentResults_paid npsSummary)

# The machine is shared: besides the wall time of each run, the CPU time its backend
# used (utime + stime from /proc, in ticks of 10 ms), which other processes' load does
# not inflate; and a calibration, a 3-million-row count, before and after.
SCRIPT="$WORK/runs.sql"
cpu() { echo "\\! awk -v l='$1' '{ print l, \$14 + \$15 }' /proc/\$BACKEND/stat >> $WORK/cpu.txt"; }
{
  echo "SELECT pg_backend_pid() AS pid \\gset"
  echo "\\setenv BACKEND :pid"
  echo "BEGIN;"
  echo "SELECT set_config('role', 'plinth_metrics', true), set_config('plinth.user_id', '$ADMIN', true), set_config('jit', 'off', true) \\g /dev/null"
  echo "\\timing on"
  for m in calibration "${ORDER[@]}" calibration; do
    for run in $(seq 1 "$RUNS"); do
      echo "\\echo RUN $m"
      cpu "$m"
      # Every row is fetched (and thrown away), as the server reads them.
      IFS=';' read -ra parts <<< "${SQL[$m]}"
      for stmt in "${parts[@]}"; do
        stmt="${stmt#"${stmt%%[![:space:]]*}"}"
        if [ -n "$stmt" ]; then echo "$stmt \\g /dev/null"; fi
      done
      cpu "$m"
    done
  done
  echo "ROLLBACK;"
} > "$SCRIPT"
psql "postgres://plinth_app@127.0.0.1:5432/$DB" -qX -v ON_ERROR_STOP=1 -f "$SCRIPT" > "$WORK/times.txt"
# Each run's CPU: the difference of its two readings.
awk 'NR % 2 { start = $2; next } { print "CPU", $1, ($2 - start) * 10 }' "$WORK/cpu.txt" >> "$WORK/times.txt"

echo
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "metric (24 months to now, $RUNS runs)   median ms  max ms  median CPU ms"
awk '
  /^RUN / { if (cur != "") t[cur, ++n[cur]] = sum; cur = $2; sum = 0; if (!(cur in seen)) { seen[cur] = 1; order[++k] = cur } next }
  /^Time: / { sum += $2; next }
  /^CPU / { cpu[$2, ++nc[$2]] = $3; next }
  function median(arr, key, c,    a, b, x, v) {
    for (a = 1; a <= c; a++) v[a] = arr[key, a]
    for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
    top = v[c]
    return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  END {
    t[cur, ++n[cur]] = sum
    for (i = 1; i <= k; i++) {
      m = order[i]
      med = median(t, m, n[m]); worst_run = top
      printf "%-38s %10.1f %7.1f %14.0f\n", m, med, worst_run, median(cpu, m, nc[m])
      if (m != "calibration" && med > worst) { worst = med; slowest = m }
    }
    print slowest > "/dev/stderr"
  }' "$WORK/times.txt" 2> "$WORK/slowest"
SLOWEST="$(cat "$WORK/slowest")"

echo
echo "EXPLAIN (ANALYZE, BUFFERS) of the slowest, $SLOWEST (its first statement):"
FIRST="$(echo "${SQL[$SLOWEST]}" | sed 's/;.*//')"
psql "postgres://plinth_app@127.0.0.1:5432/$DB" -qX -v ON_ERROR_STOP=1 <<SQL
BEGIN;
SELECT set_config('role', 'plinth_metrics', true), set_config('plinth.user_id', '$ADMIN', true), set_config('jit', 'off', true) \g /dev/null
EXPLAIN (ANALYZE, BUFFERS) $FIRST;
ROLLBACK;
SQL
