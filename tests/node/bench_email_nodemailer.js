#!/usr/bin/env node
// The Node.js SMTP peer of Herald's email worker, for email benchmarks: what
// a Node team would write with the usual package, nodemailer, sending
// through its pooled SMTP transport as fast as the pool goes.
//
//   node bench_email_nodemailer.js --smtp-port N
//        (--messages FILE [--count N] | --count N)
//        [--host 127.0.0.1] [--connections 5] [--max-messages 100]
//        [--user U --password P]
//
// The transport: nodemailer.createTransport({host, port, pool: true,
// maxConnections: --connections, maxMessages: --max-messages (messages per
// connection before it is replaced), secure: false, ignoreTLS: true (plain
// SMTP even when STARTTLS is offered), auth {user, pass} only with
// --user/--password}).
//
// Messages:
//   --messages FILE: JSON lines {"from": "a@x", "to": "b@y" | ["b@y", ...],
//     "raw": "<the full MIME message>"} (blank lines skipped), each sent as
//     is with sendMail({envelope: {from, to}, raw}): exactly the messages
//     the C worker renders. With --count N as well, the file is cycled
//     until N messages are sent; else each line is sent once.
//   --count N alone: N messages composed by nodemailer (its MIME rendering
//     counts in the time, as it would in a Node service): from "Herald
//     Bench" <bench@herald.test> to user<i>@example.test (all distinct),
//     a subject, a text and an HTML alternative (multipart/alternative,
//     quoted-printable, ~1.5 KB rendered), List-Unsubscribe headers.
//
// sendMail calls are kept in flight up to 2 x --connections (enough to keep
// every pooled connection busy; nodemailer queues the rest internally), a
// new one started as each finishes.
//
// Prints exactly one JSON line on stdout at the end:
//   {"sent": n_ok, "failed": n, "seconds": s, "rate": sent per second,
//    "rss_mb": peak resident set size of this process in MiB}
// timed from the first sendMail to the last answer (the first connection
// is made within that time). Errors go to stderr (the first 5 in full,
// then a count by response code). Exit 0 when all were sent, 1 otherwise
// (the line is still printed), 2 on bad arguments.
'use strict';

const fs = require('fs');
const {performance} = require('perf_hooks');
const {parseOptions} = require('./fake_common');
const nodemailer = require('nodemailer');

function usage(msg) {
    process.stderr.write(`bench_email_nodemailer: ${msg}\n` +
        'usage: bench_email_nodemailer.js --smtp-port N ' +
        '(--messages FILE [--count N] | --count N) [--host H] ' +
        '[--connections 5] [--max-messages 100] [--user U --password P]\n');
    process.exit(2);
}

function positive(v, name) {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1)
        usage(`--${name} must be an integer >= 1`);
    return n;
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        'smtp-port': {type: 'string'},
        host: {type: 'string', default: '127.0.0.1'},
        messages: {type: 'string'},
        count: {type: 'string'},
        connections: {type: 'string', default: '5'},
        'max-messages': {type: 'string', default: '100'},
        user: {type: 'string'},
        password: {type: 'string'},
    }, usage);
    const port = Number(v['smtp-port']);
    if (v['smtp-port'] === undefined || !/^\d+$/.test(v['smtp-port']) ||
        port < 1 || port > 65535)
        usage('--smtp-port is required (1..65535)');
    if (v.messages === undefined && v.count === undefined)
        usage('give --messages FILE or --count N');
    if ((v.user === undefined) !== (v.password === undefined))
        usage('--user and --password go together');
    return {
        port, host: v.host, messages: v.messages,
        count: v.count !== undefined ? positive(v.count, 'count') : null,
        connections: positive(v.connections, 'connections'),
        maxMessages: positive(v['max-messages'], 'max-messages'),
        auth: v.user !== undefined ? {user: v.user, pass: v.password} : null,
    };
}

function readMessages(path) {
    const out = [];
    const lines = fs.readFileSync(path, 'utf8').split('\n');
    for (const [i, line] of lines.entries()) {
        if (!line.trim())
            continue;
        let m;
        try {
            m = JSON.parse(line);
        } catch (e) {
            throw new Error(`${path}:${i + 1}: ${e.message}`);
        }
        const toOk = typeof m.to === 'string' || (Array.isArray(m.to) &&
            m.to.length > 0 && m.to.every((x) => typeof x === 'string'));
        if (!m || typeof m.from !== 'string' || !toOk ||
            typeof m.raw !== 'string')
            throw new Error(`${path}:${i + 1}: want {"from", "to", "raw"}`);
        out.push({envelope: {from: m.from, to: m.to}, raw: m.raw});
    }
    if (out.length === 0)
        throw new Error(`${path}: no messages`);
    return out;
}

const FILLER = 'Herald delivers notifications over email, push and chat. ' +
    'This paragraph pads the message to a realistic size. ';

function composed(i) {
    const text = `Hello user ${i},\n\n${FILLER.repeat(3)}\n\n` +
        `Your event evt-${i} is ready.\n-- \nHerald\n`;
    const html = `<html><body><p>Hello <b>user ${i}</b>,</p>` +
        `<p>${FILLER.repeat(3)}</p><p>Your event <a href=` +
        `"https://herald.test/e/${i}">evt-${i}</a> is ready.</p>` +
        '</body></html>';
    return {
        from: '"Herald Bench" <bench@herald.test>',
        to: `user${i}@example.test`,
        subject: `Benchmark message ${i}`,
        text, html,
        headers: {
            'List-Unsubscribe': `<https://herald.test/u/${i}>`,
            'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
        },
    };
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    let file = null;
    try {
        if (o.messages !== undefined)
            file = readMessages(o.messages);
    } catch (e) {
        usage(e.message);
    }
    const total = o.count !== null ? o.count : file.length;
    const message = file ? (i) => file[i % file.length] : composed;

    const transport = nodemailer.createTransport({
        host: o.host, port: o.port, pool: true,
        maxConnections: o.connections, maxMessages: o.maxMessages,
        secure: false, ignoreTLS: true,
        ...(o.auth ? {auth: o.auth} : {}),
    });

    const limit = 2 * o.connections;
    let next = 0;
    let inFlight = 0;
    let sent = 0;
    let failed = 0;
    const reasons = {};
    let start = 0;
    let end = 0;

    await new Promise((resolve) => {
        const pump = () => {
            while (inFlight < limit && next < total) {
                const i = next++;
                inFlight++;
                transport.sendMail(message(i)).then(() => {
                    sent++;
                }, (e) => {
                    failed++;
                    const why = e.responseCode || e.code || 'error';
                    reasons[why] = (reasons[why] || 0) + 1;
                    if (failed <= 5)
                        process.stderr.write('bench_email_nodemailer: ' +
                            `message ${i}: ${e.message}\n`);
                }).finally(() => {
                    inFlight--;
                    if (next >= total && inFlight === 0) {
                        end = performance.now();
                        resolve();
                    } else {
                        pump();
                    }
                });
            }
        };
        start = performance.now();
        pump();
    });
    transport.close();

    const seconds = (end - start) / 1000;
    if (failed > 5)
        process.stderr.write('bench_email_nodemailer: failures by reason: ' +
                             `${JSON.stringify(reasons)}\n`);
    const rssMb = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(JSON.stringify({
        sent, failed,
        seconds: Math.round(seconds * 1000) / 1000,
        rate: seconds > 0 ? Math.round(sent / seconds * 10) / 10 : null,
        rss_mb: Math.round(rssMb * 10) / 10,
    }) + '\n');
    process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => {
    process.stderr.write(`bench_email_nodemailer: ${e.stack || e}\n`);
    process.exit(1);
});
