#!/usr/bin/env bash
# deploy/Dockerfile builds the way the README's build does: its build stage
# installs exactly the build packages of scripts/deps.sh (less what only the
# tests and the demo need), builds with the `release` preset, runs as a
# numeric non-root user, has an exec-form ENTRYPOINT and OCI labels, and
# copies every herald-* worker binary. (No Docker engine runs here: this
# reads the file; deploy/README.md says so.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
df=deploy/Dockerfile
fail=0 pass=0
check() { if eval "$2"; then pass=$((pass + 1)); else echo "FAIL: $1"; fail=$((fail + 1)); fi; }

# Packages of scripts/deps.sh's pkgs=( ... ) array.
deps=$(sed -n '/^pkgs=(/,/)/p' scripts/deps.sh | tr -d '()' | sed 's/pkgs=//' | tr -s ' \n' '\n' | grep -v '^$' | sort)
# Needed only by tests, the demo and the benchmarks, not by the build.
test_only="libcmocka-dev redis-server redis-tools kcat curl bc nghttp2-client"
want=$(comm -23 <(echo "$deps") <(echo "$test_only" | tr ' ' '\n' | sort))
# Packages the build stage installs (first apt-get install in the file).
build=$(awk '/^FROM .* AS build/ {b=1} /^FROM / && !/AS build/ {b=0} b' "$df" |
    sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' |
    grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|DEBIAN_FRONTEND=noninteractive|var|lists|y|no-install-recommends)$' | sort -u)
check "build stage packages differ from scripts/deps.sh: $(diff <(echo "$want") <(echo "$build") | tr '\n' ' ')" \
    '[ "$want" = "$build" ]'
check "build stage is not Debian 12" 'grep -qE "^FROM debian:12(-[a-z]+)? AS build" $df'
check "runtime stage is not Debian 12" 'grep -E "^FROM " $df | tail -1 | grep -qE "debian:12"'
check "not built with the release preset" 'grep -q "cmake --preset release" $df'
check "no numeric non-root USER" 'grep -qE "^USER [1-9][0-9]*(:[0-9]+)?$" $df'
check "ENTRYPOINT not in exec form" 'grep -qE "^ENTRYPOINT \[\"/usr/local/bin/herald-[a-z]+\"" $df'
for l in org.opencontainers.image.title org.opencontainers.image.source org.opencontainers.image.version org.opencontainers.image.licenses; do
    check "no label $l" 'grep -q "$l" $df'
done
for w in fanout unread push email subs guard; do
    check "herald-$w is not a target of the build" 'grep -rq "herald-$w" workers/$w/CMakeLists.txt'
done
check "the binaries are not copied" 'grep -q "COPY --from=build /src/build/release/bin/" $df'
check "runtime libraries missing" 'for p in librdkafka1 libhiredis0.14 libjansson4 libcurl4 libjwt0 libssl3 libmicrohttpd12 ca-certificates; do grep -q "$p" $df || exit 1; done'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
