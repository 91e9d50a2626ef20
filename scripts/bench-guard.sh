#!/usr/bin/env bash
# Benchmark of herald-guard: schedule-and-redeliver throughput. Loads N
# (100,000) retry records, due immediately, into herald.retry, runs the
# guard until every one is back on herald.redeliver.bench, and prints
# records/s, peak RSS and the CPU of the guard, Redis and the broker next
# to kcat reading the same input and Redis's pipelined rate, measured in
# the same run.
#
#   make release && bash scripts/bench-guard.sh
#
# GUARD_ENV adds settings to the guard, for example the memory-bounded run
# of the README:
#   GUARD_ENV='HERALD_BATCH_MAX=5000 HERALD_KAFKA_PROPERTIES=queued.min.messages=30000;queued.max.messages.kbytes=16384' \
#       bash scripts/bench-guard.sh
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-100000}
start_redis
redis_pid=${PIDS[-1]}
start_broker --topics herald.retry:32,herald.redeliver.bench:32
broker_pid=${PIDS[-1]}

now_ms=$(($(date +%s%N) / 1000000))
t0=$(date +%s.%N)
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
    printf "user-%d|{\"id\":\"evt-%d\",\"data\":\"retry me\"}\n", i % 5000, i }' |
    kcat -P -b "$BROKERS" -t herald.retry -K '|' -z lz4 \
        -H herald-worker=bench -H herald-destination=webhook:bench \
        -H herald-attempt=1 -H "herald-first-failure-ms=$now_ms" \
        -H herald-error-class=transient -H "herald-error=HTTP 503"
echo "loaded $N retry records in $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"

kcat_rate herald.retry
kcat_rate=$KCAT_RATE
redis_rate=$(redis_rate 1000000)

# Due at once, and a budget that does not hold anything back: this
# measures the schedule itself.
read -r -a guard_env <<<"${GUARD_ENV:-}"
redis_cpu0=$(cpu_s "$redis_pid")
broker_cpu0=$(cpu_s "$broker_pid")
start_worker guard "$WORK/guard.log" HERALD_LOG_LEVEL=warn \
    HERALD_GUARD_BASE_DELAY_MS=0 HERALD_GUARD_MAX_DELAY_MS=0 \
    HERALD_GUARD_RETRY_FLOOR_PER_S=1000000 ${TICK_MAX:+HERALD_GUARD_TICK_MAX=$TICK_MAX} \
    HERALD_BATCH_WAIT_MS=10 "${guard_env[@]}"
wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_guard_redelivered_total{' "$N" 600
t1=$(date +%s.%N)
rss=$(peak_rss_mb "$WORKER_PID")
nudges=$(metric "$METRICS" herald_source_fetch_nudges_total)
cpu=$(cpu_s "$WORKER_PID")
redis_cpu=$(echo "$(cpu_s "$redis_pid") - $redis_cpu0" | bc)
broker_cpu=$(echo "$(cpu_s "$broker_pid") - $broker_cpu0" | bc)
rate=$(echo "$N / ($t1 - $t0)" | bc)
back=$(topic_count herald.redeliver.bench)
left=$(($(redis-cli -s "$REDIS_SOCK" zcard 'herald:guard:{sched}:due') +
        $(redis-cli -s "$REDIS_SOCK" zcard 'herald:guard:{sched}:wait')))

cat <<OUT

herald-guard benchmark: $N retry records due at once, 32 partitions, one
machine ($(nproc) cores)${GUARD_ENV:+, with $GUARD_ENV}

  herald-guard             $(printf '%8d' "$rate") records/s   peak RSS ${rss} MB   CPU ${cpu} s
  fetcher nudges           $nudges (librdkafka < 2.2: wake-ups after the prefetch drained)
  CPU of the others        redis-server ${redis_cpu} s, herald-devbroker ${broker_cpu} s
  kcat consume (same data) $(printf '%8d' "$kcat_rate") records/s
  redis SET, pipelined x64 $(printf '%8d' "$redis_rate") commands/s
  redelivered records on herald.redeliver.bench: $back, left in the schedule: $left
OUT
[ "$back" -ge "$N" ] && [ "$left" = 0 ]
