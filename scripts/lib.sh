# Shared helpers of the demo and benchmark scripts (sourced, not run).
# Starts throw-away redis-server and herald-devbroker processes in a temp
# directory and removes every process and file on exit.

set -euo pipefail

BIN=${BIN:-build/release/bin}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_redis: a redis-server on a unix socket; sets REDIS_SOCK, REDIS_URL.
start_redis() {
    REDIS_SOCK=$WORK/redis.sock
    redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        redis-cli -s "$REDIS_SOCK" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    REDIS_URL=unix://$REDIS_SOCK
}

# start_broker [devbroker args...]: sets BROKERS.
start_broker() {
    "$BIN/herald-devbroker" --bootstrap-file "$WORK/bootstrap" "$@" \
        >"$WORK/devbroker.out" 2>"$WORK/devbroker.log" &
    PIDS+=($!)
    for _ in $(seq 200); do [ -s "$WORK/bootstrap" ] && break; sleep 0.05; done
    BROKERS=$(cat "$WORK/bootstrap")
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# listening_port FILE [WORD]: the port a fake started with --port 0 prints
# to FILE as "WORD <port>" (WORD: listening), waiting up to 20 s; fails
# with the file shown when it never comes. Port 0 leaves no race with the
# other processes that pick ports (tests running beside the script).
listening_port() {
    local word=${2:-listening} port
    for _ in $(seq 400); do
        port=$(sed -n "s/^$word \([0-9][0-9]*\)$/\1/p" "$1" 2>/dev/null | head -1)
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.05
    done
    echo "no '$word <port>' line in $1:" >&2
    cat "$1" >&2 2>/dev/null || true
    return 1
}

# start_worker NAME LOG [VAR=VALUE...] [-- ARGS...]: runs herald-NAME (under
# $WRAP when set, e.g. WRAP="valgrind --tool=massif" for profiling) with
# the metrics server on a free port; sets WORKER_PID and METRICS (base URL).
# A port taken between free_port and the worker's bind (other processes
# pick ports too) is tried again with another one.
start_worker() {
    local name=$1 log=$2 port vars=() attempt
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    for attempt in 1 2 3; do
        port=$(free_port)
        env HERALD_KAFKA_BROKERS="$BROKERS" HERALD_REDIS_URL="$REDIS_URL" \
            HERALD_METRICS_ADDR=127.0.0.1:$port "${vars[@]}" \
            ${WRAP:-} "$BIN/herald-$name" "$@" 2>"$log" &
        WORKER_PID=$!
        METRICS=http://127.0.0.1:$port
        for _ in $(seq 100); do
            curl -sf "$METRICS/healthz" >/dev/null && break
            kill -0 "$WORKER_PID" 2>/dev/null || break
            sleep 0.05
        done
        if ! kill -0 "$WORKER_PID" 2>/dev/null &&
            grep -q 'Address already in use' "$log"; then
            wait "$WORKER_PID" 2>/dev/null || true
            continue
        fi
        break
    done
    PIDS+=($WORKER_PID)
}

# metric URL PREFIX: the sum of the series starting with PREFIX.
metric() {
    curl -sf "$1/metrics" | awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

# wait_metric URL PREFIX N TIMEOUT_S: until the metric reaches N.
wait_metric() {
    local deadline=$((SECONDS + $4))
    while [ "$(metric "$1" "$2")" -lt "$3" ]; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.1
    done
}

# subs_outcomes URL: herald-subs' notifications applied, by result
# ("applied 3, duplicate 1").
subs_outcomes() {
    curl -sf "$1/metrics" | awk '/^herald_subs_applied_total\{/ {
        match($0, /result="[^"]*"/); r = substr($0, RSTART + 8, RLENGTH - 9)
        printf "%s%s %d", sep, r, $NF; sep = ", " }'
}

# peak_rss_mb PID: the process's peak resident set (VmHWM) in MB.
peak_rss_mb() {
    awk '/VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# cpu_s PID: user + system CPU seconds the process has used so far.
cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

# topic_count TOPIC: messages in TOPIC, read from the beginning with kcat.
topic_count() {
    kcat -C -b "$BROKERS" -t "$1" -o beginning -e -q -f '%o\n' | wc -l
}

# kcat_rate TOPIC: reads TOPIC with kcat; sets KCAT_GOT (messages) and
# KCAT_RATE (messages/s) — the consume limit the benchmarks compare with.
kcat_rate() {
    local t0 t1
    t0=$(date +%s.%N)
    KCAT_GOT=$(topic_count "$1")
    t1=$(date +%s.%N)
    KCAT_RATE=$(echo "$KCAT_GOT / ($t1 - $t0)" | bc)
}

# json_rate TOPIC: how fast jansson alone parses TOPIC's values on one core
# (values/s), the way the workers parse them; sets JSON_RATE.
json_rate() {
    JSON_RATE=$(kcat -C -b "$BROKERS" -t "$1" -o beginning -e -q -f '%s\n' |
        "$BIN/herald-chatgen" jsonrate | awk '{ print $5 }')
}

# script_stats: "calls usec" of EVALSHA on our Redis (its own time in the
# worker's scripts).
script_stats() {
    redis-cli -s "$REDIS_SOCK" info commandstats |
        awk -F'[=,:]' '/cmdstat_evalsha/ { print $3, $5 }'
}

# redis_rate N: redis-benchmark's pipelined (x64) SET rate on our Redis.
redis_rate() {
    redis-benchmark -s "$REDIS_SOCK" -n "$1" -P 64 -t set -q --csv 2>/dev/null |
        awk -F'"' '/SET/ { printf "%d\n", $4 }'
}

# make_pki: a throw-away CA (ca.pem, for HERALD_TLS_CA_FILE), a server
# certificate it signed for 127.0.0.1 (server.pem, server.key) and a
# service account's RSA key (sa.key), in $WORK.
make_pki() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=herald-test-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj /CN=127.0.0.1 -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$WORK/san.ext"
    openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
        -CAcreateserial -days 1 -extfile "$WORK/san.ext" -out "$WORK/server.pem" 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/sa.key" 2>/dev/null
}

# start_fake_push TEAM KEY_ID TOPIC PROJECT [fake_push.js args...]: the fake
# APNs/FCM/Web Push (tests/node/fake_push.js, HTTP/2 over TLS) with a
# throw-away CA, and the credentials herald-push needs, all in $WORK:
# ca.pem (HERALD_TLS_CA_FILE), AuthKey.p8 (APNs), sa.json (FCM service
# account, token_uri on the fake), vapid.pem (Web Push). The fake is told
# the public halves. Sets FAKE (its origin), FAKE_PORT, FAKE_PID, and
# PUSH_ENV: the settings that point herald-push at it for all three
# providers (start_worker push LOG "${PUSH_ENV[@]}" ...).
start_fake_push() {
    local team=$1 kid=$2 topic=$3 project=$4
    shift 4
    make_pki
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/AuthKey.p8" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/vapid.pem" 2>/dev/null
    node tests/node/fake_push.js --port 0 --cert "$WORK/server.pem" \
        --key "$WORK/server.key" "$@" >"$WORK/fake.out" 2>"$WORK/fake.log" &
    FAKE_PID=$!
    PIDS+=($FAKE_PID)
    FAKE_PORT=$(listening_port "$WORK/fake.out")
    FAKE=https://127.0.0.1:$FAKE_PORT
    PUSH_ENV=(HERALD_TLS_CA_FILE="$WORK/ca.pem"
        HERALD_APNS_KEY_FILE="$WORK/AuthKey.p8" HERALD_APNS_KEY_ID="$kid"
        HERALD_APNS_TEAM_ID="$team" HERALD_APNS_TOPIC="$topic"
        HERALD_APNS_ENDPOINT="$FAKE" HERALD_APNS_SANDBOX_ENDPOINT="$FAKE"
        HERALD_FCM_CREDENTIALS_FILE="$WORK/sa.json" HERALD_FCM_ENDPOINT="$FAKE"
        HERALD_WEBPUSH_VAPID_KEY_FILE="$WORK/vapid.pem"
        HERALD_WEBPUSH_SUBJECT=mailto:ops@example.com)
    node -e '
        const fs = require("fs");
        const [dir, fake, team, kid, topic, project] = process.argv.slice(1);
        const email = "herald@" + project + ".iam.gserviceaccount.com";
        const sa = fs.readFileSync(dir + "/sa.key", "utf8");
        fs.writeFileSync(dir + "/sa.json", JSON.stringify({type: "service_account",
            project_id: project, private_key_id: "k1", private_key: sa,
            client_email: email, token_uri: fake + "/token"}));
        fs.writeFileSync(dir + "/config.json", JSON.stringify({
            apns: {public_key_pem: fs.readFileSync(dir + "/AuthKey.p8", "utf8"),
                   team_id: team, key_id: kid, topic: topic},
            fcm: {public_key_pem: sa, client_email: email, project_id: project}}));' \
        "$WORK" "$FAKE" "$team" "$kid" "$topic" "$project"
    fake_push -X POST --data-binary @"$WORK/config.json" /_control/config >/dev/null
}

# fake_push [curl args...] PATH: a call to the fake's control API.
fake_push() {
    local path=${*: -1}
    curl -sf --cacert "$WORK/ca.pem" "${@:1:$#-1}" "$FAKE$path"
}

# start_fake_email [fake_email.js args...]: tests/node/fake_email.js (a
# real SMTP server, npm smtp-server, and an SES v2 endpoint) on free ports;
# sets SMTP_PORT, FAKE_EMAIL (its control base URL) and FAKE_EMAIL_PID.
start_fake_email() {
    local port
    node tests/node/fake_email.js --port 0 --smtp-port 0 "$@" \
        >"$WORK/fake-email.out" 2>"$WORK/fake-email.log" &
    FAKE_EMAIL_PID=$!
    PIDS+=($FAKE_EMAIL_PID)
    port=$(listening_port "$WORK/fake-email.out")
    SMTP_PORT=$(listening_port "$WORK/fake-email.out" smtp)
    FAKE_EMAIL=http://127.0.0.1:$port
}

# start_chat_apis: the chat app's fake APIs for herald-fanout's webhooks
# (tests/harness/fake_http.js): the legacy API verifies every JWT and
# answers 503 to its first 8 calls, then 201; the trust-and-safety API
# answers 401 to everything. Exports their secrets, writes the example
# chat rules pointed at them to $WORK/rules.json; sets API_PORT.
start_chat_apis() {
    export LEGACY_JWT_SECRET=demo-secret-0123456789abcdef0123456789
    export TRUST_SAFETY_TOKEN=an-expired-token
    cat >"$WORK/legacy.json" <<JSON
{"routes": [{"path": "/api/v1/conversations",
             "statuses": [503, 503, 503, 503, 503, 503, 503, 503, 201],
             "jwt": {"alg": "HS256", "secret": "$LEGACY_JWT_SECRET",
                     "iss": "herald", "aud": "legacy-api"}},
            {"path": "/v2/reports", "status": 401}]}
JSON
    node tests/harness/fake_http.js --port 0 --script "$WORK/legacy.json" \
        >"$WORK/legacy.out" 2>&1 &
    PIDS+=($!)
    API_PORT=$(listening_port "$WORK/legacy.out")
    sed "s#http://127.0.0.1:1808[01]#http://127.0.0.1:$API_PORT#" \
        workers/fanout/examples/chat-rules.json >"$WORK/rules.json"
}

# chat_profiles: the app's user profiles in Redis (SPEC section 5): Bruno
# reads French, Chen opted out of email, Dev has no address.
chat_profiles() {
    local p
    for p in "u1 email ann@chat.example name Ann locale en" \
             "u2 email bruno@chat.example name Bruno locale fr" \
             "u3 email chen@chat.example name Chen email_opt_out 1" \
             "u4 name Dev" "u5 email dana@chat.example name Dana"; do
        set -- $p
        redis-cli -s "$REDIS_SOCK" HSET "herald:profiles:{$1}" "${@:2}" >/dev/null
    done
}
