#!/usr/bin/env bash
# Benchmark of herald-unread with a community's big groups: bursts into a
# few conversations of MEMBERS (2,000) members, MSGS (2,000) messages, some
# read receipts and duplicates. Prints the rate in deliveries (message x
# recipient), the worker's peak RSS, Redis's peak memory, the number and mean
# Redis time of the script calls, the CPU of each process, and checks every
# count against the model.
#
#   make release && bash scripts/bench-unread-groups.sh
cd "$(dirname "$0")/.."
. scripts/lib.sh

M=${MEMBERS:-2000}
GEN=(--users $((M + 500)) --convs "${CONVS:-3}" --members "$M"
     --messages "${MSGS:-2000}" --reads 0.05 --dups 0.02 --window 50 --seed 5)

start_redis
start_broker --topics herald.messages:8,herald.unread:8
out=$("$BIN/herald-chatgen" produce --brokers "$BROKERS" "${GEN[@]}")
echo "$out"
total=$(echo "$out" | awk '{ print $2 }')

# Timed from the start, the group join (~3 s on the mock broker) included:
# with one batch, the first batch's end is already the end.
t0=$(date +%s.%N)
start_worker unread "$WORK/unread.log" HERALD_LOG_LEVEL=warn ${WORKER_ENV:-}
wait_metric "$METRICS" 'herald_events_processed_total{' "$total" 900
t1=$(date +%s.%N)
rss=$(peak_rss_mb "$WORKER_PID")
batches=$(metric "$METRICS" herald_batches_total)
cpu="worker $(cpu_s "$WORKER_PID"), redis $(cpu_s "${PIDS[0]}"), devbroker $(cpu_s "${PIDS[1]}")"
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true
read -r calls usec < <(script_stats)
redis_peak=$(redis-cli -s "$REDIS_SOCK" info memory |
    awk -F: '/^used_memory_peak_human/ { sub("\r", "", $2); print $2 }')
verify=$("$BIN/herald-chatgen" verify --redis "$REDIS_URL" "${GEN[@]}")
deliveries=$((${MSGS:-2000} * (M - 1)))

cat <<OUT

herald-unread, big groups: $total events into ${CONVS:-3} conversations of $M members

  wall time                $(echo "$t1 - $t0" | bc | cut -c1-5) s from the worker's start, join included ($batches batches)
  messages x recipients    $deliveries: $(echo "$deliveries / ($t1 - $t0)" | bc)/s
  peak RSS                 $rss MB (redis peak $redis_peak)
  script calls             $calls, $(echo "$usec / $calls / 1000" | bc) ms of Redis each on average
  CPU seconds              $cpu
  $verify
OUT
case "$verify" in *exact*) ;; *) exit 1 ;; esac
