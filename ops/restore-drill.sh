#!/usr/bin/env bash
# The restore drill: proves that a pgBackRest backup of Plinth's database, plus its archived
# WAL, restores to a chosen point in time with the data and the isolation intact.
#
# On a throwaway PostgreSQL cluster of its own (own port and data dir under a temp dir,
# run as an unprivileged user, archive_mode on with `pgbackrest archive-push`, an encrypted
# posix repository beside it; never the shared cluster on 5432):
#   1. migrate with `plinth migrate` (as Fly's release_command does), then write rows through
#      the runtime role (plinth_app, SET ROLE plinth_user and the plinth.user_id setting);
#   2. take a full backup; write more rows (these reach the restore only by WAL replay);
#   3. note a time T; write, change and delete rows after it; archive the WAL;
#   4. restore to a NEW cluster at T (--type=time), start it, and check: row counts as of T,
#      a known row's content as of T, nothing written after T, RLS enabled and FORCEd on
#      every table the source had it on, the same policies, and the runtime role still
#      unable to bypass them (not superuser, not BYPASSRLS, owns nothing, a SELECT without
#      the user setting sees no tenant row, one user sees only its own rows).
# Prints a report, exits non-zero on any failure, and removes its clusters and files on
# every exit (PLINTH_DRILL_KEEP=1 keeps the files for a post-mortem).
# PLINTH_DRILL_TAMPER=1 shows the checks can fail: it damages the restored copy (a row
# changed, one deleted, FORCE dropped and the table given to an app role, BYPASSRLS on the
# runtime role) and passes only if exactly the checks that must catch that fail.
#
# Needs: PostgreSQL server binaries (PLINTH_PG_BIN_DIR, else /usr/lib/postgresql/<newest>/bin,
# else initdb on PATH), psql, pgBackRest (Debian's package: installed with apt-get when
# missing), and the plinth binary: PLINTH_BIN, else the one the test build makes
# (`cargo test --no-run --workspace`, in $CARGO_TARGET_DIR when set: after scripts/test it
# is already built, and it shares the tests' dependency builds).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STARTED=$SECONDS

# Nothing from the caller's environment may point a client at another cluster.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE PGSERVICE PGSERVICEFILE \
  PGOPTIONS PGSSLMODE DATABASE_URL PLINTH_APP_DATABASE_URL

say() { echo "restore-drill: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# ---------------------------------------------------------------------------- tools
phase_started=$SECONDS
declare -a TIMINGS=()
phase_done() {
  TIMINGS+=("$(printf '%-34s %4ss' "$1" $((SECONDS - phase_started)))")
  phase_started=$SECONDS
}

# shellcheck source=ops/lib.sh
. ops/lib.sh
if ! command -v pgbackrest >/dev/null 2>&1; then
  say "installing pgbackrest (Debian package)"
  apt_install pgbackrest || die "could not install pgbackrest"
fi
command -v psql >/dev/null 2>&1 || die "psql not found (apt-get install postgresql-client)"

find_pg_bin() {
  if [ -n "${PLINTH_PG_BIN_DIR:-}" ]; then
    echo "$PLINTH_PG_BIN_DIR"
    return
  fi
  local newest dir
  newest=$(for dir in /usr/lib/postgresql/*/bin; do if [ -x "$dir/initdb" ]; then echo "$dir"; fi; done | sort -V | tail -n1)
  if [ -n "$newest" ]; then
    echo "$newest"
    return
  fi
  local initdb
  initdb=$(command -v initdb || true)
  [ -n "$initdb" ] || die "no PostgreSQL server binaries (set PLINTH_PG_BIN_DIR)"
  dirname "$(readlink -f "$initdb")"
}
PG_BIN=$(find_pg_bin)
PG_VERSION=$("$PG_BIN/postgres" --version | awk '{print $3}')

if [ -n "${PLINTH_BIN:-}" ]; then
  [ -x "$PLINTH_BIN" ] || die "PLINTH_BIN=$PLINTH_BIN is not an executable"
else
  # The test build links target/debug/plinth for the tests (CARGO_BIN_EXE_plinth); a
  # plain `cargo build --bin plinth` would compile its dependencies a second time with
  # other features.
  say "building the plinth binary (cargo test --no-run --workspace)"
  cargo test --quiet --no-run --locked --workspace
  PLINTH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/plinth"
fi
[ -x "$PLINTH_BIN" ] || die "no plinth binary at $PLINTH_BIN"
phase_done "tools (pgbackrest, plinth binary)"

# initdb refuses root: the clusters run as postgres (Debian's server packages create it),
# else as a system user made for this, as the embedded cluster does.
RUN_AS=""
if [ "$(id -u)" = 0 ]; then
  if id postgres >/dev/null 2>&1; then
    RUN_AS=postgres
  else
    id plinth-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin plinth-pg
    RUN_AS=plinth-pg
  fi
fi
as_pg() {
  if [ -n "$RUN_AS" ]; then
    runuser -u "$RUN_AS" -- "$@"
  else
    "$@"
  fi
}

# A free loopback port, never the shared cluster's.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    [ "$p" = 5432 ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# start_cluster DIR LOG OPTIONS: starts the cluster in DIR on a free port and prints the
# port. Another process may bind a port between the look and PostgreSQL's bind: then it
# tries another one.
start_cluster() {
  local dir=$1 log=$2 opts=$3 port before
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    before=0
    if [ -f "$log" ]; then before=$(wc -l <"$log"); fi
    if as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$log" -w -t 120 -o "-p $port $opts" start >/dev/null 7>&- 8>&-; then
      echo "$port"
      return 0
    fi
    tail -n +$((before + 1)) "$log" | grep -q "Address already in use" || return 1
    say "port $port was taken meanwhile; trying another"
  done
  return 1
}

# ---------------------------------------------------------------------------- layout
# Under /var/tmp (or PLINTH_DRILL_DIR): the cluster's user must reach it, which a private
# TMPDIR may not let it.
WORK=$(mktemp -d "${PLINTH_DRILL_DIR:-/var/tmp}/plinth-restore-drill.XXXXXX")
chmod 700 "$WORK"
SRC="$WORK/source"
DST="$WORK/restored"
REPO="$WORK/repo"
SOCK_SRC="$WORK/sock-source"
SOCK_DST="$WORK/sock-restored"
CONF="$WORK/pgbackrest.conf"
LOGS="$WORK/logs"
mkdir -p "$REPO" "$SOCK_SRC" "$SOCK_DST" "$LOGS" "$WORK/lock" "$WORK/spool" "$DST"
chmod 700 "$DST" "$SOCK_SRC" "$SOCK_DST"
[ -z "$RUN_AS" ] || chown -R "$RUN_AS:" "$WORK"

# As in production: the cluster's superuser (pgBackRest's connection, and these checks')
# is not the application's owner; the owner creates roles and bypasses RLS (its SECURITY
# DEFINER functions read across tenants) but is no superuser.
SUPERUSER=postgres
OWNER=plinth_owner
DB=plinth
OWNER_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
APP_PW=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

# The caller's stdout and stderr, for the report of a run cut short: a signal's trap runs
# inside whatever redirection the interrupted command had (a log file about to be removed).
exec 7>&1 8>&2
cleanup() {
  local rc=$?
  exec 1>&7 2>&8
  for dir in "$DST" "$SRC"; do
    if [ -f "$dir/postmaster.pid" ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  if [ "$rc" != 0 ]; then
    # Each step's output (pgBackRest's warnings and errors included); its detailed logs
    # stay under pgbackrest-log/ with PLINTH_DRILL_KEEP=1.
    for log in "$LOGS"/*.log; do
      [ -s "$log" ] || continue
      say "--- last lines of ${log#"$WORK"/}"
      tail -n 15 "$log" >&2 || true
    done
  fi
  if [ "${PLINTH_DRILL_KEEP:-}" = 1 ]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------------------- source cluster
as_pg "$PG_BIN/initdb" -D "$SRC" -U "$SUPERUSER" -E UTF8 --locale=C \
  --auth-local=trust --auth-host=scram-sha-256 >"$LOGS/initdb.log" 2>&1
# The unix socket lives in a 0700 dir of the cluster's user, so "trust" there reaches only
# that user (and root); TCP asks for passwords.
cat >>"$SRC/postgresql.conf" <<EOF

# restore drill
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK_SRC'
unix_socket_permissions = 0700
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$CONF --stanza=plinth archive-push %p'
max_wal_senders = 3
shared_buffers = 32MB
timezone = 'UTC'
EOF
# The port is given at each start, never written down: the restored copy gets its own.
PORT_SRC=$(start_cluster "$SRC" "$LOGS/source.log" "") || die "the source cluster did not start"
say "PostgreSQL $PG_VERSION from $PG_BIN, source on 127.0.0.1:$PORT_SRC, work dir $WORK"
CIPHER_PASS=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
cat >"$CONF" <<EOF
[global]
repo1-path=$REPO
repo1-retention-full=2
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$CIPHER_PASS
start-fast=y
archive-timeout=60
log-path=$WORK/pgbackrest-log
lock-path=$WORK/lock
spool-path=$WORK/spool
log-level-console=warn
log-level-file=detail

[plinth]
pg1-path=$SRC
pg1-port=$PORT_SRC
pg1-socket-path=$SOCK_SRC
pg1-user=$SUPERUSER
EOF
mkdir -p "$WORK/pgbackrest-log"
chmod 600 "$CONF"
[ -z "$RUN_AS" ] || chown -R "$RUN_AS:" "$CONF" "$WORK/pgbackrest-log"
BACKREST=(pgbackrest "--config=$CONF" --stanza=plinth)
psql_src() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK_SRC" -p "$PORT_SRC" -U "$SUPERUSER" "$@"; }
psql_src -d postgres -c "CREATE ROLE $OWNER LOGIN CREATEROLE BYPASSRLS PASSWORD '$OWNER_PW'" >/dev/null
psql_src -d postgres -c "CREATE DATABASE $DB OWNER $OWNER" >/dev/null
phase_done "source cluster (initdb, start)"

as_pg "${BACKREST[@]}" stanza-create >"$LOGS/stanza-create.log" 2>&1
as_pg "${BACKREST[@]}" check >"$LOGS/check.log" 2>&1
phase_done "pgbackrest stanza-create, check"

# ---------------------------------------------------------------------------- migrate
OWNER_URL="postgres://$OWNER:$OWNER_PW@127.0.0.1:$PORT_SRC/$DB"
APP_URL="postgres://plinth_app:$APP_PW@127.0.0.1:$PORT_SRC/$DB"
env PLINTH_ENV=production PLINTH_LOG_FORMAT=json PLINTH_DATA_DIR="$WORK/plinth-data" \
  DATABASE_URL="$OWNER_URL" PLINTH_APP_DB_PASSWORD="$APP_PW" \
  "$PLINTH_BIN" migrate >"$LOGS/migrate.log" 2>&1 || die "plinth migrate failed (its output below)"
MIGRATIONS=$(psql_src -d "$DB" -c "SELECT count(*) FROM seaql_migrations")
phase_done "plinth migrate ($MIGRATIONS migrations)"

# ---------------------------------------------------------------------------- writes
USER_A=0d1e0000-0000-4000-8000-00000000000a
USER_B=0d1e0000-0000-4000-8000-00000000000b
USER_C=0d1e0000-0000-4000-8000-00000000000c
USER_D=0d1e0000-0000-4000-8000-00000000000d
KNOWN=0d1e0000-0000-4000-8000-0000000000f1
DOOMED=0d1e0000-0000-4000-8000-0000000000f2

# Runs SQL as the runtime does: logged in as plinth_app over TCP, one transaction that
# first switches to plinth_user and sets the user id.
as_user() {
  local uid=$1 sql=$2
  psql -X -q -v ON_ERROR_STOP=1 "$APP_URL" >>"$LOGS/writes.log" 2>&1 <<SQL
BEGIN;
SELECT set_config('role', 'plinth_user', true), set_config('plinth.user_id', '$uid', true);
$sql
COMMIT;
SQL
}
new_user() {
  as_user "$1" "INSERT INTO users (id, email, password_hash) VALUES ('$1', '$2', 'drill-not-a-hash');"
}
drafts_for() {
  as_user "$1" "INSERT INTO drafts (id, user_id, title) SELECT gen_random_uuid(), '$1', '$2 ' || g FROM generate_series(1, $3) g;"
}

# Before the backup.
new_user "$USER_A" drill-a@example.com
new_user "$USER_B" drill-b@example.com
drafts_for "$USER_A" "before backup" 40
drafts_for "$USER_B" "before backup" 25
as_user "$USER_A" "INSERT INTO drafts (id, user_id, title, description, price_cents)
  VALUES ('$KNOWN', '$USER_A', 'Restore drill: known draft', 'before the backup', 4200),
         ('$DOOMED', '$USER_A', 'Restore drill: deleted after the target', '', 100);"
phase_done "rows before the backup"

as_pg "${BACKREST[@]}" --type=full backup >"$LOGS/backup.log" 2>&1
phase_done "pgbackrest full backup"

# After the backup, before T: only WAL replay brings these back.
new_user "$USER_C" drill-c@example.com
drafts_for "$USER_C" "after backup" 15
drafts_for "$USER_A" "after backup" 10
as_user "$USER_A" "UPDATE drafts SET description = 'after the backup, before the target', price_cents = 4300,
  updated_at = now() WHERE id = '$KNOWN';"

count_rows() {
  "$@" -d "$DB" -c "SELECT format('users=%s drafts=%s drafts_a=%s drafts_b=%s drafts_c=%s',
      (SELECT count(*) FROM users), (SELECT count(*) FROM drafts),
      (SELECT count(*) FROM drafts WHERE user_id = '$USER_A'),
      (SELECT count(*) FROM drafts WHERE user_id = '$USER_B'),
      (SELECT count(*) FROM drafts WHERE user_id = '$USER_C'))"
}
known_row() {
  "$@" -d "$DB" -c "SELECT format('%s | %s | %s', title, description, price_cents) FROM drafts WHERE id = '$KNOWN'"
}
# What the restore must show, read from the source as of T (nothing else writes to it).
EXPECTED_COUNTS=$(count_rows psql_src)
EXPECTED_KNOWN=$(known_row psql_src)
RLS_QUERY="SELECT string_agg(format('%s.%s force=%s', n.nspname, c.relname, c.relforcerowsecurity), E'\n'
             ORDER BY n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
POLICY_QUERY="SELECT md5(string_agg(format('%s.%s.%s %s %s %s %s', schemaname, tablename, policyname,
                 roles::text, cmd, qual, with_check), E'\n' ORDER BY schemaname, tablename, policyname)) || ' (' || count(*) || ' policies)'
              FROM pg_policies"
SOURCE_RLS=$(psql_src -d "$DB" -c "$RLS_QUERY")
SOURCE_POLICIES=$(psql_src -d "$DB" -c "$POLICY_QUERY")
sleep 1
TARGET=$(psql_src -d "$DB" -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1
phase_done "rows after the backup, target time"

# After T: none of this may survive the restore.
new_user "$USER_D" drill-d@example.com
drafts_for "$USER_D" "after target" 5
drafts_for "$USER_A" "after target" 7
as_user "$USER_A" "UPDATE drafts SET title = 'changed after the target', price_cents = 9999 WHERE id = '$KNOWN';
  DELETE FROM drafts WHERE id = '$DOOMED';"
AFTER_COUNTS=$(count_rows psql_src)
# Switches WAL and waits until the segment holding the writes after T is archived.
as_pg "${BACKREST[@]}" check >>"$LOGS/check.log" 2>&1
BACKUP_INFO=$(as_pg "${BACKREST[@]}" info 2>&1)
as_pg "$PG_BIN/pg_ctl" -D "$SRC" -m fast -w stop >/dev/null
phase_done "rows after the target, WAL archived"

# ---------------------------------------------------------------------------- restore
as_pg "${BACKREST[@]}" "--pg1-path=$DST" --type=time "--target=$TARGET" --target-action=promote \
  --archive-mode=off restore >"$LOGS/restore.log" 2>&1
phase_done "pgbackrest restore --type=time"

# The restored configuration is the source's: its own port and socket, and no archiving
# (a restored copy must not push a new timeline into the source's repository).
PORT_DST=$(start_cluster "$DST" "$LOGS/restored.log" "-k $SOCK_DST -c archive_mode=off") ||
  die "the restored cluster did not start"
psql_dst() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK_DST" -p "$PORT_DST" -U "$SUPERUSER" "$@"; }
for _ in $(seq 1 120); do
  [ "$(psql_dst -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 1
done
[ "$(psql_dst -d postgres -c 'SELECT pg_is_in_recovery()')" = f ] || die "the restored cluster did not finish recovery"
phase_done "restored cluster (replay, promote)"

# ---------------------------------------------------------------------------- checks
if [ "${PLINTH_DRILL_TAMPER:-}" = 1 ]; then
  say "PLINTH_DRILL_TAMPER=1: damaging the restored copy; the checks must catch it"
  psql_dst -d "$DB" -c "UPDATE drafts SET price_cents = 1 WHERE id = '$KNOWN';
    DELETE FROM drafts WHERE id = (SELECT id FROM drafts WHERE user_id = '$USER_B' LIMIT 1);
    ALTER TABLE drafts NO FORCE ROW LEVEL SECURITY; ALTER TABLE drafts OWNER TO plinth_user;
    ALTER ROLE plinth_app BYPASSRLS;"
fi
FAILURES=0
declare -a REPORT=() FAILED=()
check() {
  local name=$1 expected=$2 actual=$3
  if [ "$expected" = "$actual" ]; then
    REPORT+=("ok    $name: ${actual:-none}")
  else
    REPORT+=("FAIL  $name: expected [${expected:-none}], got [$actual]")
    FAILED+=("$name")
    FAILURES=$((FAILURES + 1))
  fi
}

RESTORED_COUNTS=$(count_rows psql_dst)
check "row counts as of T" "$EXPECTED_COUNTS" "$RESTORED_COUNTS"
check "known row (title | description | price) as of T" "$EXPECTED_KNOWN" "$(known_row psql_dst)"
check "rows written after the backup (WAL replay): user C and its drafts" "1 15" \
  "$(psql_dst -d "$DB" -c "SELECT (SELECT count(*) FROM users WHERE id = '$USER_C') || ' ' || (SELECT count(*) FROM drafts WHERE user_id = '$USER_C')")"
check "rows written after T: user D, its drafts, the deleted draft still there" "0 0 1" \
  "$(psql_dst -d "$DB" -c "SELECT (SELECT count(*) FROM users WHERE id = '$USER_D') || ' ' || (SELECT count(*) FROM drafts WHERE user_id = '$USER_D') || ' ' || (SELECT count(*) FROM drafts WHERE id = '$DOOMED')")"
check "no row created after T" "0" \
  "$(psql_dst -d "$DB" -c "SELECT count(*) FROM drafts WHERE created_at > '$TARGET'::timestamptz")"
check "migrations recorded" "$MIGRATIONS" "$(psql_dst -d "$DB" -c "SELECT count(*) FROM seaql_migrations")"

RESTORED_RLS=$(psql_dst -d "$DB" -c "$RLS_QUERY")
RLS_TABLES=$(grep -c . <<<"$SOURCE_RLS" || true)
FORCED=$(grep -c 'force=t' <<<"$RESTORED_RLS" || true)
# Compared whole; shown as counts (the list is printed only when they differ).
if [ "$SOURCE_RLS" = "$RESTORED_RLS" ]; then
  check "tables with RLS, and FORCE on each, same as the source" "$RLS_TABLES tables, $RLS_TABLES forced" \
    "$(grep -c . <<<"$RESTORED_RLS") tables, $FORCED forced"
else
  check "tables with RLS and their FORCE flag same as the source" "$SOURCE_RLS" "$RESTORED_RLS"
fi
check "tables with RLS enabled but not FORCEd" "" "$(grep 'force=f' <<<"$RESTORED_RLS" || true)"
check "tenant tables without RLS (user_id column, RLS off)" "" \
  "$(psql_dst -d "$DB" -c "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
       WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' AND a.attname = 'user_id' AND NOT a.attisdropped
         AND NOT c.relrowsecurity")"
check "policies same as the source" "$SOURCE_POLICIES" "$(psql_dst -d "$DB" -c "$POLICY_QUERY")"

check "owner role: superuser, bypassrls, createrole, owns the tables" "f t t t" \
  "$(psql_dst -d "$DB" -c "SELECT concat_ws(' ', r.rolsuper, r.rolbypassrls, r.rolcreaterole,
       NOT EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = 'public' AND t.tableowner <> r.rolname))
     FROM pg_roles r WHERE r.rolname = '$OWNER'")"
check "runtime role: superuser, bypassrls, inherit" "f f f" \
  "$(psql_dst -d "$DB" -c "SELECT concat_ws(' ', rolsuper, rolbypassrls, rolinherit) FROM pg_roles WHERE rolname = 'plinth_app'")"
check "app roles (plinth_*) that are superuser or bypass RLS" "" \
  "$(psql_dst -d "$DB" -c "SELECT string_agg(rolname, ' ') FROM pg_roles WHERE rolname LIKE 'plinth\_%' AND rolname <> '$OWNER' AND (rolsuper OR rolbypassrls)")"
check "objects owned by the runtime or app roles" "0" \
  "$(psql_dst -d "$DB" -c "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname LIKE 'plinth\_%' AND r.rolname <> '$OWNER'")"

psql_app_dst() {
  psql -X -q -A -t -v ON_ERROR_STOP=1 "postgres://plinth_app:$APP_PW@127.0.0.1:$PORT_DST/$DB" "$@"
}
# The error a refused statement gave ("" when it succeeded), to tell RLS or a missing
# grant apart from any other failure.
refusal() {
  local out
  if out=$(psql_app_dst -c "$1" 2>&1); then
    echo ""
  else
    grep -o -m1 -E "$2" <<<"$out" || echo "another error: $out"
  fi
}
AS_A="BEGIN; SET LOCAL ROLE plinth_user; SET LOCAL plinth.user_id = '$USER_A';"
check "runtime role logs in with its password" "plinth_app" "$(psql_app_dst -c "SELECT current_user" 2>&1)"
check "runtime role without SET ROLE: tables refused" "permission denied for table drafts" \
  "$(refusal "SELECT count(*) FROM drafts" "permission denied for table drafts")"
check "runtime role as plinth_user without the user setting: tenant rows seen" "users=0 drafts=0" \
  "$(psql_app_dst -c "BEGIN; SET LOCAL ROLE plinth_user;
      SELECT format('users=%s drafts=%s', (SELECT count(*) FROM users), (SELECT count(*) FROM drafts)); COMMIT;")"
EXPECTED_A=$(sed -E 's/.*drafts_a=([0-9]+).*/\1/' <<<"$EXPECTED_COUNTS")
check "runtime role as user A: users and drafts seen (only its own)" "users=1 drafts=$EXPECTED_A others=0" \
  "$(psql_app_dst -c "$AS_A SELECT format('users=%s drafts=%s others=%s', (SELECT count(*) FROM users),
      (SELECT count(*) FROM drafts), (SELECT count(*) FROM drafts WHERE user_id <> '$USER_A')); COMMIT;")"
check "sign-in lookup (SECURITY DEFINER, as plinth_anon) finds user A by e-mail" "$USER_A" \
  "$(psql_app_dst -c "BEGIN; SET LOCAL ROLE plinth_anon; SELECT id FROM priv.login_lookup('drill-a@example.com'); COMMIT;")"
check "runtime role as user A: writing a draft of user B" "new row violates row-level security policy" \
  "$(refusal "$AS_A INSERT INTO drafts (id, user_id, title) VALUES (gen_random_uuid(), '$USER_B', 'cross-tenant'); COMMIT;" \
    "new row violates row-level security policy")"
check "runtime role as user A: changing user B's drafts" "UPDATE 0" \
  "$(psql -X -A -t "postgres://plinth_app:$APP_PW@127.0.0.1:$PORT_DST/$DB" \
    -c "$AS_A UPDATE drafts SET title = 'cross-tenant' WHERE user_id = '$USER_B'; COMMIT;" 2>&1 | grep -E '^UPDATE')"
phase_done "checks"

# ---------------------------------------------------------------------------- report
echo
echo "== Plinth restore drill =="
echo "PostgreSQL $PG_VERSION, $(pgbackrest version), plinth $("$PLINTH_BIN" --version 2>/dev/null | awk '{print $NF}')"
echo "source 127.0.0.1:$PORT_SRC -> restored 127.0.0.1:$PORT_DST (run as ${RUN_AS:-$(id -un)}), repository: posix, aes-256-cbc"
echo "target time (--type=time): $TARGET"
echo "source before T:  $EXPECTED_COUNTS"
echo "source at the end: $AFTER_COUNTS"
echo "restored:          $RESTORED_COUNTS"
echo
printf '  %s\n' "${BACKUP_INFO//$'\n'/$'\n'  }"
echo
printf '%s\n' "${REPORT[@]}"
echo
echo "timings:"
printf '  %s\n' "${TIMINGS[@]}"
echo "total: $((SECONDS - STARTED))s"
if [ "${PLINTH_DRILL_TAMPER:-}" = 1 ]; then
  expected_failures="row counts as of T
known row (title | description | price) as of T
tables with RLS and their FORCE flag same as the source
tables with RLS enabled but not FORCEd
owner role: superuser, bypassrls, createrole, owns the tables
runtime role: superuser, bypassrls, inherit
app roles (plinth_*) that are superuser or bypass RLS
objects owned by the runtime or app roles
runtime role as plinth_user without the user setting: tenant rows seen
runtime role as user A: users and drafts seen (only its own)
runtime role as user A: writing a draft of user B
runtime role as user A: changing user B's drafts"
  if [ "$(printf '%s\n' "${FAILED[@]}")" = "$expected_failures" ]; then
    echo "tamper test passed: the damage failed exactly the ${#FAILED[@]} checks that must catch it"
    exit 0
  fi
  echo "TAMPER TEST FAILED: expected these checks to fail:"
  echo "$expected_failures"
  exit 1
fi
if [ "$FAILURES" != 0 ]; then
  echo "RESTORE DRILL FAILED: $FAILURES check(s)"
  exit 1
fi
echo "restore drill passed: ${#REPORT[@]} checks"
