#!/usr/bin/env bash
# Benchmark of the SQS source (issue: the runtime's layout and SQS): N
# message.created events (default 200,000) through an SQS queue of the
# emulator fauxqs into herald-unread, verified exact against the model, and,
# in the same run, on queues loaded with the same events:
#  - the emulator's own limit: @aws-sdk/client-sqs receiving 10 and
#    deleting them in batches of 10 at the same concurrency, no work per
#    message (tests/node/bench_sqs_limit.js), and the same calls without the
#    SDK (--raw: the emulator's ceiling, the SDK being CPU-bound first);
#  - the peer a Node team would write: the npm sqs-consumer package doing
#    the unread update per message through ioredis
#    (tests/node/bench_sqs_consumer.js).
# herald-unread runs without Kafka (its unread.changed outputs discarded
# and counted), as the peers emit nothing either; WORKER_ENV adds settings.
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-200000}
C=${C:-8}
GEN=(--users 10000 --convs 20000 --members 3 --messages "$N" --reads 0
     --dups 0 --window 1 --seed 7)
NODE=tests/node

start_redis
# fauxqs: its stdout logs two JSON lines per request.
SQS_PORT=$(free_port)
FAUXQS_PORT=$SQS_PORT node "$NODE/node_modules/fauxqs/dist/cli.js" \
    >/dev/null 2>"$WORK/fauxqs.log" &
PIDS+=($!)
FAUXQS_PID=$!
ENDPOINT=http://127.0.0.1:$SQS_PORT
for _ in $(seq 200); do curl -sf "$ENDPOINT/health" >/dev/null && break; sleep 0.05; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_SQS=$ENDPOINT

# new_queue NAME: create it and fill it with the scenario; sets QUEUE.
new_queue() {
    QUEUE=$(curl -sf --aws-sigv4 aws:amz:us-east-1:sqs -u bench:bench \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: AmazonSQS.CreateQueue' \
        -d "{\"QueueName\":\"$1\"}" "$ENDPOINT/" | sed 's/.*"QueueUrl":"\([^"]*\)".*/\1/')
    "$BIN/herald-chatgen" sqs --queue-url "$QUEUE" --concurrency 16 "${GEN[@]}" >&2
}

# field JSON NAME: a number field of a one-line JSON object.
field() {
    echo "$1" | sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p"
}

echo "loading $N events into three queues of the emulator ..." >&2
new_queue limit
limit=$(node "$NODE/bench_sqs_limit.js" --endpoint "$ENDPOINT" \
    --queue-url "$QUEUE" --count "$N" --concurrency "$C")
new_queue raw
raw=$(node "$NODE/bench_sqs_limit.js" --endpoint "$ENDPOINT" \
    --queue-url "$QUEUE" --count "$N" --concurrency "$C" --raw)
new_queue peer
peer=$(node "$NODE/bench_sqs_consumer.js" --endpoint "$ENDPOINT" \
    --queue-url "$QUEUE" --redis "$REDIS_URL" --count "$N" --concurrency "$C")
redis-cli -s "$REDIS_SOCK" flushall >/dev/null

new_queue unread
fauxqs_cpu0=$(cpu_s "$FAUXQS_PID")
redis_cpu0=$(cpu_s "${PIDS[0]}")
BROKERS='' start_worker unread "$WORK/unread.log" HERALD_LOG_LEVEL=warn \
    HERALD_KAFKA_BROKERS= HERALD_SOURCE=sqs HERALD_SQS_QUEUE_URL="$QUEUE" \
    HERALD_SQS_RECEIVERS="$C" ${WORKER_ENV:-}
wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_events_processed_total{' "$N" 900
t1=$(date +%s.%N)
rss=$(peak_rss_mb "$WORKER_PID")
worker_cpu=$(cpu_s "$WORKER_PID")
fauxqs_cpu=$(echo "$(cpu_s "$FAUXQS_PID") - $fauxqs_cpu0" | bc)
redis_cpu=$(echo "$(cpu_s "${PIDS[0]}") - $redis_cpu0" | bc)
calls=$(metric "$METRICS" 'herald_sqs_calls_total{')
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true
rate=$(echo "$N / ($t1 - $t0)" | bc)
verify=$("$BIN/herald-chatgen" verify --redis "$REDIS_URL" "${GEN[@]}")

limit_rate=$(field "$limit" rate | cut -d. -f1)
raw_rate=$(field "$raw" rate | cut -d. -f1)
peer_rate=$(field "$peer" rate | cut -d. -f1)
pct() { echo "scale=0; 100 * $1 / $2" | bc; }

cat <<OUT

SQS source benchmark: $N message.created (2 recipients each) in a standard
queue of fauxqs, $C receives in flight, one machine ($(nproc) cores)

  herald-unread (HERALD_SOURCE=sqs) $(printf '%7d' "$rate") events/s   peak RSS ${rss} MB
  emulator limit, @aws-sdk/client-sqs $(printf '%6d' "${limit_rate:-0}") msgs/s   receive 10 + delete batch, no work
  emulator limit, same calls raw    $(printf '%7d' "${raw_rate:-0}") msgs/s   no SDK (fauxqs's own ceiling)
  sqs-consumer + ioredis (npm)      $(printf '%7d' "${peer_rate:-0}") msgs/s   what a Node team writes
  herald-unread / SDK limit: $(pct "$rate" "${limit_rate:-1}")%  (target >= 80%)
  herald-unread / raw limit: $(pct "$rate" "${raw_rate:-1}")%
  herald-unread / sqs-consumer: $(echo "scale=1; $rate / ${peer_rate:-1}" | bc)x  (target > 1)
  herald-unread's run: $calls SQS calls; CPU seconds: worker $worker_cpu, fauxqs $fauxqs_cpu, redis $redis_cpu
  $verify
OUT
case "$verify" in *exact*) ;; *) exit 1 ;; esac
