#!/usr/bin/env bash
# Loopback load on the release server: `me` (a read through the RLS transaction) and
# `login` (argon2id + session writes), measured with wrk. Prints wrk's latency
# distribution and throughput for each. Usage: bench/load.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CONNS="${2:-16}"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
PORT="${PORT:-18181}"
. bench/serve.sh

# One session sends thousands of requests a minute: lift the Free plan's request rate.
sed 's/^api_requests_per_minute = 60$/api_requests_per_minute = 100000000/' plans.toml > "$DATA/plans.toml"
serve PLINTH_PLANS_FILE="$DATA/plans.toml" \
  PLINTH_LOGIN_LIMIT_PER_EMAIL=100000000 PLINTH_LOGIN_LIMIT_PER_IP=100000000 \
  PLINTH_SIGNUP_LIMIT_PER_IP=100000000 PLINTH_LOGIN_CEILING_PER_EMAIL=100000000

export EMAIL="bench@example.com" PASSWORD="bench password 1"
TOKEN=$(curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
  -d "{\"query\":\"mutation { register(input: {email: \\\"$EMAIL\\\", password: \\\"$PASSWORD\\\"}) { accessToken } }\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["register"]["accessToken"])')
export TOKEN
curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
  -d '{"query":"{ me { id } }"}' | grep -q '"me":{"id"' || { echo "me does not answer"; exit 1; }

echo "== me: ${SECS}s, $CONNS connections, 2 wrk threads (server, Postgres and wrk share 2 cores)"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/me.lua "http://127.0.0.1:$PORT/graphql"
for i in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
    -d "{\"query\":\"mutation { createDraft(input: {title: \\\"draft $i\\\", priceCents: $i}) { id } }\"}" >/dev/null
done
echo "== drafts(first: 20) of a user with 200 drafts: ${SECS}s, $CONNS connections"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/drafts.lua "http://127.0.0.1:$PORT/graphql"
echo "== login: ${SECS}s, $CONNS connections (argon2id m=19 MiB t=2 p=1 per request)"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/login.lua "http://127.0.0.1:$PORT/graphql"
echo "== login with an unknown e-mail: same answer, should take the same time"
EMAIL="nobody@example.com" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/login.lua "http://127.0.0.1:$PORT/graphql"
errors=$(curl -sf "http://127.0.0.1:$PORT/metrics" | grep '^plinth_graphql_errors_total' || true)
echo "== GraphQL errors during the run: ${errors:-none}"
