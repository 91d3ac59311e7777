#!/usr/bin/env bash
# The request edge under hostile documents, on the release server over loopback: how
# long the server takes to refuse a fragment bomb (`...F0` whose fragments each spread
# the next twice, 20 and 22 levels: 2^20 and 2^22 fields after expansion), 330 aliased
# 100-item lists, and a 900 KiB document (under the 1 MiB body limit); and how /healthz answers while two clients send
# bombs without pause. Prints median / p99 / max in milliseconds (wall time seen by the
# client on loopback, which bounds the server's time from above).
# Usage: bench/edge.sh [requests per case]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200}"
PORT="${PORT:-18182}"
. bench/serve.sh
serve RUST_LOG=error

python3 - "$PORT" "$N" <<'PY'
import http.client, json, statistics, sys, threading, time
port, n = int(sys.argv[1]), int(sys.argv[2])

def bomb(levels):
    frags = [f"fragment F{i} on Query {{ ...F{i+1} ...F{i+1} }}" for i in range(levels)]
    frags.append(f"fragment F{levels} on Query {{ __typename }}")
    return "query { ...F0 } " + " ".join(frags)

lists = "{ " + " ".join(f"a{i}: drafts(first: 100) {{ edges {{ node {{ id title description }} }} }}" for i in range(330)) + " }"
huge = "{ " + "__typename " * (900 * 1024 // 11) + "}"

def post(conn, doc):
    body = json.dumps({"query": doc})
    t = time.perf_counter()
    conn.request("POST", "/graphql", body, {"content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return (time.perf_counter() - t) * 1000, data

def stats(ms):
    ms = sorted(ms)
    return f"median {statistics.median(ms):.2f}  p99 {ms[int(len(ms) * 0.99) - 1]:.2f}  max {ms[-1]:.2f} ms"

for name, doc in [("fragment bomb, 20 levels", bomb(20)), ("fragment bomb, 22 levels", bomb(22)),
                  ("330 aliased drafts(first: 100)", lists), ("900 KiB document", huge)]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times, codes = [], set()
    for _ in range(n):
        ms, data = post(conn, doc)
        times.append(ms)
        for e in json.loads(data).get("errors", []):
            codes.add((e.get("extensions") or {}).get("code"))
    print(f"{name:34} {len(doc):>8} bytes  {stats(times)}  codes {sorted(c for c in codes if c)}")

stop = threading.Event()
def attacker():
    conn = http.client.HTTPConnection("127.0.0.1", port)
    doc = bomb(22)
    while not stop.is_set():
        post(conn, doc)
threads = [threading.Thread(target=attacker) for _ in range(2)]
for t in threads: t.start()
time.sleep(0.5)
conn = http.client.HTTPConnection("127.0.0.1", port)
health = []
for _ in range(n):
    t = time.perf_counter()
    conn.request("GET", "/healthz"); conn.getresponse().read()
    health.append((time.perf_counter() - t) * 1000)
stop.set()
for t in threads: t.join()
print(f"{'/healthz during two bomb streams':34} {'':>8}        {stats(health)}")
PY
