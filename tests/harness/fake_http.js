#!/usr/bin/env node
// A scriptable HTTP/1.1 + HTTP/2 server for Herald's tests, on Node's
// built-in modules only (no npm packages).
//
//   node fake_http.js --port N [--host 127.0.0.1] [--script routes.json]
//                     [--tls --cert server.pem --key server.key]
//
// Prints "listening <port>" on stdout once it accepts connections (--port 0
// picks a free port). Without --tls it speaks HTTP/1.1; with --tls it
// negotiates HTTP/2 or HTTP/1.1 through ALPN. It runs until killed.
//
// Behaviour is a table of routes keyed by exact path (the query string is
// ignored; "*" matches any path without its own route). A route is
//
//   {"path": "/hook",
//    "status": 200,                 fixed status (default 200)
//    "statuses": [503, 503, 200],   one per request, the last one repeats
//    "delay_ms": 0,                 wait before answering (timeouts)
//    "delays_ms": [3000, 0],        per request, the last one repeats
//    "headers": {"Retry-After": "5"},
//    "body": "...",                 string, or any JSON value (serialized)
//    "bodies": [{...}, {...}],      one per request, the last one repeats
//    "destroy": false,              reset the connection/stream, no answer
//    "by_body": [{"contains": "k-3", "statuses": [503, 200],
//                 "headers": {...}}],
//                                   the first rule whose string the request
//                                   body contains answers instead, with its
//                                   own sequence (the last one repeats)
//    "jwt": {"alg": "HS256"|"RS256"|"ES256",
//            "secret": "...",       HS256 (or "secret_b64")
//            "key": "-----BEGIN PUBLIC KEY-----...",  RS256 / ES256
//            "iss": "herald", "aud": "legacy-api",    checked when set
//            "leeway_s": 5}}
//
// With "jwt", the request must carry "Authorization: Bearer <token>" whose
// header alg is exactly the configured one, whose signature verifies, and
// whose claims hold iss, aud, iat, exp (in the future) and a jti never seen
// before by this server; otherwise the answer is 401 {"error": reason} and
// the route's status sequence does not advance.
//
// Control endpoints (JSON in and out):
//   POST /_control/routes    a route or an array of routes (replaces the
//                            routes of those paths, restarting sequences)
//   POST /_control/reset     forget routes, recorded requests and jtis
//   GET  /_control/requests  every request received so far, oldest first,
//                            optionally ?path=/hook:
//     {"seq", "method", "path", "url", "http_version", "remote_port" (the
//      client's: tells connections apart), "headers", "body", "time_ms",
//      "status" (answered, or null), "jwt": null |
//      {"ok": bool, "error": string|null, "header": {...}, "claims": {...}}}
//   GET  /_control/summary   counts instead of the requests, optionally
//                            ?path=/hook: {"requests", "statuses": {status:
//     n}, "keys" (distinct Idempotency-Keys), "ok_keys" (distinct keys
//     answered 2xx), "ok_repeats" (2xx answers to a key answered 2xx
//     before), "repeats" (requests whose key was seen before),
//     "repeats_by_second" and "ok_by_second" ({unix second: n}),
//     "first_ms", "last_ms"}
//   GET  /_control/health    {"ok": true}
// A --script file holds {"routes": [...]} loaded at start.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const http2 = require('http2');

function usage(msg) {
    process.stderr.write(`fake_http: ${msg}\n` +
        'usage: fake_http.js --port N [--host H] [--script F] ' +
        '[--tls --cert F --key F]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const opts = {port: null, host: '127.0.0.1', tls: false};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length)
                usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port')
            opts.port = Number(val());
        else if (a === '--host')
            opts.host = val();
        else if (a === '--script')
            opts.script = val();
        else if (a === '--tls')
            opts.tls = true;
        else if (a === '--cert')
            opts.cert = val();
        else if (a === '--key')
            opts.key = val();
        else
            usage(`unknown argument '${a}'`);
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
        usage('--port is required (0..65535)');
    if (opts.tls && (!opts.cert || !opts.key))
        usage('--tls needs --cert and --key');
    return opts;
}

const opts = parseArgs(process.argv.slice(2));

const state = {
    routes: new Map(), // path -> {route, hits, bodyHits}
    requests: [],
    jtis: new Set(),
    seq: 0,
};

function setRoute(route) {
    if (!route || typeof route.path !== 'string')
        throw new Error('a route needs a "path" string');
    if (route.jwt) {
        const j = route.jwt;
        if (!['HS256', 'RS256', 'ES256'].includes(j.alg))
            throw new Error(`route ${route.path}: unsupported jwt alg`);
        if (j.alg === 'HS256' && typeof j.secret !== 'string' &&
            typeof j.secret_b64 !== 'string')
            throw new Error(`route ${route.path}: HS256 needs a secret`);
        if (j.alg !== 'HS256') {
            if (typeof j.key !== 'string')
                throw new Error(`route ${route.path}: ${j.alg} needs a key`);
            // Parse now, so a bad PEM fails the control call, not a test.
            crypto.createPublicKey(j.key);
        }
    }
    if (route.by_body !== undefined && (!Array.isArray(route.by_body) ||
        route.by_body.some(r => typeof r.contains !== 'string' ||
                                !Array.isArray(r.statuses))))
        throw new Error(`route ${route.path}: by_body needs ` +
                        '[{"contains": string, "statuses": [...]}]');
    if (route.bodies !== undefined &&
        (!Array.isArray(route.bodies) || !route.bodies.length))
        throw new Error(`route ${route.path}: bodies must be a non-empty array`);
    state.routes.set(route.path, {route, hits: 0, bodyHits: new Map()});
}

function resetState() {
    state.routes.clear();
    state.requests = [];
    state.jtis.clear();
}

if (opts.script) {
    const script = JSON.parse(fs.readFileSync(opts.script, 'utf8'));
    for (const r of script.routes || [])
        setRoute(r);
}

function pick(seq, hits) {
    return seq[Math.min(hits, seq.length - 1)];
}

function b64urlJson(part, what) {
    try {
        return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    } catch (e) {
        throw new Error(`${what} is not base64url json`);
    }
}

// Verify a bearer token against a route's jwt settings; returns
// {header, claims} or throws with the reason.
function verifyJwt(req, cfg) {
    const auth = req.headers['authorization'] || '';
    const m = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(auth);
    if (!m)
        throw new Error('no bearer token');
    const parts = m[1].split('.');
    if (parts.length !== 3 || !parts[2])
        throw new Error('token is not a signed compact jws');
    const header = b64urlJson(parts[0], 'header');
    if (header.alg !== cfg.alg)
        throw new Error(`alg ${header.alg} is not ${cfg.alg}`);
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    let ok;
    if (cfg.alg === 'HS256') {
        const secret = cfg.secret_b64 !== undefined
            ? Buffer.from(cfg.secret_b64, 'base64') : Buffer.from(cfg.secret);
        const mac = crypto.createHmac('sha256', secret).update(data).digest();
        ok = mac.length === sig.length && crypto.timingSafeEqual(mac, sig);
    } else if (cfg.alg === 'RS256') {
        ok = crypto.verify('sha256', data, cfg.key, sig);
    } else {
        ok = crypto.verify('sha256', data,
            {key: cfg.key, dsaEncoding: 'ieee-p1363'}, sig);
    }
    if (!ok)
        throw new Error('bad signature');
    const claims = b64urlJson(parts[1], 'payload');
    for (const k of ['iss', 'aud', 'iat', 'exp', 'jti'])
        if (claims[k] === undefined)
            throw new Error(`claim ${k} is missing`);
    const now = Date.now() / 1000;
    const leeway = cfg.leeway_s !== undefined ? cfg.leeway_s : 5;
    if (cfg.iss !== undefined && claims.iss !== cfg.iss)
        throw new Error(`iss ${claims.iss} is not ${cfg.iss}`);
    if (cfg.aud !== undefined) {
        const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
        if (!auds.includes(cfg.aud))
            throw new Error(`aud ${claims.aud} is not ${cfg.aud}`);
    }
    if (typeof claims.exp !== 'number' || claims.exp <= now - leeway)
        throw new Error('token expired');
    if (typeof claims.iat !== 'number' || claims.iat > now + leeway)
        throw new Error('iat is in the future');
    if (typeof claims.jti !== 'string' || !claims.jti)
        throw new Error('jti is not a string');
    if (state.jtis.has(claims.jti))
        throw new Error('jti replayed');
    state.jtis.add(claims.jti);
    return {header, claims};
}

function send(res, status, headers, body) {
    try {
        if (res.writableEnded || res.destroyed)
            return;
        res.writeHead(status, Object.assign(
            {'content-type': 'application/json'}, headers || {}));
        res.end(body);
    } catch (e) {
        // The client went away (a timeout test): nothing to answer.
    }
}

function sendJson(res, status, obj) {
    send(res, status, null, JSON.stringify(obj));
}

function control(req, res, path, query, body) {
    try {
        if (path === '/_control/health') {
            sendJson(res, 200, {ok: true});
        } else if (path === '/_control/reset' && req.method === 'POST') {
            resetState();
            sendJson(res, 200, {ok: true});
        } else if (path === '/_control/routes' && req.method === 'POST') {
            const parsed = JSON.parse(body.toString('utf8'));
            for (const r of Array.isArray(parsed) ? parsed : [parsed])
                setRoute(r);
            sendJson(res, 200, {ok: true});
        } else if (path === '/_control/summary' && req.method === 'GET') {
            sendJson(res, 200, summary(query.get('path')));
        } else if (path === '/_control/requests' && req.method === 'GET') {
            const want = query.get('path');
            sendJson(res, 200, state.requests.filter(
                r => want === null || r.path === want));
        } else {
            sendJson(res, 404, {error: `no control endpoint ${path}`});
        }
    } catch (e) {
        sendJson(res, 400, {error: String(e.message || e)});
    }
}

function summary(want) {
    const out = {requests: 0, statuses: {}, keys: 0, ok_keys: 0,
                 ok_repeats: 0, repeats: 0, repeats_by_second: {},
                 ok_by_second: {}, first_ms: null, last_ms: null};
    const seen = new Set(), ok = new Set();
    for (const r of state.requests) {
        if (want !== null && r.path !== want)
            continue;
        const key = r.headers['idempotency-key'];
        const sec = Math.floor(r.time_ms / 1000);
        out.requests++;
        out.statuses[r.status] = (out.statuses[r.status] || 0) + 1;
        if (out.first_ms === null)
            out.first_ms = r.time_ms;
        out.last_ms = r.time_ms;
        if (key !== undefined && seen.has(key)) {
            out.repeats++;
            out.repeats_by_second[sec] = (out.repeats_by_second[sec] || 0) + 1;
        }
        if (key !== undefined)
            seen.add(key);
        if (r.status >= 200 && r.status < 300) {
            out.ok_by_second[sec] = (out.ok_by_second[sec] || 0) + 1;
            if (key !== undefined && ok.has(key))
                out.ok_repeats++;
            if (key !== undefined)
                ok.add(key);
        }
    }
    out.keys = seen.size;
    out.ok_keys = ok.size;
    return out;
}

function destroy(req) {
    if (req.stream)
        req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    else
        req.socket.destroy();
}

function serve(req, res, path, body) {
    const entry = {
        seq: ++state.seq,
        method: req.method,
        path,
        url: req.url,
        http_version: req.httpVersion,
        remote_port: req.socket ? req.socket.remotePort : null,
        headers: Object.fromEntries(Object.entries(req.headers)
            .filter(([k]) => !k.startsWith(':'))),
        body: body.toString('utf8'),
        time_ms: Date.now(),
        status: null,
        jwt: null,
    };
    state.requests.push(entry);

    const slot = state.routes.get(path) || state.routes.get('*');
    const route = slot ? slot.route : {};
    if (route.jwt) {
        try {
            const {header, claims} = verifyJwt(req, route.jwt);
            entry.jwt = {ok: true, error: null, header, claims};
        } catch (e) {
            entry.jwt = {ok: false, error: e.message, header: null,
                         claims: null};
            entry.status = 401;
            sendJson(res, 401, {error: e.message});
            return;
        }
    }
    const rule = (route.by_body || []).find(r => entry.body.includes(r.contains));
    let status;
    if (rule) {
        const n = slot.bodyHits.get(rule) || 0;
        slot.bodyHits.set(rule, n + 1);
        status = pick(rule.statuses, n);
    }
    const hits = slot ? slot.hits++ : 0;
    if (status === undefined)
        status = route.statuses ? pick(route.statuses, hits)
            : (route.status || 200);
    const delay = route.delays_ms ? pick(route.delays_ms, hits)
        : (route.delay_ms || 0);
    let out = route.bodies ? pick(route.bodies, hits)
        : route.body === undefined ? {ok: true} : route.body;
    if (typeof out !== 'string')
        out = JSON.stringify(out);
    const answer = () => {
        if (route.destroy) {
            destroy(req);
            return;
        }
        entry.status = status;
        send(res, status, rule && rule.headers ? rule.headers : route.headers,
             out);
    };
    if (delay > 0)
        setTimeout(answer, delay);
    else
        answer();
}

function handler(req, res) {
    const chunks = [];
    let size = 0;
    req.on('data', c => {
        size += c.length;
        if (size <= 1024 * 1024)
            chunks.push(c);
    });
    req.on('error', () => {});
    req.on('end', () => {
        const u = new URL(req.url, 'http://fake');
        const body = Buffer.concat(chunks);
        if (u.pathname.startsWith('/_control/'))
            control(req, res, u.pathname, u.searchParams, body);
        else
            serve(req, res, u.pathname, body);
    });
}

let server;
if (opts.tls) {
    server = http2.createSecureServer({
        cert: fs.readFileSync(opts.cert),
        key: fs.readFileSync(opts.key),
        allowHTTP1: true,
        settings: {maxConcurrentStreams: 1000},
    }, handler);
} else {
    server = http.createServer({keepAliveTimeout: 30000}, handler);
}
server.on('error', e => {
    process.stderr.write(`fake_http: ${e.message}\n`);
    process.exit(1);
});
server.on('sessionError', () => {});
server.on('clientError', (e, socket) => socket.destroy());
process.on('uncaughtException', e => {
    process.stderr.write(`fake_http: uncaught: ${e.stack || e}\n`);
});
server.listen(opts.port, opts.host, () => {
    process.stdout.write(`listening ${server.address().port}\n`);
});
