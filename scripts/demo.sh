#!/usr/bin/env bash
# The Herald demo: a throw-away Redis and herald-devbroker, the fleet
# (today herald-unread) on top, a scripted chat scenario fed through it,
# and a summary of what happened. Every process is cleaned up on exit.
cd "$(dirname "$0")/.."
. scripts/lib.sh

# A small chat: 8 users, 6 conversations of 3 members, 240 messages, read
# receipts that arrive late or early (shuffled in windows of 25 events),
# and 10% of the events delivered twice with the same id.
GEN=(--users 8 --convs 6 --members 3 --messages 240 --reads 0.3 --dups 0.1
     --window 25 --seed 7)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting redis-server and herald-devbroker"
start_redis
start_broker
echo "redis:  $REDIS_URL"
echo "broker: $BROKERS"

say "starting herald-unread (push.requested enabled, exact badges)"
start_worker unread "$WORK/unread.log" HERALD_UNREAD_PUSH_TOPIC=herald.push
echo "metrics: $METRICS/metrics"

say "feeding the chat scenario to herald.messages"
"$BIN/herald-chatgen" produce --brokers "$BROKERS" "${GEN[@]}"
total=$(kcat -C -b "$BROKERS" -t herald.messages -o beginning -e -q -f '.\n' | wc -l)

# Three events no producer should ever send: they go to the dead-letter
# topic with a reason, and the worker carries on.
printf '%s\n' \
    'c0|{"this is": "not a CloudEvent"}' \
    'c0|{"specversion":"1.0","id":"x1","source":"/demo","type":"message.created","data":{"conversation_id":"c0"}}' \
    'c0|not json at all' |
    kcat -P -b "$BROKERS" -t herald.messages -K '|'
total=$((total + 3))

say "waiting for herald-unread to handle all $total events"
wait_metric "$METRICS" 'herald_events_processed_total{' "$total" 60 ||
    { echo "timed out; worker log:"; tail -20 "$WORK/unread.log"; exit 1; }

say "unread counts per user (Redis) against the exact model"
"$BIN/herald-chatgen" verify --redis "$REDIS_URL" "${GEN[@]}" --table 8

say "what the worker reports on /metrics"
curl -sf "$METRICS/metrics" |
    grep -E '^herald_(events_(consumed|processed)_total|unread_pairs_updated_total|batch_pauses_total)' |
    sed 's/{worker="unread",/{/; s/^/  /'

say "events it emitted"
printf '  unread.changed   on herald.unread: %s\n' \
    "$(kcat -C -b "$BROKERS" -t herald.unread -o beginning -e -q -f '.\n' | wc -l)"
printf '  push.requested   on herald.push:   %s\n' \
    "$(kcat -C -b "$BROKERS" -t herald.push -o beginning -e -q -f '.\n' | wc -l)"
echo "  one push.requested, for example:"
kcat -C -b "$BROKERS" -t herald.push -o beginning -e -q -c 1 | sed 's/^/    /'

say "dead letters on herald.dlq (reason in the herald-error header)"
kcat -C -b "$BROKERS" -t herald.dlq -o beginning -e -q \
    -f '  [%h]\n' | sed -E 's/.*herald-error-class=([^,]*),herald-error=([^],]*).*/  \1: \2/'

say "graceful shutdown (SIGTERM)"
kill -TERM "$WORKER_PID"
wait "$WORKER_PID" && echo "  herald-unread exited 0 after committing its offsets"
grep -o '"msg":"stopped".*' "$WORK/unread.log" | sed 's/^/  /'
