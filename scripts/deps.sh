#!/usr/bin/env bash
# Install what Herald needs to build, test and run its demo on Debian 12.
# Idempotent and quiet when everything is already present; works as root or
# through sudo.
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      librdkafka-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev
      libjwt-dev libssl-dev libmicrohttpd-dev libcmocka-dev
      redis-server redis-tools kcat curl bc)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
# Node.js runs the fake HTTP servers of the tests and the demo (built-in
# modules only, no npm packages); any install of it will do.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
