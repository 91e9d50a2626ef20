#!/usr/bin/env bash
# Benchmark of herald-subs, Google Play path. N Real-time developer
# notifications (default 5,000; SUBSCRIPTION_RENEWED, Pub/Sub push bodies)
# over M purchases (N/5) go into herald-devbroker; herald-subs reads each
# purchase back from a fake Play Developer API (tests/harness/fake_http.js,
# HTTPS with a throw-away CA, every answer delayed LATENCY_MS, default 50,
# as a remote API is) and applies it to the entitlements in Redis:
# notifications/s and peak RSS. In the same run, against the same fake:
# h2load with the worker's calls in flight (8: the limit of this design)
# and with one call at a time (what a consumer that awaits each call, the
# usual Node RTDN handler, can reach).
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-5000}
M=${M:-$((N / 5))}
[ "$M" -ge 1 ] || M=1
LATENCY_MS=${LATENCY_MS:-50}
INFLIGHT=8 # READ_CONCURRENCY in workers/subs/subs_google.c
PKG=com.example.chat
API=/androidpublisher/v3/applications/$PKG/purchases/subscriptionsv2/tokens

start_redis
start_broker --topics herald.subscriptions:8,herald.entitlements:8

# --- the fake Play Developer API and the service account --------------------
make_pki
node -e '
    const [latency] = process.argv.slice(1);
    const expiry = new Date(Date.now() + 30 * 86400000).toISOString();
    console.log(JSON.stringify({routes: [
        {path: "/token", body: {access_token: "ya29.bench", expires_in: 3600,
                                token_type: "Bearer"}},
        {path: "*", delay_ms: Number(latency), body: {
            kind: "androidpublisher#subscriptionPurchaseV2",
            subscriptionState: "SUBSCRIPTION_STATE_ACTIVE",
            acknowledgementState: "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
            lineItems: [{productId: "gold.monthly", expiryTime: expiry,
                         autoRenewingPlan: {autoRenewEnabled: true}}],
            externalAccountIdentifiers: {obfuscatedExternalAccountId: "u1"}}}]}));' \
    "$LATENCY_MS" >"$WORK/play.json"
node tests/harness/fake_http.js --port 0 --tls --cert "$WORK/server.pem" \
    --key "$WORK/server.key" --script "$WORK/play.json" >"$WORK/play.out" 2>"$WORK/play.log" &
PIDS+=($!)
PLAY=https://127.0.0.1:$(listening_port "$WORK/play.out")
node -e '
    const fs = require("fs");
    const [dir, play] = process.argv.slice(1);
    fs.writeFileSync(dir + "/sa.json", JSON.stringify({type: "service_account",
        project_id: "herald-bench", private_key_id: "k1",
        private_key: fs.readFileSync(dir + "/sa.key", "utf8"),
        client_email: "herald@herald-bench.iam.gserviceaccount.com",
        token_uri: play + "/token"}));' "$WORK" "$PLAY"

# --- the workload: N renewals over M purchases ---------------------------------
node -e '
    const [n, m, pkg] = process.argv.slice(1).map((v, i) => i < 2 ? Number(v) : v);
    const lines = [];
    for (let i = 0; i < n; i++) {
        const tok = "tok-" + (i % m);
        const rtdn = {version: "1.0", packageName: pkg,
            eventTimeMillis: String(1765000000000 + i),
            subscriptionNotification: {version: "1.0", notificationType: 2,
                purchaseToken: tok, subscriptionId: "gold.monthly"}};
        lines.push(tok + "|" + JSON.stringify({message: {
            data: Buffer.from(JSON.stringify(rtdn)).toString("base64"),
            messageId: "bench-" + i, publishTime: new Date().toISOString()},
            subscription: "projects/bench/subscriptions/play-rtdn"}));
    }
    console.log(lines.join("\n"));' "$N" "$M" "$PKG" >"$WORK/rtdn.txt"
kcat -P -b "$BROKERS" -t herald.subscriptions -K '|' <"$WORK/rtdn.txt"

# --- herald-subs ----------------------------------------------------------------
echo "herald-subs: reading and applying $N Google Play notifications ..." >&2
start_worker subs "$WORK/subs.log" HERALD_LOG_LEVEL=warn \
    HERALD_APPSTORE_BUNDLE_ID=com.example HERALD_APPSTORE_ENVIRONMENTS=Sandbox \
    HERALD_TLS_CA_FILE="$WORK/ca.pem" \
    HERALD_GOOGLEPLAY_PACKAGE_NAMES=$PKG HERALD_GOOGLEPLAY_CREDENTIALS_FILE="$WORK/sa.json" \
    HERALD_GOOGLEPLAY_API_ENDPOINT="$PLAY" HERALD_GOOGLEPLAY_TOKEN_URI="$PLAY/token" ${XENV:-}
# from the moment it has its partitions (readiness), not its first batch:
# a batch of reads takes as long as its slowest calls
for _ in $(seq 1200); do curl -sf "$METRICS/readyz" >/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_events_processed_total{' "$N" 900 || true
t1=$(date +%s.%N)
PROCESSED=$(metric "$METRICS" 'herald_events_processed_total{')
APPLIED=$(metric "$METRICS" 'herald_subs_applied_total{')
CALLS=$(metric "$METRICS" 'herald_subs_api_calls_total{worker="subs",status="200"}')
OUTCOMES=$(subs_outcomes "$METRICS")
curl -sf "$METRICS/metrics" >"$WORK/metrics.txt" || true # KEEP=1 keeps it
RATE=$(echo "$PROCESSED / ($t1 - $t0)" | bc)
RSS=$(peak_rss_mb "$WORKER_PID")
CPU=$(cpu_s "$WORKER_PID")
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true

# --- the limits: the same fake, by h2load -------------------------------------
# h2load IN_FLIGHT REQUESTS: the fake's rate for one purchase read
h2rate() {
    h2load -n "$2" -c 1 -m "$1" --header "authorization: Bearer ya29.bench" \
        "$PLAY$API/tok-0" 2>&1 |
        awk '/^finished in/ { gsub(",", "", $4); printf "%d\n", $4 }'
}
echo "h2load: $INFLIGHT in flight, then one at a time ..." >&2
H2_MANY=$(h2rate "$INFLIGHT" "$N")
H2_ONE=$(h2rate 1 $(( N / 10 > 100 ? N / 10 : 100 )))

pct() { echo "scale=0; 100 * $1 / ${2:-1}" | bc; }
cat <<OUT

herald-subs benchmark (Google Play): $N notifications over $M purchases, each
read back with purchases.subscriptionsv2.get from a fake Play Developer API
answering after ${LATENCY_MS} ms (HTTPS); one machine ($(nproc) cores)

  herald-subs               $(printf '%8d' "$RATE") notifications/s   peak RSS ${RSS} MB  ($PROCESSED processed; worker CPU s $CPU)
                            applied: $APPLIED (${OUTCOMES:-none}); $CALLS reads answered 200
  h2load, $INFLIGHT in flight      $(printf '%8d' "${H2_MANY:-0}") reads/s (the limit of $INFLIGHT calls in flight)
  h2load, one at a time     $(printf '%8d' "${H2_ONE:-0}") reads/s (a handler that awaits each call)
  herald-subs / the limit: $(pct "$RATE" "$H2_MANY")%
  herald-subs / one at a time: $(echo "scale=1; $RATE / ${H2_ONE:-1}" | bc)x
OUT
[ "$PROCESSED" -ge "$N" ] || { echo "herald-subs processed $PROCESSED of $N" >&2; exit 1; }
