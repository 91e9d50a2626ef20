#!/usr/bin/env bash
# Install what Herald needs to build, test and run its demo on Debian 12:
# Debian packages with apt-get, then the npm packages of tests/node (the
# fauxqs SQS emulator and the sqs-consumer benchmark peer) with `npm ci`.
# Idempotent and quiet when everything is already present; works as root or
# through sudo, from any directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pkgs=(build-essential cmake pkg-config
      librdkafka-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev
      libjwt-dev libssl-dev libmicrohttpd-dev libcmocka-dev
      redis-server redis-tools kcat curl bc nghttp2-client)
# tests/deploy (issue 16): promtool and a real Prometheus for the alert rules
# and dashboards, Go with sprig and yaml.v3 sources for the chart renderer
# (built offline, GOPATH=/usr/share/gocode).
pkgs+=(prometheus golang-go golang-github-masterminds-sprig-dev
       golang-gopkg-yaml.v3-dev)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
# Node.js runs the fake HTTP servers of the tests and the demo (built-in
# modules only) and, with npm, the SQS emulator and benchmark peer of
# tests/node; any install of them will do (those packages want Node >= 20).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# `kubectl kustomize` for deploy/kustomize: any kubectl will do; Debian's is
# in kubernetes-client.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)

if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, as the calling user, only when tests/node/package-lock.json
# is not what was last installed: `npm ci` writes node_modules/.package-lock.json
# and we then keep a copy of the lock file next to it as the stamp (npm ci
# removes node_modules first, so a failed install leaves no stamp behind).
nodedir=$root/tests/node
stamp=$nodedir/node_modules/.herald-package-lock.json
if [ ! -f "$nodedir/node_modules/.package-lock.json" ] ||
   ! cmp -s "$nodedir/package-lock.json" "$stamp"; then
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] ||
        echo "deps: warning: node $(node --version) is older than v20, which tests/node's packages need" >&2
    echo "deps: installing npm packages of tests/node" >&2
    npm ci --prefix "$nodedir" --no-audit --no-fund --loglevel=error >/dev/null
    cp "$nodedir/package-lock.json" "$stamp"
fi
