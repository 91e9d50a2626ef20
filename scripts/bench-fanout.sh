#!/usr/bin/env bash
# Benchmark of herald-fanout (issue: herald-fanout). Loads N (1,000,000)
# DynamoDB Streams records of 8 tables (INSERT 60%, MODIFY 30% with old
# images, REMOVE 10%) into herald-devbroker, routes them through 20 rules
# (table and op lists, value lists, prefix, suffix, numeric ranges,
# anything-but, exists, equals-ignore-case, wildcard, $or, one for_each) to
# 3 topics, verifies the number of events on each topic against the count
# the generator computed, and prints the worker's rate, peak memory and CPU
# next to kcat reading the same input in the same run.
#
#   scripts/bench-fanout.sh            # release binaries in build/release/bin
#   BIN=/path/to/bin N=200000 scripts/bench-fanout.sh
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-1000000}
start_redis # the shared circuit breaker of the webhooks lives there

start_broker --topics herald.changes:128,bench.a:64,bench.b:64,bench.c:64

cat >"$WORK/rules.json" <<'EOF'
{
  "rules": [
    {"name": "msg-text", "match": {"table": "Messages", "op": "insert",
       "pattern": {"new": {"kind": ["text"]}}},
     "emit": [{"topic": "bench.a", "type": "message.created", "key": "$.new.id",
               "data": {"id": "$.new.id", "kind": "$.new.kind",
                        "recipients": "$.new.recipients", "at": "$.new.created_at"}}]},
    {"name": "msg-image", "match": {"table": "Messages", "op": "insert",
       "pattern": {"new": {"kind": [{"prefix": "image/"}]}}},
     "emit": [{"topic": "bench.a", "type": "push.requested", "for_each": "$.new.recipients",
               "key": "$.item",
               "data": {"user_id": "$.item", "title": "new {{new.kind}} from {{new.id}}",
                        "badge": "unread_total", "n": "$.index"}}]},
    {"name": "msg-removed", "match": {"table": "Messages", "op": "remove"},
     "emit": [{"topic": "bench.c", "type": "message.deleted", "key": "$.keys.id",
               "data": {"id": "$.keys.id", "was": "$.old.status"}}]},
    {"name": "order-big", "match": {"table": "Orders", "op": ["insert", "modify"],
       "pattern": {"new": {"amount": [{"numeric": [">=", 500, "<", 900]}]}}},
     "emit": [{"topic": "bench.b", "type": "order.big", "key": "$.new.id",
               "data": {"id": "$.new.id", "amount": "$.new.amount", "region": "$.new.region"}}]},
    {"name": "order-paid-eu", "match": {"table": "Orders",
       "pattern": {"new": {"status": ["paid"], "region": [{"prefix": "eu-"}]}}},
     "emit": [{"topic": "bench.b", "type": "order.paid", "key": "$.new.id",
               "data": {"id": "$.new.id", "amount": "$.new.amount"}}]},
    {"name": "order-progress", "match": {"table": "Orders", "op": "modify",
       "pattern": {"new": {"status": [{"anything-but": ["new", "paid"]}]}}},
     "emit": [{"topic": "bench.c", "type": "order.progressed", "key": "$.new.id",
               "data": {"id": "$.new.id", "from": "$.old.status", "to": "$.new.status"}}]},
    {"name": "user-email", "match": {"table": "Users", "op": "insert",
       "pattern": {"new": {"email": [{"exists": true}]}}},
     "emit": [{"topic": "bench.a", "type": "notification.email", "key": "$.new.id",
               "data": {"user_id": "$.new.id", "to": "$.new.email", "category": "welcome"}}]},
    {"name": "user-no-email", "match": {"table": "Users", "op": "insert",
       "pattern": {"new": {"email": [{"exists": false}]}}},
     "emit": [{"topic": "bench.c", "type": "user.incomplete", "key": "$.new.id",
               "data": {"user_id": "$.new.id"}}]},
    {"name": "device-ios-or-urgent", "match": {"table": "Devices", "op": ["insert", "modify"],
       "pattern": {"new": {"$or": [{"platform": ["ios"]},
                                   {"priority": [{"numeric": [">", 7]}]}]}}},
     "emit": [{"topic": "bench.b", "type": "device.registered", "key": "$.new.id",
               "data": {"user_id": "$.new.id", "platform": "$.new.platform",
                        "token": "tok-{{new.id}}"}}]},
    {"name": "comment-prio5", "match": {"table": "Comments", "op": "insert",
       "pattern": {"new": {"priority": [{"numeric": ["=", 5]}]}}},
     "emit": [{"topic": "bench.a", "type": "comment.flagged", "key": "$.new.id",
               "data": {"id": "$.new.id"}}]},
    {"name": "reaction-not-video", "match": {"table": "Reactions", "op": "insert",
       "pattern": {"new": {"kind": [{"anything-but": {"prefix": "video/"}}]}}},
     "emit": [{"topic": "bench.c", "type": "reaction.added", "key": "$.new.id",
               "data": {"id": "$.new.id", "kind": "$.new.kind"}}]},
    {"name": "payment-pdf", "match": {"table": "Payments",
       "pattern": {"new": {"kind": [{"suffix": "/pdf"}]}}},
     "emit": [{"topic": "bench.b", "type": "invoice.ready", "key": "$.new.id",
               "data": {"id": "$.new.id", "amount": "$.new.amount"}}]},
    {"name": "payment-range", "match": {"table": "Payments", "op": "modify",
       "pattern": {"new": {"amount": [{"numeric": [">", 100, "<=", 200]}]}}},
     "emit": [{"topic": "bench.c", "type": "payment.review", "key": "$.new.id",
               "data": {"id": "$.new.id", "amount": "$.new.amount"}}]},
    {"name": "session-us", "match": {"table": "Sessions", "op": "insert",
       "pattern": {"new": {"region": ["us-east-1"]}}},
     "emit": [{"topic": "bench.a", "type": "session.started", "key": "$.new.id",
               "data": {"id": "$.new.id", "region": "$.new.region"}}]},
    {"name": "session-shipped", "match": {"table": "Sessions", "op": ["insert", "modify"],
       "pattern": {"new": {"status": [{"equals-ignore-case": "SHIPPED"}]}}},
     "emit": [{"topic": "bench.b", "type": "session.shipped", "key": "$.new.id",
               "data": {"id": "$.new.id"}}]},
    {"name": "any-cancelled", "match": {"op": "modify",
       "pattern": {"new": {"status": ["cancelled"]}}},
     "emit": [{"topic": "bench.c", "type": "cancelled", "data": {"id": "$.new.id", "table": "$.table"}}]},
    {"name": "comment-eu", "match": {"table": "Comments",
       "pattern": {"new": {"region": [{"wildcard": "eu-*-1"}]}}},
     "emit": [{"topic": "bench.a", "type": "comment.eu", "key": "$.new.id",
               "data": {"id": "$.new.id", "region": "$.new.region"}}]},
    {"name": "refunded-high", "match": {"op": ["insert", "modify"],
       "pattern": {"new": {"status": ["refunded"], "amount": [{"numeric": [">=", 950]}]}}},
     "emit": [{"topic": "bench.b", "type": "refund.high", "key": "$.new.id",
               "data": {"id": "$.new.id", "amount": "$.new.amount", "table": "$.table"}}]},
    {"name": "device-removed", "match": {"table": "Devices", "op": "remove"},
     "emit": [{"topic": "bench.c", "type": "device.unregistered", "key": "$.keys.id",
               "data": {"user_id": "$.keys.id"}}]},
    {"name": "msg-urgent-or-ap", "match": {"table": "Messages", "op": "insert",
       "pattern": {"$or": [{"new": {"priority": [9]}},
                           {"new": {"region": ["ap-south-1"]}}]}},
     "emit": [{"topic": "bench.a", "type": "message.flagged", "key": "$.new.id",
               "data": {"id": "$.new.id", "priority": "$.new.priority"}}]}
  ]
}
EOF
HERALD_KAFKA_BROKERS=$BROKERS "$BIN/herald-fanout" --check-config \
    --config "$WORK/rules.json" >/dev/null 2>"$WORK/check.log" ||
    { cat "$WORK/check.log" >&2; exit 1; }

# The input, generated and produced in one stream (key TAB value), and the
# expected number of events per topic: the awk mirrors the rules above.
t0=$(date +%s.%N)
awk -v n="$N" -v expect="$WORK/expected" '
function rnd() { x = (x * 48271) % 2147483647; return x }
BEGIN {
    x = 42
    split("Messages Orders Users Devices Comments Reactions Payments Sessions", T, " ")
    split("text image/png image/jpeg video/mp4 file/pdf sticker", K, " ")
    split("new paid shipped cancelled refunded", S, " ")
    split("eu-west-1 us-east-1 ap-south-1 eu-central-1", R, " ")
    split("ios android web", P, " ")
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/"
    for (i = 0; i < n; i++) {
        t = T[1 + rnd() % 8]; r = rnd() % 10
        op = r < 6 ? "INSERT" : (r < 9 ? "MODIFY" : "REMOVE")
        kind = K[1 + rnd() % 6]; st = S[1 + rnd() % 5]; amt = rnd() % 1000
        reg = R[1 + rnd() % 4]; pr = rnd() % 10; em = rnd() % 3 != 0
        pl = P[1 + rnd() % 3]; u1 = rnd() % 10000; u2 = rnd() % 10000
        id = "k" i
        keys = "\"Keys\":{\"id\":{\"S\":\"" id "\"}}"
        if (op == "REMOVE") {
            img = keys ",\"OldImage\":{\"id\":{\"S\":\"" id "\"},\"status\":{\"S\":\"" st "\"}}"
        } else {
            img = keys ",\"NewImage\":{\"id\":{\"S\":\"" id "\"},\"kind\":{\"S\":\"" kind \
                "\"},\"status\":{\"S\":\"" st "\"},\"amount\":{\"N\":\"" amt \
                "\"},\"region\":{\"S\":\"" reg "\"},\"priority\":{\"N\":\"" pr \
                "\"},\"created_at\":{\"S\":\"2026-11-22T10:00:00Z\"}"
            if (em) img = img ",\"email\":{\"S\":\"user" i "@example.com\"}"
            if (t == "Devices") img = img ",\"platform\":{\"S\":\"" pl "\"}"
            if (t == "Messages")
                img = img ",\"recipients\":{\"L\":[{\"S\":\"u" u1 "\"},{\"S\":\"u" u2 "\"}]}"
            img = img "}"
            if (op == "MODIFY")
                img = img ",\"OldImage\":{\"id\":{\"S\":\"" id "\"},\"status\":{\"S\":\"new\"},\"amount\":{\"N\":\"" amt "\"}}"
        }
        printf "%s\t{\"eventID\":\"b-%d\",\"eventName\":\"%s\",\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"eu-west-1\",\"eventSourceARN\":\"%s%s/stream/2026-11-22T00:00:00.000\",\"dynamodb\":{\"ApproximateCreationDateTime\":1795305600,%s,\"SequenceNumber\":\"%d\",\"SizeBytes\":300,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}\n", id, i, op, arn, t, img, 100000000 + i

        ins = op == "INSERT"; mod = op == "MODIFY"; rem = op == "REMOVE"; nw = !rem
        a0 = a; b0 = b; c0 = c
        if (t == "Messages" && ins && kind == "text") a++
        if (t == "Messages" && ins && kind ~ /^image\//) a += 2
        if (t == "Messages" && rem) c++
        if (t == "Orders" && nw && amt >= 500 && amt < 900) b++
        if (t == "Orders" && nw && st == "paid" && reg ~ /^eu-/) b++
        if (t == "Orders" && mod && st != "new" && st != "paid") c++
        if (t == "Users" && ins && em) a++
        if (t == "Users" && ins && !em) c++
        if (t == "Devices" && nw && (pl == "ios" || pr > 7)) b++
        if (t == "Comments" && ins && pr == 5) a++
        if (t == "Reactions" && ins && kind !~ /^video\//) c++
        if (t == "Payments" && nw && kind ~ /\/pdf$/) b++
        if (t == "Payments" && mod && amt > 100 && amt <= 200) c++
        if (t == "Sessions" && ins && reg == "us-east-1") a++
        if (t == "Sessions" && nw && st == "shipped") b++
        if (mod && st == "cancelled") c++
        if (t == "Comments" && nw && reg ~ /^eu-.*-1$/) a++
        if (nw && st == "refunded" && amt >= 950) b++
        if (t == "Devices" && rem) c++
        if (t == "Messages" && ins && (pr == 9 || reg == "ap-south-1")) a++
        if (a + b + c > a0 + b0 + c0) matched++
    }
    print a + 0, b + 0, c + 0, matched + 0 > expect
}' | kcat -P -b "$BROKERS" -t herald.changes -K $'\t' -z lz4 \
    -X linger.ms=20 -X batch.num.messages=10000 \
    -X queue.buffering.max.messages=1000000
t1=$(date +%s.%N)
read -r exp_a exp_b exp_c matched <"$WORK/expected"
exp_total=$((exp_a + exp_b + exp_c))
load_s=$(echo "scale=1; ($t1 - $t0) / 1" | bc)

# Building block: kcat reading the same input.
kcat_rate herald.changes
kcat_rate=$KCAT_RATE got=$KCAT_GOT
json_rate herald.changes
[ "$got" -eq "$N" ] || { echo "kcat read $got records, expected $N" >&2; exit 1; }

start_worker fanout "$WORK/fanout.log" HERALD_LOG_LEVEL=warn \
    HERALD_CONFIG="$WORK/rules.json" ${WORKER_ENV:-}
wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_events_processed_total{' "$N" 900
t1=$(date +%s.%N)
rss=$(peak_rss_mb "$WORKER_PID")
nudges=$(metric "$METRICS" herald_source_fetch_nudges_total)
worker_cpu=$(cpu_s "$WORKER_PID")
broker_cpu=$(cpu_s "${PIDS[1]}") # PIDS: redis, devbroker, worker
routed=$(metric "$METRICS" 'herald_fanout_routed_total{')
ok=$(metric "$METRICS" 'herald_events_processed_total{worker="fanout",outcome="ok"}')
filtered=$(metric "$METRICS" 'herald_events_processed_total{worker="fanout",outcome="filtered"}')
dead=$(metric "$METRICS" 'herald_events_processed_total{worker="fanout",outcome="dead_lettered"}')
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true
rate=$(echo "$N / ($t1 - $t0)" | bc)
pct=$(echo "100 * $rate / $kcat_rate" | bc)

# What reached each topic.
count() { topic_count "$1"; }
got_a=$(count bench.a); got_b=$(count bench.b); got_c=$(count bench.c)
if [ "$got_a" -eq "$exp_a" ] && [ "$got_b" -eq "$exp_b" ] && [ "$got_c" -eq "$exp_c" ] &&
    [ "$routed" -eq "$exp_total" ] && [ "$ok" -eq "$matched" ] && [ "$dead" -eq 0 ]; then
    verify="verified: $exp_total events (bench.a $got_a, bench.b $got_b, bench.c $got_c) as expected"
else
    verify="MISMATCH: events a/b/c $got_a/$got_b/$got_c (expected $exp_a/$exp_b/$exp_c), routed $routed (expected $exp_total), ok $ok (expected $matched), dead letters $dead"
fi
evicted=""
if grep -q 'evicted' "$WORK/devbroker.log"; then
    evicted="  WARNING: the devbroker evicted data (see its log): counts are unreliable"
fi

cat <<OUT

herald-fanout benchmark: $N DynamoDB Streams records (8 tables; INSERT 60%,
MODIFY 30%, REMOVE 10%), 20 rules, 3 output topics, 128 input partitions,
one machine ($(nproc) cores); input generated and loaded in ${load_s} s

  herald-fanout            $(printf '%8d' "$rate") records/s   peak RSS ${rss} MB   (${pct}% of kcat)
  fetcher nudges           $nudges (librdkafka < 2.2: wake-ups after the prefetch drained)
  kcat consume (same data) $(printf '%8d' "$kcat_rate") records/s
  jansson parse (same data)$(printf '%8d' "$JSON_RATE") records/s on one core, parsing only
  records matching a rule  $matched ($(echo "100 * $matched / $N" | bc)%), filtered $filtered
  CPU seconds used: worker $worker_cpu, devbroker $broker_cpu
  $verify
$evicted
OUT
case "$verify" in verified*) ;; *) exit 1 ;; esac
