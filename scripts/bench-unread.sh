#!/usr/bin/env bash
# Benchmark of herald-unread (issue: foundation). Loads 1,000,000
# message.created events (10k users, 20k conversations of 3 members, so 2
# recipients each, 128 partitions) into herald-devbroker, runs the worker to
# completion, verifies every count against the model, and prints the
# worker's rate and peak memory next to what its building blocks do on the
# same machine in the same run.
cd "$(dirname "$0")/.."
. scripts/lib.sh

N=${N:-1000000}
GEN=(--users 10000 --convs 20000 --members 3 --messages "$N" --reads 0
     --dups 0 --window 1 --seed 42)

start_redis
start_broker --topics herald.messages:128,herald.unread:32
"$BIN/herald-chatgen" produce --brokers "$BROKERS" "${GEN[@]}"

# Building blocks: kcat reading the same topic; Redis, pipelined simple
# commands.
kcat_rate herald.messages
kcat_rate=$KCAT_RATE
json_rate herald.messages
redis_rate=$(redis_rate 2000000)
# The batch script alone: the same events through the worker's grouping and
# script with no broker and no outputs (checked exact), then a clean Redis.
alone=$("$BIN/herald-chatgen" scriptrate --redis "$REDIS_URL" "${GEN[@]}")
case "$alone" in *exact*) ;; *) echo "$alone"; exit 1 ;; esac
alone_us=$(echo "$alone" | sed -n 's/.*script \([0-9.]*\) us\/event.*/\1/p')
alone_rate=$(echo "$alone" | sed -n 's/.*Redis alone: \([0-9]*\) events.*/\1/p')
redis-cli -s "$REDIS_SOCK" flushall >/dev/null
redis-cli -s "$REDIS_SOCK" config resetstat >/dev/null

redis_cpu0=$(cpu_s "${PIDS[0]}")
broker_cpu0=$(cpu_s "${PIDS[1]}")
start_worker unread "$WORK/unread.log" HERALD_LOG_LEVEL=warn ${WORKER_ENV:-}
wait_metric "$METRICS" 'herald_events_consumed_total{' 1 120
t0=$(date +%s.%N)
wait_metric "$METRICS" 'herald_events_processed_total{' "$N" 900
t1=$(date +%s.%N)
rss=$(peak_rss_mb "$WORKER_PID")
nudges=$(metric "$METRICS" herald_source_fetch_nudges_total)
worker_cpu=$(cpu_s "$WORKER_PID")
broker_cpu=$(echo "$(cpu_s "${PIDS[1]}") - $broker_cpu0" | bc)
redis_cpu=$(echo "$(cpu_s "${PIDS[0]}") - $redis_cpu0" | bc)
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true
rate=$(echo "$N / ($t1 - $t0)" | bc)

# Redis time the batch script needs per event (its own share of Redis's
# single core), and so the rate Redis alone could sustain.
read -r calls usec < <(script_stats)
script_us=$(echo "scale=2; $usec / $N" | bc)
script_rate=$(echo "$N * 1000000 / $usec" | bc)

verify=$("$BIN/herald-chatgen" verify --redis "$REDIS_URL" "${GEN[@]}")

cat <<OUT

herald-unread benchmark: $N message.created, 10k users, 20k conversations,
2 recipients each, 128 partitions, one machine ($(nproc) cores)

  herald-unread            $(printf '%8d' "$rate") events/s   peak RSS ${rss} MB
  fetcher nudges           $nudges (librdkafka < 2.2: wake-ups after the prefetch drained)
  kcat consume (same data) $(printf '%8d' "$kcat_rate") events/s
  jansson parse (same data)$(printf '%8d' "$JSON_RATE") events/s on one core, parsing only
  redis SET, pipelined x64 $(printf '%8d' "$redis_rate") commands/s
  redis time in the batch script: ${script_us} us/event over $calls calls
                           (Redis alone could sustain ${script_rate} events/s)
  the batch script alone   ${alone_us} us/event of Redis time, same events, no worker
                           (herald-chatgen scriptrate: Redis alone $alone_rate events/s)
  CPU seconds used by the run: worker $worker_cpu, redis $redis_cpu, devbroker $broker_cpu
  $verify
OUT
case "$verify" in *exact*) ;; *) exit 1 ;; esac
