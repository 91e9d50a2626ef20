#!/usr/bin/env bash
# kubectl kustomize renders deploy/kustomize/base and every overlay, and the
# rendered objects validate against the Kubernetes, KEDA and Prometheus
# Operator schemas (validate_chart.mjs objects).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v kubectl >/dev/null || { echo "SKIP: kubectl missing (scripts/deps.sh installs kubernetes-client)"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/herald-kustomize.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HERALD_NODE_MODULES=$root/tests/node/node_modules
status=0
for dir in deploy/kustomize/base deploy/kustomize/overlays/*/; do
    dir=${dir%/}
    echo "== kubectl kustomize $dir"
    out=$work/$(echo "$dir" | tr / _).yaml
    kubectl kustomize "$dir" >"$out" || { echo "FAIL: $dir does not render"; status=1; continue; }
    node tests/deploy/validate_chart.mjs objects "$out" || status=1
done
exit $status
