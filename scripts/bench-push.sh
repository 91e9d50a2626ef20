#!/usr/bin/env bash
# Benchmark of herald-push (issue: herald-push). N push.requested (default
# 200,000) to DEVICES devices (50,000), with the registry lookups,
# idempotency claims and "unread_total" badges of production, through the
# fake APNs (tests/node/fake_push.js, HTTP/2 + TLS on loopback), then the
# same through the fake FCM. In the same run, against the same fake with
# the same concurrency and payloads: h2load (the fake's limit) and the npm
# peers a Node team would use: @parse/node-apn for APNs, firebase-admin for
# FCM (and a hand-written Node http2 client with its access token).
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-200000}
DEVICES=${DEVICES:-50000}
C=${C:-100}
NODE=tests/node
TEAM=TEAM123456 KID=KEY1234567 TOPIC=com.example.chat PROJECT=herald-bench

start_redis
start_broker --topics herald.push:32,herald.devices:4,herald.unread:4

# --- keys, a CA and the fake ------------------------------------------------
start_fake_push $TEAM $KID $TOPIC $PROJECT ${FAKE_QUIET---quiet}

# --- the workload -----------------------------------------------------------
# devices: DEVICES users with one device each; totals for the badges
# registry RPLATFORM: herald:devices:{u<i>} and herald:unread_total:{u<i>}
registry() {
    awk -v d="$DEVICES" -v p="$1" 'function resp(a, n,   i, s) {
            s = "*" n "\r\n"
            for (i = 1; i <= n; i++) s = s "$" length(a[i]) "\r\n" a[i] "\r\n"
            return s }
        BEGIN { for (i = 0; i < d; i++) {
            tok = (p == "ios") ? sprintf("%064x", i + 1) : sprintf("fcm-token-%d", i)
            a[1] = "HSET"; a[2] = "herald:devices:{u" i "}"; a[3] = tok
            a[4] = "{\"platform\":\"" p "\",\"environment\":\"production\",\"registered_at\":\"2026-12-01T00:00:00.000Z\"}"
            printf "%s", resp(a, 4)
            a[1] = "SET"; a[2] = "herald:unread_total:{u" i "}"; a[3] = i % 50
            printf "%s", resp(a, 3) } }' |
        redis-cli -s "$REDIS_SOCK" --pipe >/dev/null
}
# pushes TAG: N push.requested to the users in turn, on herald.push
pushes() {
    awk -v n="$N" -v d="$DEVICES" -v tag="$1" 'BEGIN { for (i = 0; i < n; i++) {
        u = "u" (i % d)
        printf "%s|{\"specversion\":\"1.0\",\"id\":\"%s-%d\",\"source\":\"/bench\",\"type\":\"push.requested\",\"data\":{\"user_id\":\"%s\",\"title\":\"Alice\",\"body\":\"message %d in the conversation\",\"badge\":\"unread_total\",\"thread_id\":\"c%d\",\"data\":{\"conversation_id\":\"c%d\"}}}\n", u, tag, i, u, i, i % 1000, i % 1000 } }' |
        kcat -P -b "$BROKERS" -t herald.push -K '|' -z lz4
}

# run_push PROVIDER ENV...: herald-push, with herald-guard beside it as in
# production (calls lost with a connection go to herald.retry and come
# back), until every push is sent; sets RATE, RSS, CPU, SENT, RETRIED
run_push() {
    local t0 t1 sent_metric="herald_push_deliveries_total{worker=\"push\",provider=\"$1\",status=\"sent\"}"
    start_worker guard "$WORK/guard-$1.log" HERALD_LOG_LEVEL=warn \
        HERALD_GUARD_BASE_DELAY_MS=100 HERALD_GUARD_MAX_DELAY_MS=1000
    GUARD_PID=$WORKER_PID
    start_worker push "$WORK/push-$1.log" HERALD_LOG_LEVEL=warn \
        HERALD_KAFKA_TOPICS=herald.push HERALD_TLS_CA_FILE="$WORK/ca.pem" \
        HERALD_PUSH_CONCURRENCY="$C" HERALD_PUSH_INVALIDATED_TOPIC=off ${XENV:-} "${@:2}"
    wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
    t0=$(date +%s.%N)
    wait_metric "$METRICS" "$sent_metric" "$N" 900 || true
    t1=$(date +%s.%N)
    RSS=$(peak_rss_mb "$WORKER_PID")
    CPU=$(cpu_s "$WORKER_PID")
    SENT=$(metric "$METRICS" "$sent_metric")
    RETRIED=$(metric "$METRICS" 'herald_events_processed_total{worker="push",outcome="retried"}')
    kill -TERM "$WORKER_PID" "$GUARD_PID"; wait "$WORKER_PID" "$GUARD_PID" || true
    RATE=$(echo "$N / ($t1 - $t0)" | bc)
}

# h2load PATH AUTH PAYLOAD: the fake's own limit at the same concurrency
# (one connection, C streams); sets H2_RATE
h2rate() {
    H2_RATE=$(h2load -n "$N" -c 1 -m "$C" --header "authorization: $2" \
        "${@:4}" -d "$3" "$FAKE$1" 2>&1 |
        awk '/^finished in/ { gsub(",", "", $4); printf "%d\n", $4 }')
}

field() { echo "$1" | sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p" | cut -d. -f1; }

# --- APNs ---------------------------------------------------------------------
echo "APNs: $DEVICES devices, $N pushes ..." >&2
registry ios
pushes apns
fake_cpu0=$(cpu_s "$FAKE_PID")
run_push apns HERALD_APNS_KEY_FILE="$WORK/AuthKey.p8" HERALD_APNS_KEY_ID=$KID \
    HERALD_APNS_TEAM_ID=$TEAM HERALD_APNS_TOPIC=$TOPIC \
    HERALD_APNS_ENDPOINT="$FAKE" HERALD_APNS_SANDBOX_ENDPOINT="$FAKE"
APNS_RATE=$RATE APNS_RSS=$RSS APNS_CPU=$CPU APNS_SENT=$SENT APNS_RETRIED=$RETRIED
APNS_FAKE_CPU=$(echo "$(cpu_s "$FAKE_PID") - $fake_cpu0" | bc)
jwt=$(redis-cli -s "$REDIS_SOCK" get "herald:push:apns:token:$TEAM:$KID" | awk '{ print $3 }')
printf '{"aps":{"alert":{"title":"Alice","body":"message 1 in the conversation"},"badge":7,"thread-id":"c1"},"conversation_id":"c1"}' >"$WORK/apns.json"
h2rate "/3/device/$(printf '%064x' 1)" "bearer $jwt" "$WORK/apns.json" \
    --header "apns-topic: $TOPIC" --header "apns-push-type: alert" \
    --header "apns-priority: 10" --header "content-type: application/json"
APNS_H2=$H2_RATE
seq 1 "$DEVICES" | awk '{ printf "%064x\n", $1 }' >"$WORK/apns-tokens.txt"
nodeapn=$(node "$NODE/bench_push_nodeapn.js" --host 127.0.0.1 --port "$FAKE_PORT" \
    --ca "$WORK/ca.pem" --key "$WORK/AuthKey.p8" --key-id $KID --team-id $TEAM \
    --topic $TOPIC --tokens "$WORK/apns-tokens.txt" --count "$N" --concurrency "$C")
NODEAPN=$(field "$nodeapn" rate)

# --- FCM ----------------------------------------------------------------------
echo "FCM: $DEVICES devices, $N pushes ..." >&2
redis-cli -s "$REDIS_SOCK" flushall >/dev/null
registry android
pushes fcm
run_push fcm HERALD_FCM_CREDENTIALS_FILE="$WORK/sa.json" HERALD_FCM_ENDPOINT="$FAKE"
FCM_RATE=$RATE FCM_RSS=$RSS FCM_CPU=$CPU FCM_SENT=$SENT FCM_RETRIED=$RETRIED
access=$(redis-cli -s "$REDIS_SOCK" --scan --pattern 'herald:gcp:token:*' | head -1 |
    xargs -r redis-cli -s "$REDIS_SOCK" get | awk '{ print $3 }')
printf '{"message":{"token":"fcm-token-1","notification":{"title":"Alice","body":"message 1 in the conversation"},"data":{"conversation_id":"c1"},"android":{"priority":"HIGH","notification":{"notification_count":7}}}}' >"$WORK/fcm.json"
h2rate "/v1/projects/$PROJECT/messages:send" "Bearer $access" "$WORK/fcm.json" \
    --header "content-type: application/json"
FCM_H2=$H2_RATE
seq 0 $((DEVICES - 1)) | awk '{ printf "fcm-token-%d\n", $1 }' >"$WORK/fcm-tokens.txt"
admin=$(node "$NODE/bench_push_fcm.js" --endpoint "$FAKE" --credentials "$WORK/sa.json" \
    --ca "$WORK/ca.pem" --tokens "$WORK/fcm-tokens.txt" --count "$N" --concurrency "$C")
ADMIN=$(field "$admin" rate)
h2peer=$(node "$NODE/bench_push_fcm.js" --endpoint "$FAKE" --credentials "$WORK/sa.json" \
    --ca "$WORK/ca.pem" --tokens "$WORK/fcm-tokens.txt" --count "$N" --concurrency "$C" \
    --transport http2)
H2PEER=$(field "$h2peer" rate)

pct() { echo "scale=0; 100 * $1 / ${2:-1}" | bc; }
ratio() { echo "scale=1; $1 / ${2:-1}" | bc; }
cat <<OUT

herald-push benchmark: $N pushes to $DEVICES devices (registry lookup, claim
and "unread_total" badge each), $C streams in flight on HTTP/2 + TLS, the
fake on loopback, one machine ($(nproc) cores)

  APNs
  herald-push                  $(printf '%7d' "$APNS_RATE") pushes/s   peak RSS ${APNS_RSS} MB  ($APNS_SENT sent, $APNS_RETRIED retried; CPU s: worker $APNS_CPU, fake $APNS_FAKE_CPU)
  h2load, same fake and load   $(printf '%7d' "${APNS_H2:-0}") requests/s (the fake's limit)
  @parse/node-apn              $(printf '%7d' "${NODEAPN:-0}") pushes/s
  herald-push / h2load: $(pct "$APNS_RATE" "$APNS_H2")%  (target >= 50%)
  herald-push / node-apn: $(ratio "$APNS_RATE" "$NODEAPN")x  (target >= 3)

  FCM
  herald-push                  $(printf '%7d' "$FCM_RATE") pushes/s   peak RSS ${FCM_RSS} MB  ($FCM_SENT sent, $FCM_RETRIED retried; worker CPU s $FCM_CPU)
  h2load, same fake and load   $(printf '%7d' "${FCM_H2:-0}") requests/s (the fake's limit)
  firebase-admin send()        $(printf '%7d' "${ADMIN:-0}") pushes/s (HTTP/1.1: its messaging host is fixed; reached through its httpAgent)
  Node http2 + its token       $(printf '%7d' "${H2PEER:-0}") pushes/s
  herald-push / h2load: $(pct "$FCM_RATE" "$FCM_H2")%  (target >= 50%)
  herald-push / firebase-admin: $(ratio "$FCM_RATE" "$ADMIN")x
OUT
[ "$APNS_SENT" -eq "$N" ] && [ "$FCM_SENT" -eq "$N" ] || { echo "not every push was sent" >&2; exit 1; }
