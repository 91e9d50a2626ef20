#!/usr/bin/env bash
# The Herald demo: a throw-away Redis, herald-devbroker, an SQS emulator
# (fauxqs), two fake APIs and fake push providers; the fleet
# (herald-fanout, herald-unread, herald-push, herald-email, herald-subs,
# herald-guard) on top; a chat app's DynamoDB change records fed through it
# — the abuse reports through an SQS queue, some of them wrapped by SNS,
# read by a second herald-fanout with HERALD_SOURCE=sqs — and a summary of
# what happened. The legacy API fails with 503 for a while and then
# recovers; the trust-and-safety API refuses our credentials (401). Every
# process is cleaned up on exit.
cd "$(dirname "$0")/.."
. scripts/lib.sh

# A small chat as DynamoDB Streams records of its Messages and ReadReceipts
# tables: 8 users, 6 conversations of 3 members, 240 messages, read
# receipts that arrive late or early (shuffled in windows of 25 records),
# and 10% of the records delivered twice.
GEN=(--users 8 --convs 6 --members 3 --messages 240 --reads 0.3 --dups 0.1
     --window 25 --seed 7)

say() { printf '\n== %s\n' "$*"; }
count() { topic_count "$1"; }

say "starting redis-server, herald-devbroker and the fake APIs"
start_redis
start_broker
start_chat_apis
legacy_port=$API_PORT
# The SQS leg: fauxqs (npm, installed by scripts/deps.sh) and a queue the
# app's report service writes to.
sqs_port=$(free_port)
FAUXQS_PORT=$sqs_port node tests/node/node_modules/fauxqs/dist/cli.js \
    >/dev/null 2>"$WORK/fauxqs.log" &
PIDS+=($!)
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$sqs_port AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
for _ in $(seq 200); do curl -sf "$AWS_ENDPOINT_URL_SQS/health" >/dev/null && break; sleep 0.05; done
sqs() {
    curl -sf --aws-sigv4 aws:amz:us-east-1:sqs -u demo:demo \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H "X-Amz-Target: AmazonSQS.$1" -d "$2" "$AWS_ENDPOINT_URL_SQS/"
}
REPORTS=$(sqs CreateQueue '{"QueueName":"herald-reports"}' |
    sed 's/.*"QueueUrl":"\([^"]*\)".*/\1/')
echo "redis:      $REDIS_URL"
echo "broker:     $BROKERS"
echo "fake APIs:  http://127.0.0.1:$legacy_port (legacy: checks every JWT, 503 then 201;"
echo "            trust-and-safety: 401)"
echo "sqs:        $AWS_ENDPOINT_URL_SQS (fauxqs), queue $REPORTS"

say "starting herald-fanout (workers/fanout/examples/chat-rules.json)"
# Small circuit settings so that the demo shows it opening and closing.
CIRCUIT=(HERALD_GUARD_CIRCUIT_MIN_CALLS=3 HERALD_GUARD_CIRCUIT_OPEN_MS=1500)
start_worker fanout "$WORK/fanout.log" "${CIRCUIT[@]}" -- --config "$WORK/rules.json"
FANOUT=$METRICS FANOUT_PID=$WORKER_PID
say "starting a second herald-fanout reading the SQS queue herald-reports"
start_worker fanout "$WORK/fanout-sqs.log" "${CIRCUIT[@]}" HERALD_SOURCE=sqs \
    HERALD_SQS_QUEUE_URL="$REPORTS" HERALD_SQS_WAIT_SECONDS=1 \
    -- --config "$WORK/rules.json"
FANOUT_SQS=$METRICS FANOUT_SQS_PID=$WORKER_PID
say "starting herald-unread (push.requested enabled, exact badges)"
start_worker unread "$WORK/unread.log" HERALD_UNREAD_PUSH_TOPIC=herald.push
UNREAD=$METRICS UNREAD_PID=$WORKER_PID
say "starting herald-guard (retries with backoff, budgets, dead letters)"
start_worker guard "$WORK/guard.log" "${CIRCUIT[@]}" \
    HERALD_GUARD_BASE_DELAY_MS=300 HERALD_GUARD_MAX_DELAY_MS=2000
GUARD=$METRICS GUARD_PID=$WORKER_PID

say "starting the fake APNs, FCM and Web Push (HTTP/2 over TLS) and herald-push"
start_fake_push TEAM123456 KEY1234567 com.example.chat herald-demo
echo "fake push:  $FAKE"
start_worker push "$WORK/push.log" "${PUSH_ENV[@]}"
PUSH=$METRICS PUSH_PID=$WORKER_PID

say "starting a fake SMTP server (npm smtp-server) and herald-email"
# Comments are digested per user in windows of 3 seconds (900 in
# production); a reaction is emailed at once and the rest of its window
# suppressed (workers/email/examples/email.json).
start_fake_email
echo "fake SMTP:  smtp://127.0.0.1:$SMTP_PORT (control: $FAKE_EMAIL)"
start_worker email "$WORK/email.log" HERALD_SMTP_URL=smtp://127.0.0.1:$SMTP_PORT \
    HERALD_EMAIL_FROM=notify@chat.example HERALD_EMAIL_WINDOW_SECONDS=3 \
    -- --config workers/email/examples/email.json
EMAIL=$METRICS EMAIL_PID=$WORKER_PID
chat_profiles

# herald-subs verifies App Store notifications against Apple's test chain
# (../shared/vectors/appstore: Apple's own test certificates, whose leaf key
# signs them here), so that the demo needs no real App Store; Google Play
# notifications are read back from a fake Play Developer API (HTTPS, the
# push fakes' throw-away CA) that answers, call after call, what Google
# would say of the subscription as it lives.
APPLE_CERTS=../shared/vectors/appstore/certs
SUBS_PID=
if [ -f "$APPLE_CERTS/testLeaf.key" ]; then
    say "starting a fake Play Developer API and herald-subs"
    node -e '
        const day = 86400000, t0 = Date.now();
        const at = (d) => new Date(t0 + d * day).toISOString();
        const sub = (state, days, renew, ack) => ({
            kind: "androidpublisher#subscriptionPurchaseV2",
            subscriptionState: "SUBSCRIPTION_STATE_" + state,
            acknowledgementState: "ACKNOWLEDGEMENT_STATE_" + ack,
            lineItems: [{productId: "gold.monthly", expiryTime: at(days),
                         autoRenewingPlan: {autoRenewEnabled: renew}}],
            externalAccountIdentifiers: {obfuscatedExternalAccountId: "u5"}});
        const api = "/androidpublisher/v3/applications/com.example.chat/purchases";
        console.log(JSON.stringify({routes: [
            {path: "/token", body: {access_token: "ya29.demo", expires_in: 3600,
                                    token_type: "Bearer"}},
            {path: api + "/subscriptionsv2/tokens/tok-u5",
             bodies: [sub("ACTIVE", 30, true, "PENDING"),
                      sub("ACTIVE", 60, true, "ACKNOWLEDGED"),
                      sub("IN_GRACE_PERIOD", 60, true, "ACKNOWLEDGED"),
                      sub("ON_HOLD", 60, true, "ACKNOWLEDGED"),
                      sub("ACTIVE", 90, true, "ACKNOWLEDGED"),
                      sub("EXPIRED", 90, false, "ACKNOWLEDGED")]},
            {path: api + "/subscriptions/gold.monthly/tokens/tok-u5:acknowledge",
             body: {}}]}));' >"$WORK/play.json"
    node tests/harness/fake_http.js --port 0 --tls --cert "$WORK/server.pem" \
        --key "$WORK/server.key" --script "$WORK/play.json" >"$WORK/play.out" 2>&1 &
    PIDS+=($!)
    play_port=$(listening_port "$WORK/play.out")
    echo "fake Play:  https://127.0.0.1:$play_port"
    start_worker subs "$WORK/subs.log" HERALD_APPSTORE_ROOT_CERTS="$APPLE_CERTS/testCA.pem" \
        HERALD_APPSTORE_STRICT_X509=false HERALD_APPSTORE_BUNDLE_ID=com.example \
        HERALD_APPSTORE_ENVIRONMENTS=Sandbox HERALD_TLS_CA_FILE="$WORK/ca.pem" \
        HERALD_GOOGLEPLAY_PACKAGE_NAMES=com.example.chat \
        HERALD_GOOGLEPLAY_CREDENTIALS_FILE="$WORK/sa.json" \
        HERALD_GOOGLEPLAY_API_ENDPOINT="https://127.0.0.1:$play_port" \
        HERALD_GOOGLEPLAY_TOKEN_URI="https://127.0.0.1:$play_port/token"
    SUBS=$METRICS SUBS_PID=$WORKER_PID
fi

say "registering the users' devices (the app's Devices table)"
# u0-u3 and u7 on iPhones, u4 and u5 on Android, u6 in a browser (a Web
# Push subscription). u7 deleted the app: APNs answers 410 Unregistered.
ios_token() { printf '%064x' "$(( $1 + 1 ))"; }
fake_push -X POST -H 'content-type: application/json' \
    -d "{\"provider\":\"apns\",\"token\":\"$(ios_token 7)\",\"answers\":[{\"status\":410,\"reason\":\"Unregistered\"}]}" \
    /_control/script >/dev/null
subscription=$(fake_push -X POST -d '{}' /_control/webpush/subscribe)
device() { # user token platform
    node -e 'const [u, t, p, arn] = process.argv.slice(1);
        console.log(u + "|" + JSON.stringify({eventID: "dev-" + u, eventName: "INSERT",
            eventSourceARN: arn + "/Devices/stream/x",
            dynamodb: {Keys: {token: {S: t}}, NewImage: {user_id: {S: u},
                token: {S: t}, platform: {S: p}, environment: {S: "production"}}}}))' \
        "$1" "$2" "$3" "$arn"
}
arn='arn:aws:dynamodb:eu-west-1:123456789012:table'
{
    for u in 0 1 2 3 7; do device "u$u" "$(ios_token $u)" ios; done
    device u4 fcm-token-u4 android
    device u5 fcm-token-u5 android
    device u6 "$subscription" web
} | kcat -P -b "$BROKERS" -t herald.changes -K '|'
wait_metric "$PUSH" 'herald_push_registry_total{' 8 60 ||
    { echo "timed out; push log:"; tail -20 "$WORK/push.log"; exit 1; }

say "feeding the app's change records to herald.changes"
"$BIN/herald-chatgen" produce --brokers "$BROKERS" --topic herald.changes \
    --dynamodb "${GEN[@]}"
# Six new conversations (the rules call the legacy API for these), four
# abuse reports (the trust-and-safety API, through SQS below), and three
# records no producer should ever send.
for i in 1 2 3 4 5 6; do
    printf '%s\n' "c10$i|{\"eventID\":\"conv-$i\",\"eventName\":\"INSERT\",\"eventSourceARN\":\"$arn/Conversations/stream/x\",\"dynamodb\":{\"Keys\":{\"conversation_id\":{\"S\":\"c10$i\"}},\"NewImage\":{\"conversation_id\":{\"S\":\"c10$i\"},\"title\":{\"S\":\"Project $i\"},\"member_ids\":{\"SS\":[\"u1\",\"u2\"]},\"created_at\":{\"S\":\"2026-11-22T09:0$i:00Z\"}}}}"
done | kcat -P -b "$BROKERS" -t herald.changes -K '|'
# The four abuse reports go to SQS: two as they are, two wrapped by an SNS
# topic (raw delivery off), as a report service on AWS would send them.
report() {
    printf '{"eventID":"report-%s","eventName":"INSERT","eventSourceARN":"%s/Reports/stream/x","dynamodb":{"Keys":{"report_id":{"S":"r%s"}},"NewImage":{"report_id":{"S":"r%s"},"message_id":{"S":"m%s"},"reason":{"S":"spam"},"reporter_id":{"S":"u%s"}}}}' \
        "$1" "$arn" "$1" "$1" "$1" "$1"
}
sns() {
    node -e 'console.log(JSON.stringify({Type: "Notification",
        MessageId: "sns-" + process.argv[2], TopicArn: "arn:aws:sns:us-east-1:000000000000:reports",
        Message: process.argv[1], Timestamp: new Date().toISOString(),
        SignatureVersion: "1", Signature: "EXAMPLE"}))' "$1" "$2"
}
entries=$(node -e 'console.log(JSON.stringify(process.argv.slice(1).map(
    (b, i) => ({Id: "r" + i, MessageBody: b}))))' \
    "$(report 1)" "$(report 2)" "$(sns "$(report 3)" 3)" "$(sns "$(report 4)" 4)")
sqs SendMessageBatch "{\"QueueUrl\":\"$REPORTS\",\"Entries\":$entries}" >/dev/null
# A burst of comments on posts (authors u1-u4) and of reactions to
# messages (authors u1, u2, u5): the fanout rules make them
# notification.email for herald-email.
node -e 'const arn = process.argv[1];
    const names = ["Ann", "Bruno", "Chen", "Dev", "Eve", "Farid"];
    const authors = ["u1", "u1", "u2", "u1", "u3", "u2", "u4", "u1", "u2", "u1", "u3", "u1"];
    authors.forEach((a, i) => console.log(a + "|" + JSON.stringify({eventID: "comment-" + i,
        eventName: "INSERT", eventSourceARN: arn + "/Comments/stream/x",
        dynamodb: {Keys: {comment_id: {S: "k" + i}}, NewImage: {comment_id: {S: "k" + i},
            post_id: {S: "p" + a}, post_author_id: {S: a}, post_title: {S: "Weekend plans"},
            author_id: {S: "u" + (10 + i)}, author_name: {S: names[i % 6]},
            text: {S: ["Count me in!", "Where do we meet?", "Bringing snacks <3", "Rain is forecast & cold"][i % 4]}}}})));
    const reactors = ["u1", "u1", "u5", "u1", "u2", "u5", "u1", "u1", "u5"];
    reactors.forEach((a, i) => console.log(a + "|" + JSON.stringify({eventID: "reaction-" + i,
        eventName: "INSERT", eventSourceARN: arn + "/Reactions/stream/x",
        dynamodb: {Keys: {reaction_id: {S: "r" + i}}, NewImage: {reaction_id: {S: "r" + i},
            message_id: {S: "m" + i}, conversation_id: {S: "c1"}, message_author_id: {S: a},
            reactor_name: {S: names[(i + 2) % 6]}, emoji: {S: ["👍", "🎉", "❤️"][i % 3]}}}})));' "$arn" |
    kcat -P -b "$BROKERS" -t herald.changes -K '|'
printf '%s\n' \
    'c0|{"eventID":"bad-1","eventName":"INSERT","eventSourceARN":"'"$arn"'/Messages/stream/x","dynamodb":{"NewImage":{"n":{"Q":"1"}}}}' \
    'c0|{"op":"x","before":null,"after":{},"source":{"table":"t"}}' \
    'c0|not json at all' |
    kcat -P -b "$BROKERS" -t herald.changes -K '|'
changes=$(count herald.changes)
# Two App Store subscriptions live: bought, renewed, a failed renewal
# (billing retry), the grace period, recovered, refunded (12 signed
# notifications, each with its signed transaction and renewal info); one
# notification delivered twice and one forged. One Google Play subscription
# lives the same way as RTDNs: purchased, renewed, in grace period, on
# hold, recovered, refunded (a voided purchase).
if [ -n "$SUBS_PID" ]; then
    node tests/node/mint_appstore.js --certs "$APPLE_CERTS" --life \
        --subscriptions 2 >"$WORK/appstore.txt"
    node -e '
        for (const [i, code] of [4, 2, 6, 5, 1, 0].entries()) {
            const n = {version: "1.0", packageName: "com.example.chat",
                       eventTimeMillis: String(Date.now() + i)};
            if (code)
                n.subscriptionNotification = {version: "1.0",
                    notificationType: code, purchaseToken: "tok-u5",
                    subscriptionId: "gold.monthly"};
            else    /* the refund: a voided subscription purchase */
                n.voidedPurchaseNotification = {purchaseToken: "tok-u5",
                    orderId: "GPA.3372-0718-2851-60413", productType: 1,
                    refundType: 1};
            console.log("tok-u5|" + JSON.stringify({message: {
                data: Buffer.from(JSON.stringify(n)).toString("base64"),
                messageId: "rtdn-" + (i + 1),
                publishTime: new Date().toISOString()},
                subscription: "projects/chat/subscriptions/play-rtdn"}));
        }' >"$WORK/play.txt"
    { cat "$WORK/appstore.txt"; head -1 "$WORK/appstore.txt"
      head -1 "$WORK/appstore.txt" | sed -E 's/..("}\s*)$/xy\1/'
      cat "$WORK/play.txt"
    } | kcat -P -b "$BROKERS" -t herald.subscriptions -K '|'
fi

say "waiting for the fleet to handle all $changes change records"
wait_metric "$FANOUT" 'herald_events_processed_total{' "$changes" 60 ||
    { echo "timed out; fanout log:"; tail -20 "$WORK/fanout.log"; exit 1; }
wait_metric "$FANOUT_SQS" 'herald_events_processed_total{' 4 60 ||
    { echo "timed out; fanout (sqs) log:"; tail -20 "$WORK/fanout-sqs.log"; exit 1; }
messages=$(count herald.messages)
wait_metric "$UNREAD" 'herald_events_processed_total{' "$messages" 60 ||
    { echo "timed out; unread log:"; tail -20 "$WORK/unread.log"; exit 1; }
# herald-push reads herald.push and herald.devices (registrations, and the
# device.invalidated it announces itself).
for _ in $(seq 600); do
    want=$(( $(count herald.push) + $(count herald.devices) ))
    [ "$(metric "$PUSH" 'herald_events_processed_total{')" -ge "$want" ] && break
    sleep 0.1
done

# herald-email: 12 comments for 4 authors (4 digest windows: 2 sent, one
# opted out, one without an address) and 9 reactions for 3 authors (3
# sent at once, 6 suppressed).
wait_metric "$EMAIL" 'herald_email_sent_total{' 5 60 &&
    wait_metric "$EMAIL" 'herald_email_skipped_total{' 2 60 ||
    { echo "timed out; email log:"; tail -20 "$WORK/email.log"; exit 1; }

if [ -n "$SUBS_PID" ]; then
    wait_metric "$SUBS" 'herald_events_processed_total{' 20 60 ||
        { echo "timed out; subs log:"; tail -20 "$WORK/subs.log"; exit 1; }
fi

say "waiting until the legacy API has every conversation (it fails first)"
# The circuit as the guard sees it: fleet-wide, from the shared state in
# Redis (the fanout reports the same gauge for its own calls).
circuit() {
    curl -sf "$GUARD/metrics" |
        awk '/^herald_guard_circuit_state\{.*webhook:legacy/ { print $NF }'
}
states="" last=""
for _ in $(seq 600); do
    s=$(circuit || true)
    case "$s" in 0) s=closed ;; 1) s=half-open ;; 2) s=open ;; *) s="" ;; esac
    if [ -n "$s" ] && [ "$s" != "$last" ]; then states="$states${states:+ -> }$s"; last=$s; fi
    delivered=$(curl -sf "http://127.0.0.1:$legacy_port/_control/requests?path=/api/v1/conversations" |
        { grep -o '"status":201' || true; } | wc -l)
    [ "$delivered" -ge 6 ] && [ "$last" = closed ] && break
    sleep 0.1
done
echo "  legacy circuit: $states"

say "unread counts per user (Redis) against the exact model"
"$BIN/herald-chatgen" verify --redis "$REDIS_URL" "${GEN[@]}" --table 8

say "herald-fanout: $changes change records in"
curl -sf "$FANOUT/metrics" |
    grep -E '^herald_(events_processed_total|fanout_routed_total|fanout_webhook_responses_total)' |
    sed 's/worker="fanout",//; s/{}//; s/^/  /'
say "herald-fanout with HERALD_SOURCE=sqs: the abuse reports from SQS"
echo "  queue herald-reports: 4 messages sent, 2 of them SNS envelopes (unwrapped)"
curl -sf "$FANOUT_SQS/metrics" |
    grep -E '^herald_(events_processed_total|sqs_messages_total|consumer_lag)' |
    grep -v ' 0$' | sed 's/worker="fanout",//; s/{}//; s/^/  /'
depth=$(sqs GetQueueAttributes "{\"QueueUrl\":\"$REPORTS\",\"AttributeNames\":[\"All\"]}" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const a=JSON.parse(s).Attributes;
        console.log(+a.ApproximateNumberOfMessages + +a.ApproximateNumberOfMessagesNotVisible)})')
echo "  left in the queue: $depth (each report deleted once its dead letter was durable on herald.dlq)"
say "herald-unread: $messages events in (message.created, conversation.read)"
curl -sf "$UNREAD/metrics" |
    grep -E '^herald_(events_processed_total|unread_pairs_updated_total|batch_pauses_total)' |
    sed 's/worker="unread",//; s/{}//; s/^/  /'

say "herald-push: $(count herald.push) push.requested in, to 8 devices on APNs, FCM and Web Push"
curl -sf "$PUSH/metrics" |
    grep -E '^herald_push_(deliveries_total|invalidated_total|registry_total|token_refreshes_total)' |
    grep -v ' 0$' | sed 's/worker="push",//; s/{}//; s/^/  /'
# Every push.requested against what the fake providers received: each
# reached its user's device once, with the badge herald-unread computed.
kcat -C -b "$BROKERS" -t herald.push -o beginning -e -q >"$WORK/pushes.jsonl"
fake_push /_control/requests >"$WORK/provider-requests.json"
node -e '
const fs = require("fs");
const [dir, sub] = process.argv.slice(1);
const user = {};               /* token or subscription id -> user */
for (const u of [0, 1, 2, 3, 7]) user[(u + 1).toString(16).padStart(64, "0")] = "u" + u;
user["fcm-token-u4"] = "u4"; user["fcm-token-u5"] = "u5";
user[JSON.parse(sub).endpoint.split("/").pop()] = "u6";
const asked = {}, got = {}, by = {};
for (const line of fs.readFileSync(dir + "/pushes.jsonl", "utf8").split("\n")) {
    if (!line) continue;
    const d = JSON.parse(line).data;
    (asked[d.user_id] ||= []).push(d.badge);
}
for (const r of JSON.parse(fs.readFileSync(dir + "/provider-requests.json", "utf8"))) {
    if (r.provider === "token") continue;
    const k = `${r.provider} ${r.status}${r.reason ? " " + r.reason : ""}`;
    by[k] = (by[k] || 0) + 1;
    if (r.status !== 200 && r.status !== 201) continue;
    const b = r.provider === "apns" ? r.body.aps.badge :
        r.provider === "fcm" ? r.body.message.android.notification.notification_count :
        r.plaintext.badge;
    (got[user[r.token]] ||= []).push(b);
}
let gone = 0;
for (const r of JSON.parse(fs.readFileSync(dir + "/provider-requests.json", "utf8")))
    if (user[r.token] === "u7" && r.status === 410) gone++;
{
}
for (const k of Object.keys(by).sort()) console.log(`  provider calls ${k}: ${by[k]}`);
let ok = 0, total = 0;
for (const u of Object.keys(asked).sort()) {
    if (u === "u7") continue;
    /* exact badges from herald-unread; "unread_total" (pushes of the
     * reaction rule) is read at send time: any number will do */
    const exact = asked[u].filter(b => b !== "unread_total");
    const left = (got[u] || []).slice();
    let match = left.length === asked[u].length;
    for (const b of exact) {
        const k = left.indexOf(b);
        if (k < 0) { match = false; break; }
        left.splice(k, 1);
    }
    total += asked[u].length;
    if (match) ok += asked[u].length;
    else console.log(`  MISMATCH for ${u}: asked badges ${asked[u].join(",")}, ` +
                     `delivered ${(got[u] || []).join(",")}`);
}
console.log(`  delivered once each with the badge herald-unread computed: ${ok} of ${total}` +
            " (u0-u6)");
console.log(`  u7 (app deleted): ${(asked.u7 || []).length} asked, ${(got.u7 || []).length} delivered;` +
            ` APNs answered 410 Unregistered to the ${gone} calls made before the token was` +
            " removed (one batch); later pushes find no device");' \
    "$WORK" "$subscription"
printf '  device.invalidated on herald.devices: %s\n' \
    "$(kcat -C -b "$BROKERS" -t herald.devices -o beginning -e -q | grep -c '"device.invalidated"' || true)"

say "herald-email: $(count herald.email) records on herald.email (notification.email, and the email.send it renders)"
curl -sf "$EMAIL/metrics" |
    grep -E '^herald_email_(events_total|sent_total|suppressed_total|skipped_total|duplicate_sends_total)' |
    grep -v ' 0$' | sed 's/worker="email",//; s/{}//; s/^/  /'
curl -sf "$FAKE_EMAIL/_control/messages" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        const ms = JSON.parse(s).messages;
        console.log(`  the SMTP server received ${ms.length} emails, all valid MIME: ` +
                    ms.every(m => m.valid));
        for (const m of ms)
            console.log(`    to ${m.envelope.rcpt_to.join(",")}: ${m.subject}`);
        const m = ms.find(x => x.subject.includes("comments on your posts")) || ms[0];
        if (!m) return;
        console.log("  one of them, as received (headers, then the text part):");
        for (const h of ["date", "from", "to", "subject", "message-id", "auto-submitted",
                         "list-unsubscribe", "list-unsubscribe-post", "content-type"])
            console.log(`    ${h}: ${m.headers[h]}`);
        console.log("");
        for (const l of m.text.trimEnd().split("\n")) console.log("    " + l);
    });'

if [ -n "$SUBS_PID" ]; then
    say "herald-subs: $(count herald.subscriptions) store notifications in (14 App Store, 6 Google Play)"
    curl -sf "$SUBS/metrics" |
        grep -E '^herald_(subs_notifications_total|subs_applied_total|subs_verification_failures_total|subs_state_transitions_total|subs_api_calls_total)' |
        grep -v ' 0$' | sed 's/worker="subs",//; s/{}//; s/^/  /'
    printf '  entitlement.changed on herald.entitlements: %s, in order (the repeated notification\n' \
        "$(count herald.entitlements)"
    echo "  re-sends its event with the same id; the forged one is a dead letter):"
    kcat -C -b "$BROKERS" -t herald.entitlements -o beginning -e -q | node -e '
        let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
            for (const line of s.trim().split("\n")) {
                const e = JSON.parse(line), d = e.data;
                console.log(`    ${d.provider.padEnd(10)} ${d.app_user_id.slice(-4).padEnd(4)} ` +
                    `${(d.notification_type + (d.subtype ? "/" + d.subtype : "")).padEnd(36)} ` +
                    `${(d.previous_state || "-").padEnd(13)} -> ${d.state.padEnd(13)} ` +
                    `expires ${d.expires_at ? d.expires_at.slice(0, 10) : "-"}  id ${e.id.slice(0, 8)}`);
            }
        });'
    echo "  the entitlement table in Redis (herald:entitlements:{user}):"
    for key in $(redis-cli -s "$REDIS_SOCK" --scan --pattern 'herald:entitlements:*' | sort); do
        redis-cli -s "$REDIS_SOCK" hgetall "$key" | paste - - | while IFS=$'\t' read -r product json; do
            printf '    %-58s %-13s %s\n' "$key" "$product" "$json"
        done
    done
fi

say "what came out"
printf '  unread.changed on herald.unread: %s\n' "$(count herald.unread)"
printf '  push.requested on herald.push:   %s\n' "$(count herald.push)"
echo "  one push.requested, for example:"
kcat -C -b "$BROKERS" -t herald.push -o beginning -e -q -c 1 | sed 's/^/    /'
echo "  calls the fake APIs received:"
curl -sf "http://127.0.0.1:$legacy_port/_control/requests" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        const by = {}, ok = new Set();
        for (const r of JSON.parse(s)) {
            const k = `${r.path} -> ${r.status}`;
            by[k] = (by[k] || 0) + 1;
            if (r.status === 201) ok.add(JSON.parse(r.body).conversation_id);
            if (r.jwt && !r.jwt.ok) console.log(`    JWT REJECTED: ${r.jwt.error}`);
        }
        for (const k of Object.keys(by).sort()) console.log(`    ${k}: ${by[k]}`);
        console.log(`    conversations the legacy API has: ${[...ok].sort().join(" ")}` +
                    " (every call carried a verified JWT)");
    });'
printf '  retry records on herald.retry:   %s (the guard redelivered %s)\n' \
    "$(count herald.retry)" \
    "$(curl -sf "$GUARD/metrics" | awk '/^herald_guard_redelivered_total/ { s += $NF } END { print s + 0 }')"
retries_for() {
    kcat -C -b "$BROKERS" -t herald.retry -o beginning -e -q -f '%h\n' |
        grep -c "herald-destination=$1" || true
}
printf '  retry records for webhook:legacy (503, then its open circuit): %s\n' \
    "$(retries_for webhook:legacy)"
printf '  retry records for webhook:trust-safety (401):                  %s (auth failures are never retried)\n' \
    "$(retries_for webhook:trust-safety)"

say "herald-guard: the schedule, budgets and circuits, fleet-wide"
curl -sf "$GUARD/metrics" |
    grep -E '^herald_guard_(scheduled|parked|redelivered_total|dead_lettered_total|budget_throttled_total|circuit_state|auth_failures_total)' |
    sed -E 's/worker="guard",?//; s/\{\}//; s/^/  /'
echo "  circuit state: 0 closed, 1 half-open, 2 open or auth-broken"
echo "  the legacy circuit went: $states"
echo "  trust-safety broke on its 401s: no retries, and no more calls until a"
echo "  probe succeeds (fix the token, then herald-guard redrive --from herald.dlq)"

say "dead letters on herald.dlq (reason in the herald-error header)"
kcat -C -b "$BROKERS" -t herald.dlq -o beginning -e -q -f '%h\n' |
    sed -E 's/.*herald-origin-topic=([^,]*).*herald-worker=([^,]*).*herald-error-class=([^,]*),herald-error=(.*)/  \2 (from \1) \3: \4/' |
    cut -c1-120

say "graceful shutdown (SIGTERM)"
kill -TERM "$FANOUT_PID" "$FANOUT_SQS_PID" "$UNREAD_PID" "$PUSH_PID" "$EMAIL_PID" \
    ${SUBS_PID:+"$SUBS_PID"} "$GUARD_PID"
for name in fanout fanout_sqs unread push email ${SUBS_PID:+subs} guard; do
    pid=${name^^}_PID
    status=0
    wait "${!pid}" || status=$?
    line=$(grep -o '"msg":"stopped".*' "$WORK/${name/_/-}.log" || true)
    echo "  herald-${name/_sqs/ (sqs)} exited $status: $line"
done
