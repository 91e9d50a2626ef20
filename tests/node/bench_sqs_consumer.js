#!/usr/bin/env node
// The Node.js peer of herald-unread on SQS, for scripts/bench-sqs.sh: what a
// Node team would write with the usual packages (bbc's sqs-consumer,
// ioredis) for the same chat workload, to compare rates against.
//
//   node bench_sqs_consumer.js --endpoint URL --queue-url URL --redis URL
//                              --count N --concurrency C [--region us-east-1]
//
// --redis is redis://host:port or unix:///path/to.sock. C sqs-consumer
// Consumer instances share one SQSClient (requests to --endpoint, not to the
// queue URL's host; static fake credentials AK / SK) with batchSize 10,
// visibilityTimeout 60, heartbeat off, and waitTimeSeconds 1 instead of the
// usual 20: the queue is full while we measure, so the wait only matters at
// the end, where a long poll would keep consumers waiting for messages that
// will not come. Each instance keeps one ReceiveMessage in flight; it handles
// the messages of a batch concurrently and deletes each handled message with
// its own DeleteMessage (sqs-consumer's handleMessage behaviour).
//
// handleMessage takes a CloudEvent like herald's chat workload
//   {"specversion":"1.0","id":..,"type":"message.created","data":
//    {"conversation_id","message_id","sender_id","recipient_ids","sent_at"}}
//   {"specversion":"1.0","id":..,"type":"conversation.read","data":
//    {"conversation_id","user_id","read_at"}}
// and applies the straightforward unread update with ioredis:
//   SET peer:seen:<id> 1 NX EX 604800, and only if that was new:
//   message.created: one MULTI with HINCRBY peer:unread:{<u>} <conv> 1 and
//     INCRBY peer:unread_total:{<u>} 1 for each recipient but the sender;
//   conversation.read: a tiny Lua script (EVALSHA) that HGETs the user's
//     count for the conversation, HDELs it and DECRBYs the total by it.
// Returning the message has sqs-consumer delete it. Events of other types
// are deleted without effect; unparseable ones are left on the queue.
//
// Stops every consumer once N messages were handled and deleted (a few more
// may be: batches already received are finished), or when 10 s pass without
// one. Prints exactly one JSON line on stdout at the end:
//   {"messages": handled and deleted, "seconds": s, "rate": per second}
// timed from the first message received to the last one deleted. Errors go
// to stderr. Exit 0 when N messages were handled, 1 otherwise (the line is
// still printed, unless Redis did not answer at the start), 2 on bad
// arguments.
'use strict';

const http = require('http');
const {parseOptions} = require('./fake_common');

// The SDK warns on stderr that its releases after January 2027 need
// Node 22; stderr is for errors here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const {SQSClient} = require('@aws-sdk/client-sqs');
const {Consumer} = require('sqs-consumer');
const Redis = require('ioredis');

function usage(msg) {
    process.stderr.write(`bench_sqs_consumer: ${msg}\n` +
        'usage: bench_sqs_consumer.js --endpoint URL --queue-url URL ' +
        '--redis URL --count N --concurrency C [--region R]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        endpoint: {type: 'string'},
        'queue-url': {type: 'string'},
        redis: {type: 'string'},
        count: {type: 'string'},
        concurrency: {type: 'string'},
        region: {type: 'string', default: 'us-east-1'},
    }, usage);
    const o = {endpoint: v.endpoint, queueUrl: v['queue-url'],
               redis: v.redis, count: Number(v.count),
               concurrency: Number(v.concurrency), region: v.region};
    if (!o.endpoint || !o.queueUrl || !o.redis)
        usage('--endpoint, --queue-url and --redis are required');
    if (!Number.isInteger(o.count) || o.count < 1)
        usage('--count must be an integer >= 1');
    if (!Number.isInteger(o.concurrency) || o.concurrency < 1)
        usage('--concurrency must be an integer >= 1');
    return o;
}

function redisClient(url) {
    const opts = {enableOfflineQueue: true, maxRetriesPerRequest: 3};
    if (url.startsWith('unix://'))
        return new Redis({...opts, path: url.slice('unix://'.length)});
    if (url.startsWith('redis://') || url.startsWith('rediss://'))
        return new Redis(url, opts);
    usage(`--redis must be redis://host:port or unix:///path, not '${url}'`);
    return null;
}

const SEEN_TTL_S = 604800;
const IDLE_STOP_MS = 10000;

// The naive reset-on-read that teams write: the user has read the
// conversation, so its count goes to zero and the total drops by it. It is
// not exact under reordering (a read receipt handled after a later message
// wipes that message's count; one handled before an earlier message leaves
// it counted) — herald-unread compares sent_at with read_at instead.
const READ_LUA = `
local c = redis.call('HGET', KEYS[1], ARGV[1])
if c then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DECRBY', KEYS[2], c)
end
return c`;

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const st = {handled: 0, first: null, last: null, lastAt: Date.now(),
                errors: 0};
    const report = (what, err) => {
        if (++st.errors <= 10)
            process.stderr.write(`bench_sqs_consumer: ${what}: ` +
                                 `${err && err.message || err}\n`);
    };

    const redis = redisClient(o.redis);
    redis.on('error', e => report('redis', e));
    redis.defineCommand('peerRead', {numberOfKeys: 2, lua: READ_LUA});
    await redis.ping();

    // Enough sockets for every instance's receive and ten deletes (the
    // default agent caps at 50).
    const sqs = new SQSClient({
        region: o.region,
        endpoint: o.endpoint,
        credentials: {accessKeyId: 'AK', secretAccessKey: 'SK'},
        requestHandler: {
            httpAgent: new http.Agent({keepAlive: true,
                                       maxSockets: o.concurrency * 11 + 4}),
            requestTimeout: 30000,
        },
    });

    async function handleMessage(message) {
        const ev = JSON.parse(message.Body);
        const d = ev.data || {};
        const fresh = await redis.set(`peer:seen:${ev.id}`, '1', 'EX',
                                      SEEN_TTL_S, 'NX');
        if (fresh !== 'OK')
            return message; // a duplicate
        if (ev.type === 'message.created') {
            const to = (d.recipient_ids || []).filter(u => u !== d.sender_id);
            if (to.length > 0) {
                const m = redis.multi();
                for (const u of to) {
                    m.hincrby(`peer:unread:{${u}}`, d.conversation_id, 1);
                    m.incrby(`peer:unread_total:{${u}}`, 1);
                }
                await m.exec();
            }
        } else if (ev.type === 'conversation.read') {
            await redis.peerRead(`peer:unread:{${d.user_id}}`,
                                 `peer:unread_total:{${d.user_id}}`,
                                 d.conversation_id);
        }
        return message;
    }

    const consumers = [];
    let finish;
    const finished = new Promise(r => { finish = r; });
    for (let i = 0; i < o.concurrency; i++) {
        const c = Consumer.create({
            queueUrl: o.queueUrl,
            sqs,
            useQueueUrlAsEndpoint: false,
            batchSize: 10,
            waitTimeSeconds: 1,
            visibilityTimeout: 60,
            suppressFifoWarning: true,
            handleMessage,
        });
        c.on('message_received', () => {
            if (st.first === null)
                st.first = Date.now();
        });
        c.on('message_processed', () => {
            st.handled++;
            st.last = st.lastAt = Date.now();
            if (st.handled >= o.count)
                finish();
        });
        c.on('error', e => report('SQS error', e));
        c.on('processing_error', e => report('handler error', e));
        c.on('timeout_error', e => report('handler timeout', e));
        consumers.push(c);
    }
    const idle = setInterval(() => {
        if (Date.now() - st.lastAt >= IDLE_STOP_MS)
            finish();
    }, 200);
    for (const c of consumers)
        c.start();

    await finished;
    clearInterval(idle);
    for (const c of consumers)
        c.stop();
    // Let receives in flight (at most waitTimeSeconds) and the batches they
    // brought finish, so Redis is not closed under a handler.
    const deadline = Date.now() + 5000;
    while (consumers.some(c => c.status.isPolling) && Date.now() < deadline)
        await new Promise(r => setTimeout(r, 20));
    await redis.quit().catch(() => redis.disconnect());
    sqs.destroy();

    const seconds = st.first === null || st.last === null ? 0
        : (st.last - st.first) / 1000;
    process.stdout.write(JSON.stringify({
        messages: st.handled,
        seconds,
        rate: seconds > 0 ? Math.round(st.handled / seconds) : 0,
    }) + '\n');
    if (st.handled < o.count) {
        process.stderr.write(`bench_sqs_consumer: only ${st.handled} of ` +
                             `${o.count} messages, none in the last ` +
                             `${IDLE_STOP_MS / 1000} s\n`);
        return 1;
    }
    return 0;
}

main().then(rc => process.exit(rc), e => {
    process.stderr.write(`bench_sqs_consumer: ${e.name}: ${e.message}\n`);
    process.exit(1);
});
