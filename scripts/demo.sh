#!/usr/bin/env bash
# The Herald demo: a throw-away Redis, herald-devbroker and a fake legacy
# API; the fleet (herald-fanout, herald-unread) on top; a chat app's
# DynamoDB change records fed through it; and a summary of what happened.
# Every process is cleaned up on exit.
cd "$(dirname "$0")/.."
. scripts/lib.sh

# A small chat as DynamoDB Streams records of its Messages and ReadReceipts
# tables: 8 users, 6 conversations of 3 members, 240 messages, read
# receipts that arrive late or early (shuffled in windows of 25 records),
# and 10% of the records delivered twice.
GEN=(--users 8 --convs 6 --members 3 --messages 240 --reads 0.3 --dups 0.1
     --window 25 --seed 7)

say() { printf '\n== %s\n' "$*"; }
count() { kcat -C -b "$BROKERS" -t "$1" -o beginning -e -q -f '.\n' | wc -l; }

say "starting redis-server, herald-devbroker and a fake legacy API"
start_redis
start_broker
export LEGACY_JWT_SECRET=demo-secret-0123456789abcdef0123456789
legacy_port=$(free_port)
cat >"$WORK/legacy.json" <<JSON
{"routes": [{"path": "/api/v1/conversations", "status": 201,
             "jwt": {"alg": "HS256", "secret": "$LEGACY_JWT_SECRET",
                     "iss": "herald", "aud": "legacy-api"}}]}
JSON
node tests/harness/fake_http.js --port "$legacy_port" --script "$WORK/legacy.json" \
    >"$WORK/legacy.out" 2>&1 &
PIDS+=($!)
sed "s#http://127.0.0.1:18080#http://127.0.0.1:$legacy_port#" \
    workers/fanout/examples/chat-rules.json >"$WORK/rules.json"
echo "redis:      $REDIS_URL"
echo "broker:     $BROKERS"
echo "legacy API: http://127.0.0.1:$legacy_port (checks the JWT of every call)"

say "starting herald-fanout (workers/fanout/examples/chat-rules.json)"
start_worker fanout "$WORK/fanout.log" -- --config "$WORK/rules.json"
FANOUT=$METRICS FANOUT_PID=$WORKER_PID
say "starting herald-unread (push.requested enabled, exact badges)"
start_worker unread "$WORK/unread.log" HERALD_UNREAD_PUSH_TOPIC=herald.push
UNREAD=$METRICS UNREAD_PID=$WORKER_PID

say "feeding the app's change records to herald.changes"
"$BIN/herald-chatgen" produce --brokers "$BROKERS" --topic herald.changes \
    --dynamodb "${GEN[@]}"
# Two new conversations (the rules call the legacy API for these), and
# three records no producer should ever send.
arn='arn:aws:dynamodb:eu-west-1:123456789012:table'
printf '%s\n' \
    "c100|{\"eventID\":\"conv-1\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"$arn/Conversations/stream/x\",\"dynamodb\":{\"Keys\":{\"conversation_id\":{\"S\":\"c100\"}},\"NewImage\":{\"conversation_id\":{\"S\":\"c100\"},\"title\":{\"S\":\"Launch\"},\"member_ids\":{\"SS\":[\"u1\",\"u2\"]},\"created_at\":{\"S\":\"2026-11-22T09:00:00Z\"}}}}" \
    "c101|{\"eventID\":\"conv-2\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"$arn/Conversations/stream/x\",\"dynamodb\":{\"Keys\":{\"conversation_id\":{\"S\":\"c101\"}},\"NewImage\":{\"conversation_id\":{\"S\":\"c101\"},\"title\":{\"S\":\"Ops\"},\"member_ids\":{\"SS\":[\"u3\",\"u4\"]},\"created_at\":{\"S\":\"2026-11-22T09:01:00Z\"}}}}" \
    'c0|{"eventID":"bad-1","eventName":"INSERT","eventSourceARN":"'"$arn"'/Messages/stream/x","dynamodb":{"NewImage":{"n":{"Q":"1"}}}}' \
    'c0|{"op":"x","before":null,"after":{},"source":{"table":"t"}}' \
    'c0|not json at all' |
    kcat -P -b "$BROKERS" -t herald.changes -K '|'
changes=$(count herald.changes)

say "waiting for the fleet to handle all $changes change records"
wait_metric "$FANOUT" 'herald_events_processed_total{' "$changes" 60 ||
    { echo "timed out; fanout log:"; tail -20 "$WORK/fanout.log"; exit 1; }
messages=$(count herald.messages)
wait_metric "$UNREAD" 'herald_events_processed_total{' "$messages" 60 ||
    { echo "timed out; unread log:"; tail -20 "$WORK/unread.log"; exit 1; }

say "unread counts per user (Redis) against the exact model"
"$BIN/herald-chatgen" verify --redis "$REDIS_URL" "${GEN[@]}" --table 8

say "herald-fanout: $changes change records in"
curl -sf "$FANOUT/metrics" |
    grep -E '^herald_(events_processed_total|fanout_routed_total|fanout_webhook_responses_total)' |
    sed 's/worker="fanout",//; s/{}//; s/^/  /'
say "herald-unread: $messages events in (message.created, conversation.read)"
curl -sf "$UNREAD/metrics" |
    grep -E '^herald_(events_processed_total|unread_pairs_updated_total|batch_pauses_total)' |
    sed 's/worker="unread",//; s/{}//; s/^/  /'

say "what came out"
printf '  unread.changed on herald.unread: %s\n' "$(count herald.unread)"
printf '  push.requested on herald.push:   %s\n' "$(count herald.push)"
echo "  one push.requested, for example:"
kcat -C -b "$BROKERS" -t herald.push -o beginning -e -q -c 1 | sed 's/^/    /'
echo "  calls the legacy API received:"
curl -sf "http://127.0.0.1:$legacy_port/_control/requests" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        for (const r of JSON.parse(s)) {
            const c = (r.jwt && r.jwt.claims) || {};
            console.log(`    ${r.method} ${r.path} -> ${r.status}: ${r.body}`);
            console.log(`      JWT ${r.jwt && r.jwt.ok ? "verified" : "REJECTED"}` +
                        ` (iss=${c.iss} aud=${c.aud} exp-iat=${c.exp - c.iat}s jti=${c.jti})`);
        }
    });'

say "dead letters on herald.dlq (reason in the herald-error header)"
kcat -C -b "$BROKERS" -t herald.dlq -o beginning -e -q -f '%h\n' |
    sed -E 's/.*herald-worker=([^,]*).*herald-error-class=([^,]*),herald-error=(.*)/  \1 \2: \3/' |
    cut -c1-110

say "graceful shutdown (SIGTERM)"
kill -TERM "$FANOUT_PID" "$UNREAD_PID"
for name in fanout unread; do
    pid=FANOUT_PID
    [ $name = unread ] && pid=UNREAD_PID
    status=0
    wait "${!pid}" || status=$?
    line=$(grep -o '"msg":"stopped".*' "$WORK/$name.log" || true)
    echo "  herald-$name exited $status: $line"
done
