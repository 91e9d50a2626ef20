#!/usr/bin/env node
// The Node.js FCM peer of Herald's push worker, for push benchmarks: what a
// Node team would write with the usual package, firebase-admin, sending FCM
// HTTP v1 messages one by one with messaging.send().
//
//   node bench_push_fcm.js --endpoint https://127.0.0.1:P
//        --credentials sa.json --ca ca.pem --tokens tokens.txt
//        --count N --concurrency C [--transport http1|http2]
//
// Pointing firebase-admin at a fake. It has no endpoint or emulator setting
// for messaging: the host is a constant (node_modules/firebase-admin/lib/
// messaging/messaging.js: FCM_SEND_HOST = 'fcm.googleapis.com', requests to
// `https://${host}${path}` in messaging-api-request-internal.js), and its
// service-account credential mints access tokens with google-auth-library,
// whose JWT client ignores the key file's token_uri (google-auth-library/
// build/src/gtoken/getToken.js and jwsSign.js: POST to, and assertion aud,
// https://oauth2.googleapis.com/token). Its one seam is public: the
// http.Agent of AppOptions.httpAgent (used by messaging.send(), i.e. by
// HttpClient's https.request) and of credential.cert(sa, httpAgent) (handed
// to google-auth-library's transporter: node-fetch with that agent). So this
// script gives both an https.Agent whose createConnection dials --endpoint
// whichever of fcm.googleapis.com / oauth2.googleapis.com a request names
// (like a hosts-file entry; any other host is refused), checking the
// server's certificate against --ca for the endpoint's host (SNI and the
// Host header stay Google's, so the token assertion's aud
// https://oauth2.googleapis.com/token matches the fake's
// https://<Host>/token). firebase-admin itself is used unmodified. The
// default HTTP/2 transport of sendEach()/sendEachForMulticast() cannot be
// redirected this way (it calls http2.connect('https://fcm.googleapis.com',
// {peerMaxConcurrentStreams: 100, ALPNProtocols: ['h2']}) with no agent:
// messaging.js sendEach(), utils/api-request.js Http2SessionHandler), which
// is why the default mode uses send().
//
// --transport http1 (default): firebase-admin end to end:
//   initializeApp({credential: cert(sa.json, agent), httpAgent: agent}) and
//   messaging.send(message) per message, C in flight. send() always speaks
//   HTTP/1.1 (keep-alive), so up to C TLS connections are opened, as with
//   Node's global agent (keepAlive, maxSockets Infinity).
// --transport http2: what a Node team would write against FCM HTTP v1 for
//   HTTP/2: the access token from the same firebase-admin credential
//   (credential.getAccessToken(), google-auth-library underneath, refreshed
//   5 minutes before expiry), then Node's http2 client, one session to
//   --endpoint (trusting --ca), C streams in flight of
//   POST /v1/projects/<project_id>/messages:send.
//
// Each message: {token, notification {title, body}, data {event_id},
// android.notification.notification_count}; FCM tokens cycle through the
// lines of --tokens (blank lines and lines starting with # skipped). A
// success is a 200 (send() resolving with the message name).
//
// Prints exactly one JSON line on stdout at the end:
//   {"sent": n_ok, "failed": n, "seconds": s, "rate": sent per second}
// timed from the first send (the access token is fetched and the first
// connection made then) to the last answer. Errors go to stderr (the first 5
// failures in full, then a count by reason). Exit 0 when all N were sent, 1
// otherwise (the line is still printed), 2 on bad arguments.
'use strict';

const fs = require('fs');
const http2 = require('http2');
const https = require('https');
const tls = require('tls');
const {performance} = require('perf_hooks');
const {parseOptions} = require('./fake_common');
const {initializeApp, cert, deleteApp} = require('firebase-admin/app');
const {getMessaging} = require('firebase-admin/messaging');

// The hosts firebase-admin (and google-auth-library under it) calls to send
// messages and mint access tokens; the agent sends these to --endpoint.
const GOOGLE_HOSTS = new Set(['fcm.googleapis.com', 'oauth2.googleapis.com',
                              'www.googleapis.com']);

function usage(msg) {
    process.stderr.write(`bench_push_fcm: ${msg}\n` +
        'usage: bench_push_fcm.js --endpoint https://HOST:PORT ' +
        '--credentials sa.json --ca ca.pem --tokens tokens.txt ' +
        '--count N --concurrency C [--transport http1|http2]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        endpoint: {type: 'string'},
        credentials: {type: 'string'},
        ca: {type: 'string'},
        tokens: {type: 'string'},
        count: {type: 'string'},
        concurrency: {type: 'string'},
        transport: {type: 'string', default: 'http1'},
    }, usage);
    for (const k of ['endpoint', 'credentials', 'ca', 'tokens', 'count',
                     'concurrency'])
        if (!v[k])
            usage(`--${k} is required`);
    const o = {credentials: v.credentials, ca: v.ca, tokens: v.tokens,
               count: Number(v.count), concurrency: Number(v.concurrency),
               transport: v.transport};
    try {
        o.endpoint = new URL(v.endpoint);
    } catch (e) {
        usage(`--endpoint: ${e.message}`);
    }
    if (o.endpoint.protocol !== 'https:' || o.endpoint.pathname !== '/')
        usage('--endpoint must be https://host[:port]');
    if (!Number.isInteger(o.count) || o.count < 1)
        usage('--count must be an integer >= 1');
    if (!Number.isInteger(o.concurrency) || o.concurrency < 1)
        usage('--concurrency must be an integer >= 1');
    if (o.transport !== 'http1' && o.transport !== 'http2')
        usage('--transport must be http1 or http2');
    return o;
}

function readTokens(path) {
    const tokens = fs.readFileSync(path, 'utf8').split('\n')
        .map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    if (tokens.length === 0)
        throw new Error(`${path}: no tokens`);
    return tokens;
}

// An https.Agent like Node's global one (keep-alive, LIFO, no socket limit)
// whose connections for Google's hosts go to `target` instead, the server's
// certificate checked against `ca` for target's host name.
class RedirectAgent extends https.Agent {
    constructor(target, ca) {
        super({keepAlive: true, scheduling: 'lifo', timeout: 5000});
        this.target = target;
        this.targetCa = ca;
    }

    createConnection(options, callback) {
        const host = options.servername || options.host;
        if (!GOOGLE_HOSTS.has(host)) {
            process.nextTick(callback, new Error(
                `bench_push_fcm: refusing to connect to ${host}`));
            return undefined;
        }
        const targetHost = this.target.hostname.replace(/^\[|\]$/g, '');
        return tls.connect({
            ...options,
            host: targetHost,
            port: Number(this.target.port || 443),
            ca: this.targetCa,
            servername: host,   // SNI as for Google; the fake ignores it
            checkServerIdentity: (_, c) =>
                tls.checkServerIdentity(targetHost, c),
        });
    }
}

function message(token, i) {
    return {
        token,
        notification: {title: 'New message', body: `Message ${i} from Alice`},
        data: {event_id: `evt-${i}`},
        android: {notification: {notificationCount: 1 + (i % 99)}},
    };
}

// The same message as FCM HTTP v1 JSON.
function messageJson(token, i) {
    return JSON.stringify({message: {
        token,
        notification: {title: 'New message', body: `Message ${i} from Alice`},
        data: {event_id: `evt-${i}`},
        android: {notification: {notification_count: 1 + (i % 99)}},
    }});
}

// http2 mode: one session, each call one POST; resolves to the status and
// body (rejects on a stream or session error).
function h2Post(session, path, headers, body) {
    return new Promise((resolve, reject) => {
        const req = session.request({':method': 'POST', ':path': path,
                                     ...headers});
        let status = 0;
        const chunks = [];
        req.on('response', (h) => { status = h[':status']; });
        req.on('data', (d) => chunks.push(d));
        req.on('end', () => resolve({status,
            body: Buffer.concat(chunks).toString('utf8')}));
        req.on('error', reject);
        req.setTimeout(15000, () => {
            req.close(http2.constants.NGHTTP2_CANCEL);
            reject(new Error('timeout'));
        });
        req.end(body);
    });
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    let tokens;
    let ca;
    let sa;
    try {
        tokens = readTokens(o.tokens);
        ca = fs.readFileSync(o.ca);
        sa = JSON.parse(fs.readFileSync(o.credentials, 'utf8'));
    } catch (e) {
        usage(e.message);
    }
    if (!sa.project_id)
        usage(`${o.credentials}: no project_id`);

    const agent = new RedirectAgent(o.endpoint, ca);
    const credential = cert(o.credentials, agent);
    const app = initializeApp({credential, httpAgent: agent,
                               projectId: sa.project_id}, 'herald-bench');
    const messaging = getMessaging(app);

    let next = 0;
    let sent = 0;
    let failed = 0;
    let shown = 0;
    const reasons = new Map();

    function fail(token, why, detail) {
        failed++;
        reasons.set(why, (reasons.get(why) || 0) + 1);
        if (shown < 5) {
            shown++;
            process.stderr.write(`bench_push_fcm: failed ${token}: ${why}` +
                                 `${detail ? ' ' + detail : ''}\n`);
        }
    }

    // http1: firebase-admin's messaging.send().
    async function sendAdmin(i) {
        const token = tokens[i % tokens.length];
        try {
            await messaging.send(message(token, i));
            sent++;
        } catch (e) {
            fail(token, e.code || e.name || 'error', e.message);
        }
    }

    // http2: credential + Node's http2 client.
    let session = null;
    let access = null;          // {token, expiresAt ms}
    let accessPromise = null;
    const path = `/v1/projects/${encodeURIComponent(sa.project_id)}` +
        '/messages:send';

    function connect() {
        if (session && !session.closed && !session.destroyed)
            return session;
        session = http2.connect(o.endpoint.origin, {ca});
        session.on('error', (e) =>
            process.stderr.write(`bench_push_fcm: session: ${e.message}\n`));
        return session;
    }

    async function accessToken() {
        if (access && access.expiresAt - Date.now() > 300000)
            return access.token;
        if (!accessPromise) {
            accessPromise = credential.getAccessToken().then((t) => {
                access = {token: t.access_token,
                          expiresAt: Date.now() + t.expires_in * 1000};
                return access.token;
            }).finally(() => { accessPromise = null; });
        }
        return accessPromise;
    }

    async function sendH2(i) {
        const token = tokens[i % tokens.length];
        try {
            const bearer = await accessToken();
            const r = await h2Post(connect(), path, {
                'authorization': `Bearer ${bearer}`,
                'content-type': 'application/json; charset=utf-8',
            }, messageJson(token, i));
            if (r.status === 200) {
                sent++;
            } else {
                let why = `${r.status}`;
                try {
                    const err = JSON.parse(r.body).error;
                    why += ` ${err.status || ''}`;
                } catch (e) {
                    // not JSON: the status alone
                }
                fail(token, why, r.body.slice(0, 300));
            }
        } catch (e) {
            fail(token, e.code || e.name || 'error', e.message);
        }
    }

    const sendOne = o.transport === 'http2' ? sendH2 : sendAdmin;
    async function worker() {
        while (next < o.count)
            await sendOne(next++);
    }

    const t0 = performance.now();
    const workers = [];
    for (let w = 0; w < Math.min(o.concurrency, o.count); w++)
        workers.push(worker());
    await Promise.all(workers);
    const seconds = (performance.now() - t0) / 1000;

    if (session)
        session.close();
    await deleteApp(app);
    agent.destroy();

    if (reasons.size)
        process.stderr.write('bench_push_fcm: failures by reason: ' +
            JSON.stringify(Object.fromEntries(reasons)) + '\n');
    process.stdout.write(JSON.stringify({
        sent, failed, seconds: Number(seconds.toFixed(3)),
        rate: Number((sent / seconds).toFixed(1)),
    }) + '\n');
    process.exitCode = sent === o.count && failed === 0 ? 0 : 1;
}

main().catch((e) => {
    process.stderr.write(`bench_push_fcm: ${e && e.stack || e}\n`);
    process.exit(1);
});
