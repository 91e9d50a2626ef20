#!/usr/bin/env bash
# No dead panels: a real Prometheus (Debian's `prometheus`) scrapes a
# running demo fleet (tests/deploy/fleet.sh) every second, with
# dashboards/alerts.yaml loaded as its rule file; after at least two scrapes
# of every worker, every PromQL expression of every dashboard panel and
# every alert rule is evaluated through the HTTP API
# (tests/deploy/check_queries.mjs): each parses, every panel returns at least
# one series, every metric name is on some worker's /metrics. Prometheus
# must also report every rule healthy (evaluated without error).
#
#   BIN=build/dev/bin tests/deploy/dead_panels.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export BIN=${BIN:-build/dev/bin}
case $BIN in /*) ;; *) BIN=$root/$BIN ;; esac

for tool in prometheus promtool redis-server kcat node curl; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (scripts/deps.sh installs it)"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/herald-panels.XXXXXX")
fleet_pid="" prom_pid=""
cleanup() {
    [ -z "$prom_pid" ] || { kill "$prom_pid" 2>/dev/null; wait "$prom_pid" 2>/dev/null || true; }
    [ -z "$fleet_pid" ] || { kill "$fleet_pid" 2>/dev/null; wait "$fleet_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

echo "== promtool check rules dashboards/alerts.yaml"
promtool check rules dashboards/alerts.yaml

echo "== starting the fleet"
bash tests/deploy/fleet.sh "$work" 2>"$work/fleet.log" &
fleet_pid=$!
for _ in $(seq 1800); do
    [ -f "$work/ready" ] && break
    kill -0 "$fleet_pid" 2>/dev/null || { echo "fleet exited:"; cat "$work/fleet.log"; exit 1; }
    sleep 0.1
done
[ -f "$work/ready" ] || { echo "fleet not ready:"; cat "$work/fleet.log"; exit 1; }
cat "$work/fleet.log"

# The names every worker exports (TYPE lines; histograms add their series).
: >"$work/names"
while read -r worker addr; do
    curl -sf "http://$addr/metrics" | awk '/^# TYPE / {
        print $3; if ($4 == "histogram") { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" } }' \
        >>"$work/names"
done <"$work/targets"
sort -u -o "$work/names" "$work/names"
echo "== $(wc -l <"$work/names") metric names on the workers' /metrics"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo $((20000 + RANDOM % 40000)))
{
    echo "global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}"
    echo "rule_files: [\"$root/dashboards/alerts.yaml\"]"
    echo "scrape_configs:"
    while read -r worker addr; do
        echo "  - job_name: herald-$worker"
        echo "    static_configs: [{targets: [\"$addr\"]}]"
    done <"$work/targets"
} >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address=127.0.0.1:$port --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
PROM=http://127.0.0.1:$port
workers=$(wc -l <"$work/targets")
echo "== prometheus on $PROM, waiting for two scrapes of each of the $workers workers"
ok=""
for _ in $(seq 600); do
    n=$(curl -sf "$PROM/api/v1/query" --data-urlencode 'query=count(count_over_time(up[1m]) >= 3 and up == 1)' |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const r=JSON.parse(s).data.result;console.log(r.length?r[0].value[1]:0)}catch{console.log(0)}})' || echo 0)
    [ "$n" = "$workers" ] && { ok=1; break; }
    sleep 0.2
done
[ -n "$ok" ] || { echo "Prometheus did not scrape every worker twice"; tail "$work/prometheus.log"; exit 1; }
# Rate windows of 1m need two samples; the fleet keeps counters moving.
sleep 3

echo "== evaluating every dashboard and alert expression"
status=0
HERALD_NODE_MODULES=$root/tests/node/node_modules \
    node tests/deploy/check_queries.mjs "$PROM" "$work/names" dashboards/*.json dashboards/alerts.yaml ||
    status=1

echo "== rule health as Prometheus evaluates dashboards/alerts.yaml"
curl -sf "$PROM/api/v1/rules" | node -e '
let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    const groups = JSON.parse(s).data.groups;
    let ok = 0, bad = 0;
    for (const g of groups) for (const r of g.rules)
        if (r.health === "ok") ok++; else { bad++; console.log(`FAIL rule ${r.name}: ${r.health} ${r.lastError || ""}`); }
    console.log(`rules: ${ok} healthy, ${bad} not`);
    process.exit(bad || !ok ? 1 : 0);
});' || status=1
exit $status
