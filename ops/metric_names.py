#!/usr/bin/env python3
"""The metric names the dashboard and the alerts use, checked against a server's /metrics.

    ops/metric_names.py list                 # every metric name used, and where
    ops/metric_names.py check SOURCE         # SOURCE: a URL (http://127.0.0.1:9091/metrics)
                                             # or a file holding a /metrics answer
    ops/metric_names.py rules                # the dashboard's queries as recording rules,
                                             # for `promtool check rules` (PromQL syntax)
    ops/metric_names.py lint                 # the dashboard's shape: ids, grid, data source,
                                             # variables

`check` exits 1 naming each metric used but not exported. Names Prometheus records itself
(`up`, `scrape_*`) are not looked for. A labelled family (a counter or gauge with labels)
appears in /metrics only once it has a sample: run the check against a server that has
served some traffic (a GraphQL error, a Stripe webhook, a WebSocket, a queued mail, a
background task run, Redis configured). PLINTH_METRICS_TOKEN, when set, is sent as a
bearer token. Standard library only.
"""
import json
import os
import re
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ops/grafana/plinth.json"
ALERTS = ROOT / "ops/prometheus/alerts.yml"
# Series Prometheus writes for every scrape target: no server exports them.
PROMETHEUS_OWN = re.compile(r"^(up|scrape_[a-z_]+)$")
KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "inf", "nan", "start", "end"}
# Grafana's variables, given values that keep the query valid PromQL.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}


def metric_names(expr):
    """The metric names a PromQL expression selects."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # a function, an aggregation or an operator
        names.add(m.group(0))
    return names


def dashboard_queries(path=DASHBOARD):
    """(panel title, expression) for every query of the dashboard, variables included."""
    dash = json.loads(path.read_text())
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$", q or "")
        if m:
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def alert_queries(path=ALERTS):
    """(alert name, expression) for every rule of the alerts file. The file is YAML; its
    `expr:` values are read as plain scalars or as block scalars (| or >), the forms it
    uses, so no YAML library is needed."""
    lines = path.read_text().splitlines()
    out, name = [], "?"
    for i, line in enumerate(lines):
        m = re.match(r"^\s*-?\s*(alert|record):\s*(\S+)", line)
        if m:
            name = m.group(2)
        m = re.match(r"^(\s*)-?\s*expr:\s*(.*?)\s*$", line)
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2)
        if value[:1] in "|>":
            block = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt.strip())
            value = " ".join(block)
        elif value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        out.append((name, value))
    return out


def used_names():
    """metric name -> places that use it."""
    used = {}
    for source, queries in (("dashboard", dashboard_queries()), ("alerts", alert_queries())):
        for where, expr in queries:
            for name in metric_names(expr):
                used.setdefault(name, []).append(f"{source}: {where}")
    return used


def exported_names(source):
    """The sample names of a /metrics answer (a URL or a file)."""
    if re.match(r"^https?://", source):
        req = urllib.request.Request(source)
        token = os.environ.get("PLINTH_METRICS_TOKEN")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
    else:
        text = Path(source).read_text()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def dashboard_problems(path=DASHBOARD):
    """What would make Grafana refuse the file or show a broken panel."""
    dash = json.loads(path.read_text())
    problems, ids = [], set()
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in dash:
            problems.append(f"dashboard: no {key}")
    for p in dash.get("panels", []):
        title = p.get("title", "?")
        if p.get("id") in ids:
            problems.append(f"panel {title!r}: id {p.get('id')} used twice")
        ids.add(p.get("id"))
        grid = p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            problems.append(f"panel {title!r}: gridPos {grid} is not within the 24-column grid")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {title!r}: its data source is not the $datasource variable")
        targets = p.get("targets", [])
        if not targets or not all(t.get("expr") for t in targets):
            problems.append(f"panel {title!r}: a query without an expression")
        for t in targets:
            for var in re.findall(r"\$\{?(\w+)\}?", t.get("expr", "")):
                if not var.startswith("__") and var not in variables:
                    problems.append(f"panel {title!r}: ${var} is not a dashboard variable")
    return problems


def main(argv):
    if len(argv) < 2 or argv[1] not in ("list", "check", "rules", "lint") or (argv[1] == "check" and len(argv) != 3):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    if argv[1] == "rules":
        print("# Generated by ops/metric_names.py rules: the dashboard's queries, for promtool.")
        print("groups:\n  - name: dashboard-queries\n    rules:")
        for i, (where, expr) in enumerate(dashboard_queries()):
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            print(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(expr)}"
                  f"\n        labels:\n          panel: {json.dumps(where)}")
        return 0
    if argv[1] == "lint":
        problems = dashboard_problems()
        print("\n".join(problems) or f"{DASHBOARD.name}: ok ({len(dashboard_queries())} queries)")
        return 1 if problems else 0
    used = used_names()
    if argv[1] == "list":
        for name in sorted(used):
            print(f"{name}\t{'; '.join(sorted(set(used[name])))}")
        return 0
    try:
        exported = exported_names(argv[2])
    except (OSError, ValueError) as e:
        print(f"cannot read {argv[2]}: {e}", file=sys.stderr)
        return 1
    missing = sorted(n for n in used if n not in exported and not PROMETHEUS_OWN.match(n))
    for name in missing:
        print(f"not exported: {name}  (used by {'; '.join(sorted(set(used[name])))})")
    checked = len([n for n in used if not PROMETHEUS_OWN.match(n)])
    if missing:
        print(f"{len(missing)} of {checked} metric names used by the dashboard and alerts are not in {argv[2]}")
        return 1
    print(f"all {checked} metric names used by the dashboard and alerts are exported ({len(exported)} series names in {argv[2]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
