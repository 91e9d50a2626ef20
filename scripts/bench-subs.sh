#!/usr/bin/env bash
# Benchmark of herald-subs, App Store path (issue: herald-subs). N App Store
# Server Notifications V2 (default 20,000) over M subscriptions (N/4),
# minted with Apple's test chain (tests/node/mint_appstore.js: ES256 JWS,
# each with a signed transaction and renewal info, three signature checks
# per notification), go into herald-devbroker; herald-subs verifies, maps
# and applies them to the entitlements in Redis: notifications/s and peak
# RSS. In the same run: openssl speed's ECDSA P-256 verify rate on one core
# (the limit: verify/s / 3 notifications/s), and Apple's own
# @apple/app-store-server-library verifying the same notifications
# (tests/node/bench_subs_apple.js).
cd "$(dirname "$0")/.."

VECTORS=../shared/vectors/appstore
if [ ! -d "$VECTORS/certs" ]; then
    echo "bench-subs: skipped: $VECTORS (Apple's test chain) is missing" >&2
    exit 0
fi

. scripts/lib.sh

N=${N:-20000}
M=${M:-$((N / 4))}
[ "$M" -ge 1 ] || M=1
CERTS=$VECTORS/certs

# The mock cluster keeps at most 5 MiB per partition and a notification is
# ~9.7 KB: one partition per 250 notifications (at least 32) keeps them all.
PARTS=$(( N / 250 > 32 ? N / 250 : 32 ))
start_redis
start_broker --topics herald.subscriptions:$PARTS,herald.entitlements:8
field() { echo "$1" | sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p"; }

echo "minting $N notifications over $M subscriptions ..." >&2
node tests/node/mint_appstore.js --certs "$CERTS" --count "$N" --subscriptions "$M" \
    >"$WORK/notes.txt"
kcat -P -b "$BROKERS" -t herald.subscriptions -K '|' <"$WORK/notes.txt"
stored=$(topic_count herald.subscriptions)
if [ "$stored" -ne "$N" ]; then
    echo "bench-subs: the broker kept $stored of $N notifications (see $WORK/devbroker.log)" >&2
    exit 1
fi

# --- herald-subs ----------------------------------------------------------------
echo "herald-subs: verifying and applying $N notifications ..." >&2
start_worker subs "$WORK/subs.log" HERALD_LOG_LEVEL=warn \
    HERALD_APPSTORE_ROOT_CERTS="$CERTS/testCA.pem" HERALD_APPSTORE_STRICT_X509=false \
    HERALD_APPSTORE_BUNDLE_ID=com.example HERALD_APPSTORE_ENVIRONMENTS=Sandbox ${XENV:-}
wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_events_processed_total{' "$N" 900 || true
t1=$(date +%s.%N)
PROCESSED=$(metric "$METRICS" 'herald_events_processed_total{')
APPLIED=$(metric "$METRICS" 'herald_subs_applied_total{')
VFAIL=$(metric "$METRICS" 'herald_subs_verification_failures_total{')
OUTCOMES=$(subs_outcomes "$METRICS")
RATE=$(echo "$PROCESSED / ($t1 - $t0)" | bc)
RSS=$(peak_rss_mb "$WORKER_PID")
CPU=$(cpu_s "$WORKER_PID")
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true

# --- the limit: ECDSA P-256 verify on one core ------------------------------------
echo "openssl speed ecdsap256 ..." >&2
VERIFY=$(openssl speed -seconds 3 ecdsap256 2>/dev/null |
    awk '/256 bits ecdsa \(nistp256\)/ { printf "%d\n", $NF }')
LIMIT=$(( ${VERIFY:-0} / 3 ))

# --- the peer: Apple's library ----------------------------------------------------
echo "@apple/app-store-server-library: verifying the same $N notifications ..." >&2
peer=$(node tests/node/bench_subs_apple.js --notes "$WORK/notes.txt" \
    --root "$CERTS/testCA.der" --bundle com.example) || true
PEER_OK=$(field "$peer" verified); PEER_FAILED=$(field "$peer" failed)
PEER_RATE=$(field "$peer" rate | cut -d. -f1); PEER_RSS=$(field "$peer" rss_mb)
if [ "${PEER_OK:-0}" -eq 0 ]; then
    PEER_NOTE="verified none: Apple's library rejected every notification (see above)"
    PEER_RATIO="n/a"
else
    PEER_NOTE="${PEER_OK} verified, ${PEER_FAILED:-?} failed; RSS ${PEER_RSS} MB"
    PEER_RATIO="$(echo "scale=1; $RATE / $PEER_RATE" | bc)x"
fi

pct() { echo "scale=0; 100 * $1 / ${2:-1}" | bc; }
cat <<OUT

herald-subs benchmark (App Store): $N notifications over $M subscriptions,
Apple's test chain, 3 ES256 signatures each (notification, transaction,
renewal info), $PARTS partitions; one machine ($(nproc) cores)

  herald-subs               $(printf '%8d' "$RATE") notifications/s   peak RSS ${RSS} MB  ($PROCESSED processed, $VFAIL verify failures; worker CPU s $CPU)
                            applied: $APPLIED (${OUTCOMES:-none})
  openssl ECDSA P-256       $(printf '%8d' "${VERIFY:-0}") verify/s on one core (limit: $LIMIT notifications/s)
  Apple's library (Node)    $(printf '%8d' "${PEER_RATE:-0}") notifications/s   ($PEER_NOTE)
  herald-subs / the limit: $(pct "$RATE" "$LIMIT")%  (target >= 50%)
  herald-subs / Apple's library: $PEER_RATIO  (target >= 5)
  herald-subs peak RSS: ${RSS} MB  (target <= 64 MB)
OUT
[ "$PROCESSED" -ge "$N" ] || { echo "herald-subs processed $PROCESSED of $N" >&2; exit 1; }
