#!/usr/bin/env node
// The Node.js APNs peer of Herald's push worker, for push benchmarks: what a
// Node team would write with the usual package, @parse/node-apn (the
// maintained fork of node-apn), token (.p8) authentication.
//
//   node bench_push_nodeapn.js --host 127.0.0.1 --port P --ca ca.pem
//        --key AuthKey.p8 --key-id K --team-id T --topic com.example.chat
//        --tokens tokens.txt --count N --concurrency C
//
// One apn.Provider({token: {key, keyId, teamId}, address: --host, port:
// --port, ca: --ca, production: false}); node-apn's own options, no patching:
// it opens its HTTP/2 session with http2.connect(`https://${address}`,
// config), and the config's port (and ca) override the URL's default 443
// (lib/client.js, Client.prototype.connect). Every request carries
// ":authority: <host>" (no port), as node-apn sends it.
//
// Sends N notifications, each its own apn.Notification: alert {title, body},
// badge, sound, topic --topic, push type alert, priority 10, and a custom
// key "event_id" (a number per notification, as a string); device tokens
// cycle through the lines of --tokens (hex APNs tokens; blank lines and
// lines starting with # skipped). C workers each keep one
// provider.send(notification, token) in flight, so C streams are in flight
// on node-apn's one HTTP/2 connection; each answer is counted from the
// result's sent / failed arrays (node-apn retries 429/5xx itself, up to
// connectionRetryLimit 3).
//
// Prints exactly one JSON line on stdout at the end:
//   {"sent": n_ok, "failed": n, "seconds": s, "rate": sent per second}
// timed from the first send (the connection is made then) to the last
// answer. Errors go to stderr (the first 5 failures in full, then a count by
// reason). Exit 0 when all N were sent, 1 otherwise (the line is still
// printed), 2 on bad arguments.
'use strict';

const fs = require('fs');
const {performance} = require('perf_hooks');
const {parseOptions} = require('./fake_common');
const apn = require('@parse/node-apn');

function usage(msg) {
    process.stderr.write(`bench_push_nodeapn: ${msg}\n` +
        'usage: bench_push_nodeapn.js --host H --port P --ca ca.pem ' +
        '--key AuthKey.p8 --key-id K --team-id T --topic TOPIC ' +
        '--tokens tokens.txt --count N --concurrency C\n');
    process.exit(2);
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        host: {type: 'string'},
        port: {type: 'string'},
        ca: {type: 'string'},
        key: {type: 'string'},
        'key-id': {type: 'string'},
        'team-id': {type: 'string'},
        topic: {type: 'string'},
        tokens: {type: 'string'},
        count: {type: 'string'},
        concurrency: {type: 'string'},
    }, usage);
    for (const k of ['host', 'port', 'ca', 'key', 'key-id', 'team-id',
                     'topic', 'tokens', 'count', 'concurrency'])
        if (!v[k])
            usage(`--${k} is required`);
    const o = {host: v.host, port: Number(v.port), ca: v.ca, key: v.key,
               keyId: v['key-id'], teamId: v['team-id'], topic: v.topic,
               tokens: v.tokens, count: Number(v.count),
               concurrency: Number(v.concurrency)};
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535)
        usage('--port must be a port number');
    if (!Number.isInteger(o.count) || o.count < 1)
        usage('--count must be an integer >= 1');
    if (!Number.isInteger(o.concurrency) || o.concurrency < 1)
        usage('--concurrency must be an integer >= 1');
    return o;
}

function readTokens(path) {
    const tokens = fs.readFileSync(path, 'utf8').split('\n')
        .map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    if (tokens.length === 0)
        throw new Error(`${path}: no tokens`);
    return tokens;
}

function describe(f) {
    if (f.response && f.response.reason)
        return `${f.status} ${f.response.reason}`;
    if (f.status)
        return `${f.status}`;
    if (f.error)
        return f.error.message || String(f.error);
    return 'unknown';
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    let tokens;
    try {
        tokens = readTokens(o.tokens);
        for (const f of [o.key, o.ca])
            fs.accessSync(f, fs.constants.R_OK);
    } catch (e) {
        usage(e.message);
    }

    const provider = new apn.Provider({
        token: {key: o.key, keyId: o.keyId, teamId: o.teamId},
        address: o.host,
        port: o.port,
        ca: o.ca,
        production: false,
    });

    let next = 0;
    let sent = 0;
    let failed = 0;
    let shown = 0;
    const reasons = new Map();

    function fail(f) {
        failed++;
        const why = describe(f);
        reasons.set(why, (reasons.get(why) || 0) + 1);
        if (shown < 5) {
            shown++;
            process.stderr.write(`bench_push_nodeapn: failed ${f.device}: ` +
                `${why}${f.response ? ' ' + JSON.stringify(f.response) : ''}\n`);
        }
    }

    async function worker() {
        while (next < o.count) {
            const i = next++;
            const note = new apn.Notification();
            note.alert = {title: 'New message', body: `Message ${i} from Alice`};
            note.badge = 1 + (i % 99);
            note.sound = 'default';
            note.topic = o.topic;
            note.pushType = 'alert';
            note.priority = 10;
            note.payload = {event_id: `evt-${i}`};
            const token = tokens[i % tokens.length];
            try {
                const r = await provider.send(note, token);
                sent += r.sent.length;
                for (const f of r.failed)
                    fail(f);
            } catch (e) {
                fail({device: token, error: e});
            }
        }
    }

    const t0 = performance.now();
    const workers = [];
    for (let w = 0; w < Math.min(o.concurrency, o.count); w++)
        workers.push(worker());
    await Promise.all(workers);
    const seconds = (performance.now() - t0) / 1000;

    await provider.shutdown();

    if (reasons.size)
        process.stderr.write('bench_push_nodeapn: failures by reason: ' +
            JSON.stringify(Object.fromEntries(reasons)) + '\n');
    process.stdout.write(JSON.stringify({
        sent, failed, seconds: Number(seconds.toFixed(3)),
        rate: Number((sent / seconds).toFixed(1)),
    }) + '\n');
    process.exitCode = sent === o.count && failed === 0 ? 0 : 1;
}

main().catch((e) => {
    process.stderr.write(`bench_push_nodeapn: ${e && e.stack || e}\n`);
    process.exit(1);
});
