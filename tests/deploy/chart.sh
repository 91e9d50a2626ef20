#!/usr/bin/env bash
# The Helm chart, rendered without helm (none in Debian 12): builds
# tests/deploy/helmrender (Go text/template + sprig, Debian packages, no
# module proxy), renders helm/herald with its defaults and with
# tests/deploy/chart-all-options.yaml, validates every object against the
# Kubernetes, KEDA and Prometheus Operator schemas and the chart's promises
# (validate_chart.mjs), checks values.schema.json accepts the defaults and
# rejects bad values, that the chart refuses what it must refuse, and that
# helm/herald/files/alerts.yaml is dashboards/alerts.yaml.
#
#   tests/deploy/chart.sh [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v go >/dev/null || { echo "SKIP: go missing (scripts/deps.sh installs golang-go)"; exit 77; }
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/herald-chart.XXXXXX")}
mkdir -p "$work"
export HERALD_NODE_MODULES=$root/tests/node/node_modules
status=0

GOCACHE=$work/gocache GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
    go build -o "$work/helmrender" ./tests/deploy/helmrender
R=$work/helmrender

echo "== defaults"
"$R" --notes --values-out "$work/defaults.json" helm/herald >"$work/defaults.yaml"
node tests/deploy/validate_chart.mjs chart helm/herald/values.schema.json \
    "$work/defaults.json" "$work/defaults.yaml" || status=1

echo "== every option (tests/deploy/chart-all-options.yaml)"
"$R" --values-out "$work/all.json" -f tests/deploy/chart-all-options.yaml helm/herald >"$work/all.yaml"
# Bad values for the schema: each must be rejected.
node -e '
const fs = require("fs"), [dir] = process.argv.slice(1);
const base = () => JSON.parse(fs.readFileSync(dir + "/defaults.json", "utf8"));
const bad = {
  replicas_string: v => { v.workers.unread.replicas = "three"; },
  kind_daemonset: v => { v.workers.guard.kind = "DaemonSet"; },
  email_min_zero: v => { v.workers.email.autoscaling = {minReplicaCount: 0}; },
  unknown_key: v => { v.workers.push.replica = 2; },
  lag_threshold_zero: v => { v.workerDefaults.autoscaling.lagThreshold = "0"; },
};
for (const [k, f] of Object.entries(bad)) { const v = base(); f(v); fs.writeFileSync(`${dir}/bad-${k}.json`, JSON.stringify(v)); }' "$work"
bads=()
for f in "$work"/bad-*.json; do bads+=(--bad "$f"); done
node tests/deploy/validate_chart.mjs chart helm/herald/values.schema.json \
    "$work/all.json" "$work/all.yaml" "${bads[@]}" || status=1

echo "== the chart refuses what it must"
refuse() { # description, then --set-string arguments
    local what=$1; shift
    if "$R" "$@" helm/herald >/dev/null 2>"$work/err"; then
        echo "FAIL rendered although $what"; status=1
    else
        echo "ok: refuses $what: $(cut -c1-150 "$work/err")"
    fi
}
cat >"$work/email0.yaml" <<'YAML'
workers: {email: {enabled: true, autoscaling: {enabled: true, minReplicaCount: 0}}}
YAML
refuse "herald-email scaling to zero" -f "$work/email0.yaml"
cat >"$work/grace.yaml" <<'YAML'
workers: {unread: {terminationGracePeriodSeconds: 20}}
YAML
refuse "a grace period below HERALD_SHUTDOWN_TIMEOUT_MS" -f "$work/grace.yaml"
cat >"$work/max.yaml" <<'YAML'
workers: {unread: {kafka: {partitions: 4}, autoscaling: {enabled: true, maxReplicaCount: 8}}}
YAML
refuse "maxReplicaCount above the partitions" -f "$work/max.yaml"
refuse "HERALD_INSTANCE_ID on a Deployment" --set-string env.HERALD_INSTANCE_ID=pod-a
cat >"$work/sqs.yaml" <<'YAML'
workers: {push: {enabled: true, env: {HERALD_SOURCE: sqs}, autoscaling: {enabled: true}}}
YAML
refuse "an SQS trigger without a queue URL" -f "$work/sqs.yaml"

echo "== helm/herald/files/alerts.yaml is dashboards/alerts.yaml"
if cmp -s helm/herald/files/alerts.yaml dashboards/alerts.yaml; then echo ok; else
    echo "FAIL: cp dashboards/alerts.yaml helm/herald/files/alerts.yaml"; status=1; fi
[ $status -eq 0 ] && echo "chart: all checks passed"
exit $status
