#!/usr/bin/env node
// A fake AWS STS endpoint (AssumeRoleWithWebIdentity, as EKS IRSA uses it)
// plus a recording proxy for SQS JSON calls, for Herald's tests; Node's
// built-in modules only (no npm packages), the command line and HTTP helpers
// shared with fake_sqs.js in fake_common.js.
//
//   node fake_sts.js --port N [--host 127.0.0.1]
//                    [--upstream http://127.0.0.1:PORT] [--lifetime-s S]
//
// Prints "listening <port>" on stdout once it accepts connections (--port 0
// picks a free port). HTTP/1.1 only. It runs until killed.
//
// STS: POST / with Content-Type application/x-www-form-urlencoded and the
// query-protocol form
//   Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=..
//   &RoleSessionName=..&WebIdentityToken=..
// is answered 200, Content-Type text/xml, with the real STS shape
// (namespace https://sts.amazonaws.com/doc/2011-06-15/):
//   <AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>
//     <Credentials><AccessKeyId>ASIAFAKE<n></AccessKeyId>
//       <SecretAccessKey>secret<n></SecretAccessKey>
//       <SessionToken>token-<n>-<random hex></SessionToken>
//       <Expiration>now + lifetime, "YYYY-MM-DDTHH:MM:SSZ" (no fraction)
//       </Expiration></Credentials>
//     <SubjectFromWebIdentityToken> (the token's "sub" when it is a JWT)
//     <AssumedRoleUser><Arn>arn:aws:sts::<acct>:assumed-role/<role>/<session>
//       </Arn><AssumedRoleId>AROAFAKE..:<session></AssumedRoleId>
//     </AssumedRoleUser><Provider> (the JWT's "iss" as an oidc-provider ARN)
//     <Audience>sts.amazonaws.com</Audience>
//   </AssumeRoleWithWebIdentityResult>
//   <ResponseMetadata><RequestId>uuid</RequestId></ResponseMetadata>
//   </AssumeRoleWithWebIdentityResponse>
// where n counts the credentials issued (1, 2, ...). The token is not
// verified (any string will do); DurationSeconds is ignored: the lifetime is
// 3600 s, or --lifetime-s, or what POST /_control/lifetime last set.
// Errors use the STS error XML, Content-Type text/xml:
//   <ErrorResponse xmlns=...><Error><Type>Sender|Receiver</Type>
//   <Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId>
//   </ErrorResponse>
//   - missing or empty WebIdentityToken or RoleArn: 400 InvalidIdentityToken
//   - another Action: 400 InvalidAction
//   - injected failures (POST /_control/fail): that status and code; Type is
//     Receiver for 5xx, Sender otherwise. They take precedence over the
//     checks above and count down once per exchange.
//
// SQS proxy: any POST / carrying an X-Amz-Target header (an SQS JSON call)
// is recorded and forwarded verbatim (method, path, headers except Host and
// Connection, body) to --upstream, e.g. fauxqs; the upstream's status,
// headers (hop-by-hop ones dropped, Content-Length recomputed) and body are
// returned. The SigV4 signature covers our Host, so the upstream must not
// check signatures (fauxqs does not). Without --upstream, or when the
// upstream fails, the answer is 502 {"__type": "...#ProxyError", "message"}.
// Anything else on POST / is 400; other paths 404.
//
// Control endpoints (JSON in and out):
//   POST /_control/lifetime  {"seconds": N}: lifetime of credentials issued
//                            from now on
//   POST /_control/fail      {"count": N, "status": 503,
//                             "code": "IDPCommunicationError",
//                             "message": "..." (optional)}: the next N
//                            exchanges fail with that (count 0 cancels)
//   POST /_control/reset     forget exchanges, proxied calls and pending
//                            failures (n keeps counting)
//   GET  /_control/exchanges every STS exchange, oldest first:
//     {"time_ms", "role_arn", "session_name", "token" (the WebIdentityToken
//      received), "issued_key_id" (or null), "status"}
//   GET  /_control/proxied   every recorded SQS call, oldest first:
//     {"time_ms", "target" (X-Amz-Target), "key_id" (from "Authorization:
//      AWS4-HMAC-SHA256 Credential=<key id>/..." or null), "security_token"
//      (X-Amz-Security-Token or null), "status" (the upstream's, 502 when
//      it failed, null while in flight)}
//   GET  /_control/health    {"ok": true}
'use strict';

const crypto = require('crypto');
const http = require('http');
const {parseOptions, send, sendJson, readBody, listen} =
    require('./fake_common');

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

function usage(msg) {
    process.stderr.write(`fake_sts: ${msg}\n` +
        'usage: fake_sts.js --port N [--host H] [--upstream URL] ' +
        '[--lifetime-s S]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        port: {type: 'string'},
        host: {type: 'string', default: '127.0.0.1'},
        upstream: {type: 'string'},
        'lifetime-s': {type: 'string', default: '3600'},
    }, usage);
    const opts = {port: Number(v.port), host: v.host,
                  upstream: v.upstream ?? null,
                  lifetime: Number(v['lifetime-s'])};
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
        usage('--port is required (0..65535)');
    if (!Number.isFinite(opts.lifetime) || opts.lifetime < 0)
        usage('--lifetime-s must be a number of seconds >= 0');
    if (opts.upstream !== null) {
        try {
            opts.upstream = new URL(opts.upstream);
        } catch (e) {
            usage(`bad --upstream '${opts.upstream}'`);
        }
        if (opts.upstream.protocol !== 'http:')
            usage('--upstream must be an http:// URL');
    }
    return opts;
}

const opts = parseArgs(process.argv.slice(2));

const state = {
    lifetime: opts.lifetime,
    issued: 0,
    fail: {count: 0, status: 503, code: 'IDPCommunicationError',
           message: null},
    exchanges: [],
    proxied: [],
};

const upstreamAgent = new http.Agent({keepAlive: true, maxSockets: 256});

function xmlEscape(s) {
    return String(s).replace(/[<>&'"]/g, c => ({
        '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;',
    })[c]);
}

function sendXml(res, status, requestId, xml) {
    send(res, status, {'content-type': 'text/xml',
                       'content-length': Buffer.byteLength(xml),
                       'x-amzn-requestid': requestId}, xml);
}

function stsError(res, status, code, message) {
    const rid = crypto.randomUUID();
    const type = status >= 500 ? 'Receiver' : 'Sender';
    sendXml(res, status, rid,
        `<ErrorResponse xmlns="${STS_NS}">\n` +
        `  <Error>\n    <Type>${type}</Type>\n` +
        `    <Code>${xmlEscape(code)}</Code>\n` +
        `    <Message>${xmlEscape(message)}</Message>\n  </Error>\n` +
        `  <RequestId>${rid}</RequestId>\n</ErrorResponse>\n`);
}

// "YYYY-MM-DDTHH:MM:SSZ", no fractional seconds.
function isoSeconds(ms) {
    return new Date(Math.floor(ms / 1000) * 1000).toISOString()
        .replace(/\.\d{3}Z$/, 'Z');
}

// The claims of a JWT, or {} when the token is not one.
function jwtClaims(token) {
    const parts = token.split('.');
    if (parts.length !== 3)
        return {};
    try {
        const c = JSON.parse(Buffer.from(parts[1], 'base64url')
            .toString('utf8'));
        return c && typeof c === 'object' ? c : {};
    } catch (e) {
        return {};
    }
}

function assumeRoleWithWebIdentity(res, form) {
    // As received: null when absent, "" when empty.
    const rec = {time_ms: Date.now(), role_arn: form.get('RoleArn'),
                 session_name: form.get('RoleSessionName'),
                 token: form.get('WebIdentityToken'),
                 issued_key_id: null, status: null};
    const roleArn = rec.role_arn || '';
    const session = rec.session_name || '';
    const token = rec.token || '';
    state.exchanges.push(rec);

    if (state.fail.count > 0) {
        state.fail.count--;
        rec.status = state.fail.status;
        stsError(res, state.fail.status, state.fail.code,
                 state.fail.message ||
                 `injected failure (${state.fail.code})`);
        return;
    }
    if (!token || !roleArn) {
        rec.status = 400;
        stsError(res, 400, 'InvalidIdentityToken',
                 !token ? 'WebIdentityToken is missing or empty'
                        : 'RoleArn is missing or empty');
        return;
    }

    const n = ++state.issued;
    const keyId = `ASIAFAKE${n}`;
    rec.issued_key_id = keyId;
    rec.status = 200;

    // arn:aws:iam::<account>:role/<path/name>
    const m = /^arn:[^:]*:iam::(\d*):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
    const account = m ? m[1] : '000000000000';
    const roleName = m ? m[2] : 'role';
    const claims = jwtClaims(token);
    const subject = typeof claims.sub === 'string' ? claims.sub
        : 'system:serviceaccount:default:herald';
    const iss = typeof claims.iss === 'string'
        ? claims.iss.replace(/^https:\/\//, '')
        : 'oidc.eks.us-east-1.amazonaws.com/id/FAKE';
    const aud = typeof claims.aud === 'string' ? claims.aud
        : Array.isArray(claims.aud) && typeof claims.aud[0] === 'string'
            ? claims.aud[0] : 'sts.amazonaws.com';
    const rid = crypto.randomUUID();
    const expiration = isoSeconds(Date.now() + state.lifetime * 1000);
    const sessionToken = `token-${n}-${crypto.randomBytes(16).toString('hex')}`;

    sendXml(res, 200, rid,
        `<AssumeRoleWithWebIdentityResponse xmlns="${STS_NS}">\n` +
        '  <AssumeRoleWithWebIdentityResult>\n' +
        '    <Credentials>\n' +
        `      <AccessKeyId>${keyId}</AccessKeyId>\n` +
        `      <SecretAccessKey>secret${n}</SecretAccessKey>\n` +
        `      <SessionToken>${sessionToken}</SessionToken>\n` +
        `      <Expiration>${expiration}</Expiration>\n` +
        '    </Credentials>\n' +
        '    <SubjectFromWebIdentityToken>' + xmlEscape(subject) +
        '</SubjectFromWebIdentityToken>\n' +
        '    <AssumedRoleUser>\n' +
        '      <Arn>' + xmlEscape(`arn:aws:sts::${account}:assumed-role/` +
                                  `${roleName}/${session}`) + '</Arn>\n' +
        '      <AssumedRoleId>' +
        xmlEscape(`AROAFAKE${account.slice(-4)}:${session}`) +
        '</AssumedRoleId>\n' +
        '    </AssumedRoleUser>\n' +
        '    <Provider>' +
        xmlEscape(`arn:aws:iam::${account}:oidc-provider/${iss}`) +
        '</Provider>\n' +
        `    <Audience>${xmlEscape(aud)}</Audience>\n` +
        '  </AssumeRoleWithWebIdentityResult>\n' +
        '  <ResponseMetadata>\n' +
        `    <RequestId>${rid}</RequestId>\n` +
        '  </ResponseMetadata>\n' +
        '</AssumeRoleWithWebIdentityResponse>\n');
}

function sts(res, body) {
    const form = new URLSearchParams(body.toString('utf8'));
    const action = form.get('Action');
    if (action !== 'AssumeRoleWithWebIdentity') {
        stsError(res, 400, 'InvalidAction',
                 `Could not find operation ${action || '(none)'}`);
        return;
    }
    assumeRoleWithWebIdentity(res, form);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding',
                            'proxy-connection', 'upgrade', 'te',
                            'trailer']);

function proxy(req, res, body) {
    const auth = req.headers['authorization'] || '';
    const m = /Credential=([^/,\s]+)\//.exec(auth);
    const rec = {time_ms: Date.now(),
                 target: String(req.headers['x-amz-target']),
                 key_id: m ? m[1] : null,
                 security_token: req.headers['x-amz-security-token'] ?? null,
                 status: null};
    state.proxied.push(rec);

    const fail = (msg) => {
        rec.status = 502;
        sendJson(res, 502, {__type: 'com.amazonaws.sqs#ProxyError',
                            message: msg});
    };
    if (!opts.upstream) {
        fail('fake_sts has no --upstream');
        return;
    }
    const headers = {};
    for (const [k, v] of Object.entries(req.headers))
        if (k !== 'host' && k !== 'connection')
            headers[k] = v;
    const up = http.request({
        host: opts.upstream.hostname,
        port: opts.upstream.port || 80,
        method: req.method,
        path: req.url,
        headers,
        agent: upstreamAgent,
    }, (ures) => {
        const chunks = [];
        ures.on('data', c => chunks.push(c));
        ures.on('error', e => fail(`upstream: ${e.message}`));
        ures.on('end', () => {
            const out = Buffer.concat(chunks);
            const h = {};
            for (const [k, v] of Object.entries(ures.headers))
                if (!HOP_BY_HOP.has(k) && k !== 'content-length')
                    h[k] = v;
            h['content-length'] = out.length;
            rec.status = ures.statusCode;
            send(res, ures.statusCode, h, out);
        });
    });
    up.on('error', e => fail(`upstream: ${e.message}`));
    up.end(body);
}

function control(req, res, path, body) {
    try {
        const json = () => JSON.parse(body.toString('utf8') || '{}');
        if (path === '/_control/health') {
            sendJson(res, 200, {ok: true});
        } else if (path === '/_control/lifetime' && req.method === 'POST') {
            const s = Number(json().seconds);
            if (!Number.isFinite(s) || s < 0)
                throw new Error('"seconds" must be a number >= 0');
            state.lifetime = s;
            sendJson(res, 200, {ok: true, seconds: s});
        } else if (path === '/_control/fail' && req.method === 'POST') {
            const f = json();
            const count = Number(f.count ?? 1);
            const status = Number(f.status ?? 503);
            if (!Number.isInteger(count) || count < 0)
                throw new Error('"count" must be an integer >= 0');
            if (!Number.isInteger(status) || status < 100 || status > 599)
                throw new Error('"status" must be an HTTP status');
            state.fail = {count, status,
                          code: String(f.code ?? 'IDPCommunicationError'),
                          message: f.message == null ? null
                                                     : String(f.message)};
            sendJson(res, 200, {ok: true});
        } else if (path === '/_control/reset' && req.method === 'POST') {
            state.exchanges = [];
            state.proxied = [];
            state.fail.count = 0;
            sendJson(res, 200, {ok: true});
        } else if (path === '/_control/exchanges' && req.method === 'GET') {
            sendJson(res, 200, state.exchanges);
        } else if (path === '/_control/proxied' && req.method === 'GET') {
            sendJson(res, 200, state.proxied);
        } else {
            sendJson(res, 404, {error: `no control endpoint ${path}`});
        }
    } catch (e) {
        sendJson(res, 400, {error: String(e.message || e)});
    }
}

function handler(req, res) {
    readBody(req, Infinity, (body) => {
        const path = req.url.split('?')[0];
        if (path.startsWith('/_control/')) {
            control(req, res, path, body);
        } else if (req.method === 'POST' && req.headers['x-amz-target']) {
            proxy(req, res, body);
        } else if (req.method === 'POST' && path === '/' &&
                   (req.headers['content-type'] || '')
                       .startsWith('application/x-www-form-urlencoded')) {
            sts(res, body);
        } else if (req.method === 'POST' && path === '/') {
            stsError(res, 400, 'InvalidRequest',
                     'expected an STS form or an SQS call (X-Amz-Target)');
        } else {
            sendJson(res, 404, {error: `no route ${req.method} ${path}`});
        }
    });
}

listen(http.createServer(handler), opts);
