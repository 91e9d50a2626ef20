#!/usr/bin/env bash
# The demo fleet, kept running for Prometheus to scrape (tests/deploy/
# dead_panels.sh). Like scripts/demo.sh, with its helpers (scripts/lib.sh):
# a throw-away redis-server and herald-devbroker, a fake HTTP API for
# fanout's webhooks (the legacy API fails with 503 eight times, the
# trust-and-safety API answers 401), the fake APNs/FCM/Web Push and the
# fake SMTP server; every worker (herald-fanout, -unread, -guard, -push,
# -email, and -subs when ../shared/vectors/appstore is there) on top; and
# the demo's kinds of traffic, so that every worker's metric families get
# series: devices (one whose app was deleted: 410), chat messages and read
# receipts, new conversations (webhook, circuit), abuse reports (401),
# comments and reactions (digest and leading emails, an opted-out user, one
# without an address), malformed records, App Store notifications (one
# repeated, one forged).
#
#   BIN=build/dev/bin tests/deploy/fleet.sh OUTDIR
#
# Writes OUTDIR/targets ("worker host:port" per line) as soon as every
# worker serves /metrics, OUTDIR/ready once the traffic has been handled,
# then keeps producing a few chat messages every second (counters keep
# moving between scrapes) until SIGTERM, when everything is stopped and
# removed.
out=${1:?usage: fleet.sh OUTDIR}
cd "$(dirname "$0")/../.."
. scripts/lib.sh
# set -e ends the fleet at the first failing command: say which.
set -E
trap 'log "failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR
SHARED=${HERALD_SHARED:-../shared}

log() { printf 'fleet: %s\n' "$*" >&2; }
: >"$out/targets"
target() { echo "$1 ${2#http://}" >>"$out/targets"; }

start_redis
start_broker
log "redis $REDIS_URL, broker $BROKERS, work dir $WORK"

start_chat_apis

CIRCUIT=(HERALD_GUARD_CIRCUIT_MIN_CALLS=3 HERALD_GUARD_CIRCUIT_OPEN_MS=1500
         HERALD_KAFKA_STATS_INTERVAL_MS=1000)
start_worker fanout "$WORK/fanout.log" "${CIRCUIT[@]}" -- --config "$WORK/rules.json"
FANOUT=$METRICS; target fanout "$METRICS"
start_worker unread "$WORK/unread.log" HERALD_UNREAD_PUSH_TOPIC=herald.push \
    HERALD_KAFKA_STATS_INTERVAL_MS=1000
UNREAD=$METRICS; target unread "$METRICS"
# Four attempts and no retry budget beyond two retries a second: the
# legacy API's 503s make the guard throttle and then dead-letter.
start_worker guard "$WORK/guard.log" "${CIRCUIT[@]}" \
    HERALD_GUARD_BASE_DELAY_MS=300 HERALD_GUARD_MAX_DELAY_MS=2000 \
    HERALD_GUARD_MAX_ATTEMPTS=4 HERALD_GUARD_RETRY_BUDGET=0 \
    HERALD_GUARD_RETRY_FLOOR_PER_S=2
target guard "$METRICS"

start_fake_push TEAM123456 KEY1234567 com.example.chat herald-demo
start_worker push "$WORK/push.log" "${PUSH_ENV[@]}" \
    HERALD_KAFKA_STATS_INTERVAL_MS=1000
PUSH=$METRICS; target push "$METRICS"

start_fake_email
start_worker email "$WORK/email.log" HERALD_SMTP_URL=smtp://127.0.0.1:$SMTP_PORT \
    HERALD_KAFKA_STATS_INTERVAL_MS=1000 \
    HERALD_EMAIL_FROM=notify@chat.example HERALD_EMAIL_WINDOW_SECONDS=2 \
    -- --config workers/email/examples/email.json
EMAIL=$METRICS; target email "$METRICS"
chat_profiles

APPLE_CERTS=$SHARED/vectors/appstore/certs
SUBS=
if [ -f "$APPLE_CERTS/testLeaf.key" ]; then
    start_worker subs "$WORK/subs.log" HERALD_APPSTORE_ROOT_CERTS="$APPLE_CERTS/testCA.pem" \
        HERALD_KAFKA_STATS_INTERVAL_MS=1000 \
        HERALD_APPSTORE_STRICT_X509=false HERALD_APPSTORE_BUNDLE_ID=com.example \
        HERALD_APPSTORE_ENVIRONMENTS=Sandbox
    SUBS=$METRICS; target subs "$METRICS"
else
    log "no $APPLE_CERTS/testLeaf.key: herald-subs not started"
fi
log "targets: $(tr '\n' ' ' <"$out/targets")"

# Devices: u0-u3 and u7 on iPhones (u7's app was deleted: 410), u4 and u5
# on Android, u6 in a browser.
ios_token() { printf '%064x' "$(( $1 + 1 ))"; }
fake_push -X POST -H 'content-type: application/json' \
    -d "{\"provider\":\"apns\",\"token\":\"$(ios_token 7)\",\"answers\":[{\"status\":410,\"reason\":\"Unregistered\"}]}" \
    /_control/script >/dev/null
subscription=$(fake_push -X POST -d '{}' /_control/webpush/subscribe)
arn='arn:aws:dynamodb:eu-west-1:123456789012:table'
node -e '
const [arn, web] = process.argv.slice(1);
const dev = (u, t, p) => console.log(u + "|" + JSON.stringify({eventID: "dev-" + u,
    eventName: "INSERT", eventSourceARN: arn + "/Devices/stream/x",
    dynamodb: {Keys: {token: {S: t}}, NewImage: {user_id: {S: u}, token: {S: t},
        platform: {S: p}, environment: {S: "production"}}}}));
for (const u of [0, 1, 2, 3, 7]) dev("u" + u, (u + 1).toString(16).padStart(64, "0"), "ios");
dev("u4", "fcm-token-u4", "android");
dev("u5", "fcm-token-u5", "android");
dev("u6", web, "web");' "$arn" "$subscription" |
    kcat -P -b "$BROKERS" -t herald.changes -K '|'
wait_metric "$PUSH" 'herald_push_registry_total{' 8 60 || log "devices not all registered"

GEN=(--users 8 --convs 6 --members 3 --reads 0.3 --dups 0.1 --window 25)
"$BIN/herald-chatgen" produce --brokers "$BROKERS" --topic herald.changes \
    --dynamodb "${GEN[@]}" --messages 120 --seed 7
node -e '
const arn = process.argv[1];
const emit = (k, o) => console.log(k + "|" + JSON.stringify(o));
for (let i = 1; i <= 6; i++)
    emit("c10" + i, {eventID: "conv-" + i, eventName: "INSERT",
        eventSourceARN: arn + "/Conversations/stream/x",
        dynamodb: {Keys: {conversation_id: {S: "c10" + i}}, NewImage: {
            conversation_id: {S: "c10" + i}, title: {S: "Project " + i},
            member_ids: {SS: ["u1", "u2"]}, created_at: {S: "2026-11-22T09:0" + i + ":00Z"}}}});
for (let i = 1; i <= 4; i++)
    emit("r" + i, {eventID: "report-" + i, eventName: "INSERT",
        eventSourceARN: arn + "/Reports/stream/x",
        dynamodb: {Keys: {report_id: {S: "r" + i}}, NewImage: {report_id: {S: "r" + i},
            message_id: {S: "m" + i}, reason: {S: "spam"}, reporter_id: {S: "u" + i}}}});
const names = ["Ann", "Bruno", "Chen", "Dev", "Eve", "Farid"];
["u1", "u1", "u2", "u1", "u3", "u2", "u4", "u1"].forEach((a, i) =>
    emit(a, {eventID: "comment-" + i, eventName: "INSERT", eventSourceARN: arn + "/Comments/stream/x",
        dynamodb: {Keys: {comment_id: {S: "k" + i}}, NewImage: {comment_id: {S: "k" + i},
            post_id: {S: "p" + a}, post_author_id: {S: a}, post_title: {S: "Weekend plans"},
            author_id: {S: "u" + (10 + i)}, author_name: {S: names[i % 6]},
            text: {S: "Count me in!"}}}}));
["u1", "u1", "u5", "u2", "u5"].forEach((a, i) =>
    emit(a, {eventID: "reaction-" + i, eventName: "INSERT", eventSourceARN: arn + "/Reactions/stream/x",
        dynamodb: {Keys: {reaction_id: {S: "r" + i}}, NewImage: {reaction_id: {S: "r" + i},
            message_id: {S: "m" + i}, conversation_id: {S: "c1"}, message_author_id: {S: a},
            reactor_name: {S: names[(i + 2) % 6]}, emoji: {S: "👍"}}}}));
emit("c0", {eventID: "bad-1", eventName: "INSERT", eventSourceARN: arn + "/Messages/stream/x",
    dynamodb: {NewImage: {n: {Q: "1"}}}});
console.log("c0|not json at all");' "$arn" |
    kcat -P -b "$BROKERS" -t herald.changes -K '|'

if [ -n "$SUBS" ]; then
    node tests/node/mint_appstore.js --certs "$APPLE_CERTS" --count 6 \
        --subscriptions 2 >"$WORK/appstore.txt"
    { cat "$WORK/appstore.txt"; head -1 "$WORK/appstore.txt"
      head -1 "$WORK/appstore.txt" | sed -E 's/..("}\s*)$/xy\1/'
    } | kcat -P -b "$BROKERS" -t herald.subscriptions -K '|'
fi

changes=$(topic_count herald.changes)
wait_metric "$FANOUT" 'herald_events_processed_total{' "$changes" 60 || log "fanout: not all changes handled"
wait_metric "$UNREAD" 'herald_events_processed_total{' 1 60 || log "unread: nothing handled"
wait_metric "$PUSH" 'herald_push_deliveries_total{' 1 60 || log "push: nothing delivered"
wait_metric "$EMAIL" 'herald_email_sent_total{' 1 60 || log "email: nothing sent"
[ -z "$SUBS" ] || wait_metric "$SUBS" 'herald_events_processed_total{' 8 60 || log "subs: not all handled"
log "traffic handled"
touch "$out/ready"

# A trickle of new chat messages until told to stop, so that counters move
# between scrapes.
seed=100
while :; do
    seed=$((seed + 1))
    "$BIN/herald-chatgen" produce --brokers "$BROKERS" --topic herald.changes \
        --dynamodb "${GEN[@]}" --messages 5 --seed "$seed" >/dev/null 2>&1 || true
    sleep 1
done
