#!/usr/bin/env bash
# Benchmark of herald-email (issue: herald-email). N notification.email
# (default 1,000,000) for USERS users (50,000) in two digest categories go
# into herald-devbroker; herald-email ingests them into their windows
# (ingest rate, peak RSS; the Redis time of the ingest script per event;
# kcat and jansson on the same records: the building blocks' limits).
# Then every window is made due at once and herald-email renders and sends
# one digest per (user, category) to the fake SMTP server (npm smtp-server
# in --quiet mode, the sink): emails/s. Finally nodemailer's pooled SMTP
# transport sends the same rendered messages to the same server with the
# same number of connections.
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-1000000}
USERS=${USERS:-50000}
C=${C:-5}          # SMTP connections, herald-email and nodemailer alike
PEER=${PEER:-30000} # messages nodemailer sends

start_redis
start_broker --topics herald.email:32
start_fake_email --quiet
fake_email() { curl -sf "$FAKE_EMAIL$1"; }
field() { echo "$1" | sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p" | cut -d. -f1; }

echo "producing $N notification.email for $USERS users ..." >&2
awk -v n="$N" -v d="$USERS" 'BEGIN { for (i = 0; i < n; i++) {
    u = "u" (i % d); c = (int(i / d) % 2) ? "comment" : "reaction"
    printf "%s|{\"specversion\":\"1.0\",\"id\":\"e-%d\",\"source\":\"/bench\",\"type\":\"notification.email\",\"time\":\"2026-12-06T12:00:00.000Z\",\"data\":{\"user_id\":\"%s\",\"category\":\"%s\",\"to\":\"%s@example.com\",\"actor_name\":\"Member %d\",\"item_title\":\"Post %d\",\"item_url\":\"https://chat.example/p/%d\",\"text\":\"Nice one, see you on Saturday %d\"}}\n", u, i, u, c, u, i % 977, i % 1000, i % 1000, i } }' |
    kcat -P -b "$BROKERS" -t herald.email -K '|' -z lz4

# Building blocks on the same records: kcat consuming them, jansson
# parsing them on one core.
kcat_rate herald.email
json_rate herald.email

# --- ingest: windows of an hour, so none closes while the events come in ---
redis-cli -s "$REDIS_SOCK" config resetstat >/dev/null
redis_cpu0=$(cpu_s "${PIDS[0]}")
start_worker email "$WORK/email.log" HERALD_LOG_LEVEL=warn \
    HERALD_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" HERALD_EMAIL_FROM=notify@chat.example \
    HERALD_EMAIL_WINDOW_SECONDS=3600 HERALD_EMAIL_CONCURRENCY="$C" ${XENV:-} \
    -- --config workers/email/examples/email.json
wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_email_events_total{' "$N" 900
t1=$(date +%s.%N)
INGEST=$(echo "$N / ($t1 - $t0)" | bc)
INGEST_RSS=$(peak_rss_mb "$WORKER_PID")
INGEST_CPU=$(cpu_s "$WORKER_PID")
REDIS_CPU=$(echo "$(cpu_s "${PIDS[0]}") - $redis_cpu0" | bc)
# The Redis time of the worker's scripts so far: the ingest script, and the
# timer's claim calls that found nothing due.
read -r calls usec < <(script_stats)
SCRIPT_US=$(echo "scale=2; $usec / $N" | bc)
SCRIPT_RATE=$(echo "$N * 1000000 / $usec" | bc)
WINDOWS=$(redis-cli -s "$REDIS_SOCK" zcard herald:email:due)
LIMIT=$(( SCRIPT_RATE < JSON_RATE ? SCRIPT_RATE : JSON_RATE ))

# --- send: every window due now ---------------------------------------------
echo "ingested $N events into $WINDOWS windows at $INGEST events/s (redis: $SCRIPT_US us/event); sending them ..." >&2
redis-cli -s "$REDIS_SOCK" zunionstore herald:email:due 1 herald:email:due weights 0 >/dev/null
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_email_sent_total{' "$WINDOWS" 900 || true
t1=$(date +%s.%N)
SENT=$(metric "$METRICS" 'herald_email_sent_total{')
SEND=$(echo "$SENT / ($t1 - $t0)" | bc)
RSS=$(peak_rss_mb "$WORKER_PID")
CPU=$(echo "$(cpu_s "$WORKER_PID") - $INGEST_CPU" | bc)
summary=$(fake_email /_control/summary)
RECEIVED=$(field "$summary" messages)
DUPS=$(metric "$METRICS" herald_email_duplicate_sends_total)
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true

# --- the peer: nodemailer, pooled, the same rendered messages ----------------
{ kcat -C -b "$BROKERS" -t herald.email -o beginning -e -q 2>/dev/null || true; } |
    grep '"type":"email.send"' | head -n "$PEER" |
    node -e 'const rl = require("readline").createInterface({input: process.stdin});
        rl.on("line", l => { const d = JSON.parse(l).data;
            console.log(JSON.stringify({from: d.from, to: d.to, raw: d.raw})); });' \
    >"$WORK/rendered.jsonl" || true
curl -sf -X POST -d '{}' "$FAKE_EMAIL/_control/reset" >/dev/null
peer=$(node tests/node/bench_email_nodemailer.js --smtp-port "$SMTP_PORT" \
    --messages "$WORK/rendered.jsonl" --connections "$C")
PEER_RATE=$(field "$peer" rate)
PEER_RSS=$(echo "$peer" | sed -n 's/.*"rss_mb": *\([0-9.]*\).*/\1/p')

pct() { echo "scale=0; 100 * $1 / ${2:-1}" | bc; }
ratio() { echo "scale=2; $1 / ${2:-1}" | bc; }
cat <<OUT

herald-email benchmark: $N notification.email for $USERS users in two digest
categories, 32 partitions; then all $WINDOWS windows due at once, one digest
each to a local SMTP server (npm smtp-server, --quiet), $C connections; one
machine ($(nproc) cores)

  ingest
  herald-email              $(printf '%8d' "$INGEST") events/s   peak RSS ${INGEST_RSS} MB (CPU s: worker $INGEST_CPU, redis $REDIS_CPU)
  kcat consume (same data)  $(printf '%8d' "$KCAT_RATE") events/s
  jansson parse (same data) $(printf '%8d' "$JSON_RATE") events/s on one core, parsing only
  redis time in the scripts ${SCRIPT_US} us/event over $calls calls (Redis alone: $SCRIPT_RATE events/s)
  herald-email / the lower limit ($LIMIT): $(pct "$INGEST" "$LIMIT")%  (target >= 60%)

  send
  herald-email              $(printf '%8d' "$SEND") emails/s   peak RSS ${RSS} MB ($SENT sent, $RECEIVED received, $DUPS possible duplicates; worker CPU s $CPU)
  nodemailer (pooled)       $(printf '%8d' "${PEER_RATE:-0}") emails/s   RSS ${PEER_RSS} MB (the same $PEER rendered messages)
  herald-email / nodemailer: $(ratio "$SEND" "$PEER_RATE")x  (target >= 1)
OUT
