#!/usr/bin/env bash
# Checks that every metric the dashboard (ops/grafana/plinth.json) and the alerts
# (ops/prometheus/alerts.yml) use is exported by a running server.
#
#   ops/check-metric-names.sh http://127.0.0.1:9091/metrics   # a running server
#   ops/check-metric-names.sh metrics.txt                      # a saved /metrics answer
#
# PLINTH_METRICS_TOKEN, when set, is sent as a bearer token. Exit 1 names each missing
# metric and where it is used. A labelled family appears only after its first sample, so
# point it at a server that has had some traffic (see ops/metric_names.py).
set -euo pipefail
if [ $# -ne 1 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
exec python3 "$(dirname "$0")/metric_names.py" check "$1"
