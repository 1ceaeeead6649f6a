#!/usr/bin/env bash
# Checks what deploy/ holds against the code: the Prometheus config and alert rules
# (promtool check, and the alerts' unit tests), every PromQL expression of the
# Grafana dashboard, the systemd units (systemd-analyze verify), that every
# metric the alerts and the dashboard name is one the gateway or the worker defines,
# and docker-compose.yml with the Dockerfile (scripts/check-compose.sh). Part of ./scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> deploy/: promtool check config, check rules, test rules"
promtool check config deploy/prometheus/prometheus.yml >/dev/null
(cd deploy/prometheus && promtool test rules alerts_test.yml >/dev/null)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The dashboard's queries, with Grafana's variables filled in, as recording rules:
# promtool parses each one.
python3 - deploy/grafana/tenantgate.json "$work/dashboard-rules.yml" <<'PY'
import json, sys
dash = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
PY
promtool check rules "$work/dashboard-rules.yml" >/dev/null

# The systemd units parse (every key known, every value valid); the binaries are
# not installed here, so each unit is checked with ExecStart=/bin/true.
if command -v systemd-analyze >/dev/null; then
    for unit in deploy/systemd/*.service; do
        sed 's|^ExecStart=.*|ExecStart=/bin/true|' "$unit" >"$work/$(basename "$unit")"
    done
    report=$(systemd-analyze verify "$work"/*.service 2>&1 || true)
    [ -z "$report" ] || { echo "!! systemd-analyze verify deploy/systemd:"; echo "$report"; exit 1; }
fi

# Every metric named in deploy/ is defined in the code (a rename fails here).
defined=$(grep -rhoE '"tenantgate_[a-z_]+"' gateway/src worker/src shared/src | tr -d '"' | sort -u)
missing=0
for name in $(grep -rhoE 'tenantgate_[a-z_]+' deploy/prometheus deploy/grafana | sort -u); do
    base=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
    if ! grep -qx "$base" <<<"$defined"; then
        echo "!! deploy/ names $name, which no code defines"
        missing=1
    fi
done
[ "$missing" = 0 ]
# docs/metrics.md lists exactly the metrics the code defines.
documented=$(grep -oE '^\| `tenantgate_[a-z_]+`' docs/metrics.md | grep -oE 'tenantgate_[a-z_]+' | sort -u)
if [ "$documented" != "$defined" ]; then
    echo "!! docs/metrics.md and the code disagree:"
    diff <(echo "$documented") <(echo "$defined") || true
    exit 1
fi

# docker-compose.yml and the Dockerfile, statically (no Docker engine here).
./scripts/check-compose.sh
echo "    deploy/ checks passed"
