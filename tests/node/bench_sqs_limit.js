#!/usr/bin/env node
// The SQS endpoint's own limit, for scripts/bench-sqs.sh: how fast messages
// can be received and deleted when no work at all is done per message.
//
//   node bench_sqs_limit.js --endpoint URL --queue-url URL --count N
//                           --concurrency C [--region us-east-1] [--raw]
//
// C independent loops each do ReceiveMessage (MaxNumberOfMessages 10,
// WaitTimeSeconds 1, VisibilityTimeout 60) and then one DeleteMessageBatch
// of what they got, until N messages were deleted in total, or until 10 s
// pass without any message received. Every received message is deleted, so
// a few more than N may be. Requests go to --endpoint (not to the queue
// URL's host) through @aws-sdk/client-sqs, signed with the static fake
// credentials AK / SK (emulators do not check them).
//
// The SDK costs far more CPU per call than the emulator does (measured:
// with 8 loops this process is CPU-bound at 5-8k messages/s while fauxqs
// stays below half a core), so --raw sends the same JSON calls over plain
// keep-alive HTTP instead, with an Authorization header of the right shape
// but no real signature (fauxqs never checks): that measures the emulator.
//
// Prints exactly one JSON line on stdout at the end:
//   {"messages": deleted, "seconds": s, "rate": messages per second,
//    "receives": ReceiveMessage calls, "empty_receives": those with none}
// timed from the start of the first ReceiveMessage that returned messages
// to the end of the last DeleteMessageBatch. Errors go to stderr. Exit 0
// when N messages were deleted, 1 otherwise (an SQS error, or the queue ran
// dry first: the line is still printed), 2 on bad arguments.
'use strict';

const http = require('http');
const {parseOptions} = require('./fake_common');

// The SDK warns on stderr that its releases after January 2027 need
// Node 22; stderr is for errors here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const {
    SQSClient, ReceiveMessageCommand, DeleteMessageBatchCommand,
} = require('@aws-sdk/client-sqs');

function usage(msg) {
    process.stderr.write(`bench_sqs_limit: ${msg}\n` +
        'usage: bench_sqs_limit.js --endpoint URL --queue-url URL ' +
        '--count N --concurrency C [--region R] [--raw]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        endpoint: {type: 'string'},
        'queue-url': {type: 'string'},
        count: {type: 'string'},
        concurrency: {type: 'string'},
        region: {type: 'string', default: 'us-east-1'},
        raw: {type: 'boolean', default: false},
    }, usage);
    const o = {endpoint: v.endpoint, queueUrl: v['queue-url'],
               count: Number(v.count), concurrency: Number(v.concurrency),
               region: v.region, raw: v.raw};
    if (!o.endpoint || !o.queueUrl)
        usage('--endpoint and --queue-url are required');
    if (!Number.isInteger(o.count) || o.count < 1)
        usage('--count must be an integer >= 1');
    if (!Number.isInteger(o.concurrency) || o.concurrency < 1)
        usage('--concurrency must be an integer >= 1');
    return o;
}

const IDLE_STOP_MS = 10000;

function sdkClient(o) {
    const sqs = new SQSClient({
        region: o.region,
        endpoint: o.endpoint,
        credentials: {accessKeyId: 'AK', secretAccessKey: 'SK'},
        // One connection per loop (the default agent caps at 50 sockets).
        requestHandler: {
            httpAgent: new http.Agent({keepAlive: true,
                                       maxSockets: o.concurrency + 4}),
            requestTimeout: 30000,
        },
    });
    return {
        call: (op, Command, input) => sqs.send(new Command(input)),
        destroy: () => sqs.destroy(),
    };
}

function rawClient(o) {
    const url = new URL(o.endpoint);
    if (url.protocol !== 'http:')
        usage('--raw needs an http:// endpoint');
    const agent = new http.Agent({keepAlive: true,
                                  maxSockets: o.concurrency + 4});
    const call = (op, Command, input) => new Promise((resolve, reject) => {
        const body = JSON.stringify(input);
        const date = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
        const req = http.request({
            host: url.hostname, port: url.port || 80, method: 'POST',
            path: url.pathname, agent, timeout: 30000,
            headers: {
                'content-type': 'application/x-amz-json-1.0',
                'content-length': Buffer.byteLength(body),
                'x-amz-target': `AmazonSQS.${op}`,
                'x-amz-date': date,
                'authorization': 'AWS4-HMAC-SHA256 Credential=AK/' +
                    `${date.slice(0, 8)}/${o.region}/sqs/aws4_request, ` +
                    'SignedHeaders=content-type;host;x-amz-date;' +
                    `x-amz-target, Signature=${'0'.repeat(64)}`,
            },
        }, (res) => {
            const chunks = [];
            res.on('data', c => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json = {};
                try {
                    json = text ? JSON.parse(text) : {};
                } catch (e) {
                    // reported below with the status
                }
                if (res.statusCode !== 200) {
                    const e = new Error(`${op}: HTTP ${res.statusCode} ` +
                                        `${json.__type || ''} ` +
                                        `${json.message || text}`);
                    e.name = 'SQSError';
                    reject(e);
                } else {
                    resolve(json);
                }
            });
        });
        req.on('timeout', () => req.destroy(new Error(`${op}: timeout`)));
        req.on('error', reject);
        req.end(body);
    });
    return {call, destroy: () => agent.destroy()};
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const api = o.raw ? rawClient(o) : sdkClient(o);
    const st = {deleted: 0, receives: 0, empty: 0, first: null, last: null,
                lastReceived: Date.now(), failed: null};
    const done = () => st.failed || st.deleted >= o.count ||
        Date.now() - st.lastReceived >= IDLE_STOP_MS;

    async function loop() {
        while (!done()) {
            const t0 = Date.now();
            const r = await api.call('ReceiveMessage', ReceiveMessageCommand, {
                QueueUrl: o.queueUrl,
                MaxNumberOfMessages: 10,
                WaitTimeSeconds: 1,
                VisibilityTimeout: 60,
            });
            st.receives++;
            const msgs = r.Messages || [];
            if (msgs.length === 0) {
                st.empty++;
                continue;
            }
            st.lastReceived = Date.now();
            if (st.first === null || t0 < st.first)
                st.first = t0;
            const d = await api.call('DeleteMessageBatch',
                                     DeleteMessageBatchCommand, {
                QueueUrl: o.queueUrl,
                Entries: msgs.map((m, i) => ({Id: String(i),
                                              ReceiptHandle: m.ReceiptHandle})),
            });
            st.deleted += (d.Successful || []).length;
            st.last = Date.now();
            for (const f of d.Failed || [])
                process.stderr.write(`bench_sqs_limit: delete failed: ` +
                                     `${f.Code} ${f.Message || ''}\n`);
        }
    }

    const loops = [];
    for (let i = 0; i < o.concurrency; i++)
        loops.push(loop().catch(e => {
            if (!st.failed)
                st.failed = e;
        }));
    await Promise.all(loops);
    api.destroy();

    const seconds = st.first === null ? 0 : (st.last - st.first) / 1000;
    process.stdout.write(JSON.stringify({
        messages: st.deleted,
        seconds,
        rate: seconds > 0 ? Math.round(st.deleted / seconds) : 0,
        receives: st.receives,
        empty_receives: st.empty,
    }) + '\n');
    if (st.failed) {
        process.stderr.write(`bench_sqs_limit: ${st.failed.name}: ` +
                             `${st.failed.message}\n`);
        return 1;
    }
    if (st.deleted < o.count) {
        process.stderr.write(`bench_sqs_limit: only ${st.deleted} of ` +
                             `${o.count} messages in ${IDLE_STOP_MS / 1000} s ` +
                             'without a message\n');
        return 1;
    }
    return 0;
}

main().then(rc => process.exit(rc), e => {
    process.stderr.write(`bench_sqs_limit: ${e.stack || e}\n`);
    process.exit(1);
});
