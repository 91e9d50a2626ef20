#!/usr/bin/env node
// One fake for the three push providers Herald's push worker talks to, over
// real HTTP/2 with TLS (ALPN h2; HTTP/1.1 accepted too and recorded, so a
// test sees which version a client used): Apple Push Notification service
// (APNs), Firebase Cloud Messaging HTTP v1 (FCM) with its OAuth2 token
// endpoint, and a Web Push service (RFC 8030/8291/8292). Node's built-in
// modules only; the command line from fake_common.js. The rules follow the
// fact sheet ../shared/research/push.md (section 3 APNs, 4 FCM, 5 Web Push).
//
//   node fake_push.js --port N --cert server.pem --key server.key
//                     [--host 127.0.0.1] [--max-streams 1000] [--quiet]
//
// Prints "listening <port>" on stdout once it accepts connections (--port 0
// picks a free port) and runs until killed. Its origin is
// https://127.0.0.1:<port> whatever --host is. --quiet (benchmarks): keep
// only the counters of /_control/summary, no request records.
// --max-streams: the HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS announced
// (APNs-like default 1000).
//
// Every other setting comes at run time through control calls: JSON over
// the same port, any HTTP version, paths under /_control/. Control calls
// are neither recorded nor counted.
//
//   POST /_control/config {"apns": {"public_key_pem" (EC P-256; a private
//        key PEM works too), "team_id", "key_id", "topic",
//        "token_update_min_s" (1200)}, "fcm": {"public_key_pem" (the service
//        account's RSA key), "client_email", "project_id",
//        "token_lifetime_s" (3600)}}: each part optional, replaces that part
//        (null removes it). Answers the config as now in force.
//   GET  /_control/config   that config.
//   POST /_control/script {"provider": "apns"|"fcm"|"webpush"|"token",
//        "token": "<device token | FCM token | subscription id>",
//        "answers": [{answer}, ...]}: the next requests for that token that
//        pass the checks below get these answers in order, the last one
//        repeating ("answers": [] forgets the script). Provider "token"
//        scripts the OAuth2 endpoint (its "token" is ignored). An answer:
//          any provider: "delay_ms" (answer that much later); "headers"
//            (added to the answer); no "status" (or a 2xx one): the
//            default success answer
//          apns: {"status": 410, "reason": "Unregistered", "timestamp": ms}
//            (reason defaults by status; 410 Unregistered gets "timestamp"
//            now when not given)
//          fcm: {"status"?, "error_code": UNREGISTERED | INVALID_ARGUMENT
//            | QUOTA_EXCEEDED | UNAVAILABLE | INTERNAL
//            | THIRD_PARTY_AUTH_ERROR | SENDER_ID_MISMATCH (an FcmError
//            detail; status and google.rpc status from the real mapping) |
//            "rpc_status": UNAUTHENTICATED | INVALID_ARGUMENT (with a
//            google.rpc.BadRequest fieldViolations detail: a payload error)
//            | PERMISSION_DENIED | NOT_FOUND | RESOURCE_EXHAUSTED | INTERNAL
//            | UNAVAILABLE (no detail)}
//          webpush: {"status": 404|410|413|429|400|401|403|...}, body
//            {"code", "error", "message"}
//          token: {"status": 503, "error": "...", "error_description"}
//   POST /_control/reset    forget scripts, records, counters, issued access
//        tokens and Web Push subscriptions (keeps the config; sequence,
//        access-token and message numbers keep counting).
//   POST /_control/webpush/subscribe {} | {"application_server_key": k}
//        answers a browser-style subscription {"endpoint":
//        "https://127.0.0.1:<port>/push/<id>", "expirationTime": null,
//        "keys": {"p256dh": <65-byte uncompressed P-256 key, base64url>,
//        "auth": <16 random bytes, base64url>}}; the fake keeps the private
//        key to decrypt. The id is the endpoint's last segment. With
//        application_server_key the subscription is bound to that VAPID
//        key; else to the first one that is used with it.
//   GET  /_control/requests[?provider=apns|fcm|webpush|token|other]
//        [&token=T][&since=SEQ]: every request so far, oldest first:
//        {seq, provider ("token" = the OAuth2 endpoint), time_ms,
//         http_version ("2.0"|"1.1"), session (one number per TLS
//         connection), method, path, token (device token | FCM token |
//         subscription id | null), headers (as received, pseudo-headers
//         included), body (parsed JSON; a form as an object; text; else
//         null with body_base64), body_length, status, reason (APNs) |
//         error_code (FCM: errorCode, else the google.rpc status; token
//         endpoint: "error"; Web Push: a short word), error (why, in words),
//         auth {ok, error, header, claims, ...} (APNs provider JWT; FCM:
//         the assertion that minted the access token, plus access_token;
//         token endpoint: the assertion; Web Push: the VAPID JWT, plus k),
//         plaintext (Web Push: the decrypted payload as JSON, else text),
//         encryption (Web Push: {rs, salt, as_public, record_length,
//         padding_length})}. Up to 50,000 are kept (then the oldest half
//         is dropped, counted in the summary's records_dropped).
//   GET  /_control/summary {"requests": {provider: n}, "statuses":
//        {provider: {status: n}}, "sessions": distinct connections that
//        made provider requests, "http_versions": {"2.0": n, "1.1": n},
//        "apns_tokens": [{"iat", "kid", "first_ms", "last_ms", "uses",
//        "sessions"} per distinct provider JWT, in order of first use],
//        "fcm_exchanges" (calls of the token endpoint), "fcm_tokens_issued",
//        "fcm_access_tokens_used": {token: uses}, "records_kept",
//        "records_dropped"}; kept in --quiet mode too.
//   POST /_control/disconnect {"reason": "Shutdown"}: close every other
//        connection: HTTP/2 ones get a GOAWAY (NO_ERROR) whose debug data is
//        {"reason": ...} as APNs sends it, in-flight streams finish; HTTP/1.1
//        ones are ended. Answers {"closed": n}.
//   GET  /_control/health   {"ok": true}
//
// APNs  POST /3/device/<token>, checked in this order: path (404 BadPath),
//   POST (405 MethodNotAllowed), token present and hex (400
//   MissingDeviceToken, BadDeviceToken), an apns-* header or authorization
//   twice (400 DuplicateHeaders), "authorization: bearer <JWT>" (403
//   MissingProviderToken; InvalidProviderToken for not a JWT, alg not ES256,
//   kid != key_id, a signature that is not a 64-byte JOSE R||S or does not
//   verify, iss != team_id, iat missing or more than 300 s in the future;
//   ExpiredProviderToken when iat is more than 3600 s old), a new JWT on a
//   connection less than token_update_min_s after the previous new one there
//   (429 TooManyProviderTokenUpdates; the connection keeps its token),
//   apns-topic (400 MissingTopic; BadTopic unless it is the configured topic
//   or that topic with the suffix of the push type, e.g. ".voip"),
//   apns-push-type in Apple's list (400 InvalidPushType), apns-priority
//   10|5|1 and not 10 with push type background (400 BadPriority), apns-id a
//   lower-case UUID (400 BadMessageId), apns-expiration an integer (400
//   BadExpirationDate), apns-collapse-id <= 64 bytes (400 BadCollapseId),
//   body <= 4096 bytes (5120 for voip; 413 PayloadTooLarge), body JSON with
//   an "aps" object (400 PayloadEmpty); then the script; else 200. Every
//   answer has "apns-id" (the request's when valid, else a new UUID); errors
//   have the body {"reason"} (+ "timestamp" for 410 Unregistered).
// FCM  POST /token (OAuth2, form grant_type=urn:ietf:params:oauth:grant-type:
//   jwt-bearer&assertion=<JWT>): 400 unsupported_grant_type, else 400
//   invalid_grant unless the assertion is RS256 verified with the
//   configured key, iss == client_email, aud == https://127.0.0.1:<port>/token
//   (or https://<:authority>/token), scope has
//   https://www.googleapis.com/auth/firebase.messaging, iat and exp numbers
//   with 0 < exp - iat <= 3600, exp not past and iat at most 300 s ahead;
//   then the script; else 200 {"access_token": "ya29.fake-<n>",
//   "expires_in": token_lifetime_s, "token_type": "Bearer"}.
//   POST /v1/projects/<p>/messages:send: bearer an issued, unexpired access
//   token (else 401 UNAUTHENTICATED, no FcmError, with www-authenticate),
//   <p> == project_id (else 403 PERMISSION_DENIED), a JSON body
//   {"message": {...}, "validate_only"?} with known fields only, exactly one
//   of token/topic/condition, data (and android.data) values all strings, no
//   reserved data keys, android.ttl "<n>s" <= 2419200 s, data + notification
//   <= 4096 bytes (else 400 INVALID_ARGUMENT with a google.rpc.BadRequest
//   fieldViolations detail), a non-empty token (else 400 with FcmError
//   INVALID_ARGUMENT); then the script; else 200 {"name":
//   "projects/<p>/messages/<n>"} (validate_only: .../fake_message_id).
//   Other paths: 404 NOT_FOUND.
// Web Push  POST /push/<id>: unknown id 404 (unless scripted), TTL header
//   a non-negative integer (400), Content-Encoding aes128gcm (415),
//   "Authorization: vapid t=<JWT>, k=<key>" (401 when missing, not ES256
//   verified with k, aud not the origin, exp past or more than 24 h away, no
//   sub; 403 when k is not the subscription's key), body <= 4096 bytes
//   (413), body decrypts per RFC 8291 aes128gcm, one record, rs >= 18,
//   keyid the 65-byte application server key, 0x02 delimiter (400); then the
//   script; else 201 with Location and TTL.
// Anything else: 404 {"error"}.
//
// Speed: a provider JWT, an assertion, a VAPID JWT (with its k) is verified
// once and its result cached by its string (only the time checks are redone);
// the keys derived for a Web Push body header are cached per subscription
// (a body with a fresh ephemeral key costs one P-256 ECDH, ~0.1-0.2 ms).
// HTTP/2 streams are served through the core stream API (not the
// compatibility layer).
//
// require('./fake_push') runs nothing and exports decryptAes128gcm for tests.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const http2 = require('http2');
const {parseOptions, send, listen} = require('./fake_common');

const MAX_BODY_KEPT = 1 << 20;    // bytes of a request body kept
const MAX_RECORDS = 50000;
const MAX_CACHE = 20000;          // entries per verification cache
const MAX_TRACKED = 20000;        // apns_tokens, fcm_access_tokens_used
const FUTURE_SKEW_S = 300;

const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX_RE = /^[0-9a-fA-F]+$/;
const INT_RE = /^-?\d+$/;

const APNS_PUSH_TYPES = new Set(['alert', 'background', 'complication',
    'controls', 'fileprovider', 'liveactivity', 'location', 'mdm',
    'pushtotalk', 'voip', 'widgets']);
const APNS_TOPIC_SUFFIX = {
    voip: '.voip', complication: '.complication',
    fileprovider: '.pushkit.fileprovider',
    liveactivity: '.push-type.liveactivity', location: '.location-query',
    pushtotalk: '.voip-ptt', widgets: '.push-type.widgets',
    controls: '.push-type.controls',
};
const APNS_HEADERS = ['authorization', 'apns-id', 'apns-topic',
    'apns-push-type', 'apns-priority', 'apns-expiration', 'apns-collapse-id'];
// The status of every documented reason (an answer may give only a reason).
const APNS_REASON_STATUS = {
    BadCollapseId: 400, BadDeviceToken: 400, BadExpirationDate: 400,
    BadMessageId: 400, BadPriority: 400, BadTopic: 400,
    DeviceTokenNotForTopic: 400, DuplicateHeaders: 400, IdleTimeout: 400,
    InvalidPushType: 400, MissingDeviceToken: 400, MissingTopic: 400,
    PayloadEmpty: 400, TopicDisallowed: 400, BadCertificate: 403,
    BadCertificateEnvironment: 403, ExpiredProviderToken: 403, Forbidden: 403,
    InvalidProviderToken: 403, MissingProviderToken: 403,
    UnrelatedKeyIdInToken: 403, BadEnvironmentKeyIdInToken: 403,
    BadPath: 404, MethodNotAllowed: 405, ExpiredToken: 410,
    Unregistered: 410, PayloadTooLarge: 413,
    TooManyProviderTokenUpdates: 429, TooManyRequests: 429,
    InternalServerError: 500, ServiceUnavailable: 503, Shutdown: 503,
};
const APNS_DEFAULT_REASON = {
    400: 'BadDeviceToken', 403: 'Forbidden', 404: 'BadPath',
    405: 'MethodNotAllowed', 410: 'Unregistered', 413: 'PayloadTooLarge',
    429: 'TooManyRequests', 500: 'InternalServerError',
    503: 'ServiceUnavailable',
};

// errorCode -> [HTTP status, google.rpc status, message]
const FCM_ERRORS = {
    UNREGISTERED: [404, 'NOT_FOUND', 'Requested entity was not found.'],
    INVALID_ARGUMENT: [400, 'INVALID_ARGUMENT',
        'The registration token is not a valid FCM registration token'],
    QUOTA_EXCEEDED: [429, 'RESOURCE_EXHAUSTED',
        'Quota exceeded for quota metric \'Send requests\' and limit ' +
        '\'Send requests per minute\'.'],
    UNAVAILABLE: [503, 'UNAVAILABLE', 'The service is currently unavailable.'],
    INTERNAL: [500, 'INTERNAL', 'Internal error encountered.'],
    THIRD_PARTY_AUTH_ERROR: [401, 'UNAUTHENTICATED',
        'Auth error from APNS or Web Push Service'],
    APNS_AUTH_ERROR: [401, 'UNAUTHENTICATED',
        'Auth error from APNS or Web Push Service'],
    SENDER_ID_MISMATCH: [403, 'PERMISSION_DENIED', 'SenderId mismatch'],
    UNSPECIFIED_ERROR: [500, 'INTERNAL', 'Unspecified error.'],
};
const RPC_STATUS_CODE = {
    INVALID_ARGUMENT: 400, FAILED_PRECONDITION: 400, OUT_OF_RANGE: 400,
    UNAUTHENTICATED: 401, PERMISSION_DENIED: 403, NOT_FOUND: 404,
    ABORTED: 409, ALREADY_EXISTS: 409, RESOURCE_EXHAUSTED: 429,
    CANCELLED: 499, INTERNAL: 500, UNKNOWN: 500, DATA_LOSS: 500,
    UNIMPLEMENTED: 501, UNAVAILABLE: 503, DEADLINE_EXCEEDED: 504,
};
const RPC_STATUS_BY_CODE = {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED',
    403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 409: 'ABORTED',
    429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL',
    501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED'};
const UNAUTHENTICATED_MESSAGE = 'Request had invalid authentication ' +
    'credentials. Expected OAuth 2 access token, login cookie or other ' +
    'valid authentication credential. See https://developers.google.com/' +
    'identity/sign-in/web/devconsole-project.';
const FCM_MESSAGE_FIELDS = new Set(['name', 'data', 'notification',
    'android', 'webpush', 'apns', 'fcm_options', 'fcmOptions', 'token',
    'topic', 'condition']);
const FCM_BODY_FIELDS = new Set(['message', 'validate_only', 'validateOnly']);
const FCM_TTL_MAX_S = 2419200;

const JSON_HEADERS = {'content-type': 'application/json; charset=utf-8'};
const WP_INFO = Buffer.from('WebPush: info\0');
const CEK_INFO = Buffer.from('Content-Encoding: aes128gcm\0');
const NONCE_INFO = Buffer.from('Content-Encoding: nonce\0');
const ONE = Buffer.from([1]);

const utf8Fatal = new TextDecoder('utf-8', {fatal: true});
const noop = () => {};

// ---------------------------------------------------------------------------
// RFC 8291 aes128gcm

function hmac(key, a, b, c, d) {
    const h = crypto.createHmac('sha256', key).update(a);
    if (b)
        h.update(b);
    if (c)
        h.update(c);
    if (d)
        h.update(d);
    return h.digest();
}

// The CEK and NONCE of a body whose 86-byte header is given, for the user
// agent's ECDH object (its private key set), public key and auth secret.
// HKDF-SHA-256 written out (every output fits one HMAC block, so Expand is
// T(1) = HMAC(PRK, info || 0x01)); a few HMACs cost less than hkdfSync.
function deriveWebPushKeys(header, uaEcdh, uaPublic, auth) {
    const salt = header.subarray(0, 16);
    const asPublic = header.subarray(21, 86);
    const ecdhSecret = uaEcdh.computeSecret(asPublic);
    const prkKey = hmac(auth, ecdhSecret);
    const ikm = hmac(prkKey, WP_INFO, uaPublic, asPublic, ONE);
    const prk = hmac(salt, ikm);
    return {cek: hmac(prk, CEK_INFO, ONE).subarray(0, 16),
            nonce: hmac(prk, NONCE_INFO, ONE).subarray(0, 12)};
}

// Decrypt an RFC 8291 Web Push body (RFC 8188 aes128gcm, one record).
// uaPrivate: the user agent's private key (32 bytes) or an ECDH object
// holding it; uaPublic: its 65-byte uncompressed public key; auth: the
// 16-byte secret. keysFor(header) may supply cached keys. Returns
// {plaintext, rs, salt, as_public, record_length, padding_length}; throws an
// Error saying why when the body does not decrypt.
function decryptAes128gcm(body, uaPrivate, uaPublic, auth, keysFor) {
    if (body.length < 21)
        throw new Error('body shorter than the aes128gcm header');
    const rs = body.readUInt32BE(16);
    const idlen = body[20];
    if (idlen !== 65)
        throw new Error(`keyid is ${idlen} bytes, not the 65-byte ` +
                        'application server public key');
    if (body.length < 86 + 17)
        throw new Error('body too short for one record');
    if (rs < 18)
        throw new Error(`record size ${rs} < 18`);
    const record = body.subarray(86);
    if (record.length > rs)
        throw new Error(`${record.length} bytes of records with rs ${rs}: ` +
                        'more than one record (RFC 8291 requires one)');
    const header = body.subarray(0, 86);
    let keys;
    try {
        keys = keysFor ? keysFor(header) : null;
        if (!keys) {
            let ecdh = uaPrivate;
            if (Buffer.isBuffer(uaPrivate)) {
                ecdh = crypto.createECDH('prime256v1');
                ecdh.setPrivateKey(uaPrivate);
            }
            keys = deriveWebPushKeys(header, ecdh, uaPublic, auth);
        }
    } catch (e) {
        throw new Error(`bad application server key: ${e.message}`);
    }
    let pt;
    try {
        const d = crypto.createDecipheriv('aes-128-gcm', keys.cek, keys.nonce);
        d.setAuthTag(record.subarray(record.length - 16));
        pt = Buffer.concat([d.update(record.subarray(0, record.length - 16)),
                            d.final()]);
    } catch (e) {
        throw new Error('AES-128-GCM authentication failed');
    }
    let i = pt.length - 1;
    while (i >= 0 && pt[i] === 0)
        i--;
    if (i < 0)
        throw new Error('no padding delimiter');
    if (pt[i] !== 2)
        throw new Error(`padding delimiter 0x${pt[i].toString(16)
            .padStart(2, '0')}, not 0x02 (last record)`);
    return {plaintext: pt.subarray(0, i), rs,
            salt: header.subarray(0, 16).toString('base64url'),
            as_public: header.subarray(21, 86).toString('base64url'),
            record_length: record.length, padding_length: pt.length - i - 1};
}

// ---------------------------------------------------------------------------
// Small helpers

// {header, claims, input, sig} of a compact JWS with JSON objects, else null.
function parseJwt(s) {
    const a = s.split('.');
    if (a.length !== 3)
        return null;
    let header, claims;
    try {
        header = JSON.parse(Buffer.from(a[0], 'base64url').toString('utf8'));
        claims = JSON.parse(Buffer.from(a[1], 'base64url').toString('utf8'));
    } catch (e) {
        return null;
    }
    if (!header || typeof header !== 'object' || Array.isArray(header) ||
        !claims || typeof claims !== 'object' || Array.isArray(claims))
        return null;
    return {header, claims, input: Buffer.from(`${a[0]}.${a[1]}`),
            sig: Buffer.from(a[2], 'base64url')};
}

function cacheSet(map, key, value) {
    if (map.size >= MAX_CACHE)
        map.clear();
    map.set(key, value);
    return value;
}

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// The body as recorded: parsed JSON, else text, else null + base64.
function recordBody(rec, body) {
    rec.body_length = body.length;
    if (body.length === 0) {
        rec.body = null;
        return;
    }
    let text;
    try {
        text = utf8Fatal.decode(body);
    } catch (e) {
        rec.body = null;
        rec.body_base64 = body.toString('base64');
        return;
    }
    try {
        rec.body = JSON.parse(text);
    } catch (e) {
        rec.body = text;
    }
}

function first(v) {
    return Array.isArray(v) ? v[0] : v;
}

function bump(obj, key) {
    obj[key] = (obj[key] || 0) + 1;
}

// ---------------------------------------------------------------------------
// State

const state = {
    port: 0,
    origin: '',
    quiet: false,
    config: {apns: null, fcm: null},
    apnsKey: null,
    fcmKey: null,
    scripts: new Map(),        // provider + '\0' + token -> {answers, next}
    records: [],
    recordsDropped: 0,
    seq: 0,
    sessionSeq: 0,
    connections: new Set(),    // open HTTP/2 sessions and HTTP/1.1 sockets
    accessSeq: 0,
    messageSeq: 0,
    pushSeq: 0,
    issued: new Map(),         // access token -> {expires_ms, header, claims}
    subs: new Map(),           // subscription id -> subscription
    counters: null,
    // verification caches, cleared with the config
    apnsJwtCache: new Map(),
    assertionCache: new Map(),
    vapidCache: new Map(),
    vapidKeyCache: new Map(),
};

function newCounters() {
    return {requests: {}, statuses: {}, sessions: new Set(),
            http_versions: {}, apnsTokens: new Map(), apnsTokensOver: 0,
            fcm_exchanges: 0, fcm_tokens_issued: 0,
            accessUsed: new Map()};
}
state.counters = newCounters();

function clearCaches() {
    state.apnsJwtCache.clear();
    state.assertionCache.clear();
    state.vapidCache.clear();
}

// ---------------------------------------------------------------------------
// Answering

// ctx: {method, path, headers, version, sid, sst (per-connection state),
//       authority, respond(status, headers, body)}
function finish(ctx, rec, status, headers, body, answer) {
    rec.status = status;
    const c = state.counters;
    const st = c.statuses[rec.provider] || (c.statuses[rec.provider] = {});
    st[status] = (st[status] || 0) + 1;
    let h = headers;
    if (answer && isObject(answer.headers)) {
        h = Object.assign({}, headers);
        for (const [k, v] of Object.entries(answer.headers))
            h[k.toLowerCase()] = String(v);
    }
    const delay = answer ? Number(answer.delay_ms) : 0;
    if (delay > 0)
        setTimeout(() => ctx.respond(status, h, body), delay);
    else
        ctx.respond(status, h, body);
}

function nextAnswer(provider, token) {
    const s = state.scripts.get(`${provider}\0${token}`);
    if (!s)
        return null;
    const a = s.answers[Math.min(s.next, s.answers.length - 1)];
    s.next++;
    return a;
}

// A scripted answer that is the default success (possibly delayed): none,
// no status and no error named, or a 2xx status.
function isSuccess(answer) {
    if (!answer)
        return true;
    if (answer.status === undefined || answer.status === null)
        return !answer.error_code && !answer.rpc_status && !answer.reason &&
            !answer.error;
    return Number(answer.status) >= 200 && Number(answer.status) < 300;
}

// ---------------------------------------------------------------------------
// APNs

function apnsVerifyStatic(jwt) {
    const cfg = state.config.apns;
    const r = {ok: false, reason: 'InvalidProviderToken', error: null,
               header: null, claims: null, iat: null, kid: null};
    const j = parseJwt(jwt);
    if (!j) {
        r.error = 'not a JWT';
        return r;
    }
    r.header = j.header;
    r.claims = j.claims;
    r.kid = j.header.kid ?? null;
    r.iat = j.claims.iat ?? null;
    if (!cfg || !state.apnsKey)
        r.error = 'fake_push has no apns config';
    else if (j.header.alg !== 'ES256')
        r.error = `alg ${j.header.alg} is not ES256`;
    else if (j.header.kid !== cfg.key_id)
        r.error = `kid ${j.header.kid} is not the key id ${cfg.key_id}`;
    else if (j.sig.length !== 64)
        r.error = `signature is ${j.sig.length} bytes, not a 64-byte ` +
            'JOSE R||S';
    else if (!crypto.verify('sha256', j.input,
                            {key: state.apnsKey, dsaEncoding: 'ieee-p1363'},
                            j.sig))
        r.error = 'signature does not verify with the configured key';
    else if (j.claims.iss !== cfg.team_id)
        r.error = `iss ${j.claims.iss} is not the team id ${cfg.team_id}`;
    else if (typeof j.claims.iat !== 'number' ||
             !Number.isFinite(j.claims.iat))
        r.error = 'iat missing or not a number';
    else
        r.ok = true;
    return r;
}

function noteApnsToken(jwt, v, sid, now) {
    const m = state.counters.apnsTokens;
    let e = m.get(jwt);
    if (!e) {
        if (m.size >= MAX_TRACKED) {
            state.counters.apnsTokensOver++;
            return;
        }
        e = {iat: v.iat, kid: v.kid, first_ms: now, last_ms: now, uses: 0,
             sids: new Set()};
        m.set(jwt, e);
    }
    e.last_ms = now;
    e.uses++;
    e.sids.add(sid);
}

function apns(ctx, rec, path, body) {
    const h = ctx.headers;
    const reqId = first(h['apns-id']);
    const apnsId = typeof reqId === 'string' && UUID_RE.test(reqId)
        ? reqId : crypto.randomUUID();
    const idHeader = {'apns-id': apnsId};
    const fail = (status, reason, error, answer, timestamp) => {
        rec.reason = reason;
        if (error)
            rec.error = error;
        const b = timestamp === undefined ? {reason} : {reason, timestamp};
        finish(ctx, rec, status, idHeader, JSON.stringify(b), answer);
    };

    if (!path.startsWith('/3/device/'))
        return fail(404, 'BadPath', null);
    const token = path.slice(10);
    rec.token = token;
    if (ctx.method !== 'POST')
        return fail(405, 'MethodNotAllowed', null);
    if (token === '')
        return fail(400, 'MissingDeviceToken', null);
    if (!HEX_RE.test(token))
        return fail(400, 'BadDeviceToken', 'device token is not hex');
    for (const name of APNS_HEADERS)
        if (Array.isArray(h[name]))
            return fail(400, 'DuplicateHeaders', `${name} repeated`);

    // Provider token.
    const now = Date.now();
    const authz = h.authorization;
    if (typeof authz !== 'string' || authz.trim() === '') {
        rec.auth = {ok: false, error: 'no authorization header',
                    header: null, claims: null};
        return fail(403, 'MissingProviderToken', null);
    }
    const bm = /^bearer\s+(\S+)\s*$/i.exec(authz);
    if (!bm) {
        rec.auth = {ok: false, error: 'authorization is not "bearer <JWT>"',
                    header: null, claims: null};
        return fail(403, 'InvalidProviderToken', null);
    }
    const jwt = bm[1];
    const v = state.apnsJwtCache.get(jwt) ||
        cacheSet(state.apnsJwtCache, jwt, apnsVerifyStatic(jwt));
    noteApnsToken(jwt, v, ctx.sid, now);
    let ok = v.ok, reason = v.reason, error = v.error;
    if (ok) {
        const age = now / 1000 - v.iat;
        if (age > 3600) {
            ok = false;
            reason = 'ExpiredProviderToken';
            error = `iat is ${Math.floor(age)} s old (> 3600)`;
        } else if (age < -FUTURE_SKEW_S) {
            ok = false;
            reason = 'InvalidProviderToken';
            error = `iat is ${Math.floor(-age)} s in the future`;
        }
    }
    if (!state.quiet)
        rec.auth = {ok, error, header: v.header, claims: v.claims};
    if (!ok)
        return fail(403, reason, error);
    const sst = ctx.sst;
    if (sst.apnsJwt !== jwt) {
        const minMs = (state.config.apns.token_update_min_s ?? 1200) * 1000;
        if (sst.apnsJwt !== null && now - sst.apnsNewMs < minMs)
            return fail(429, 'TooManyProviderTokenUpdates',
                        `new provider token ${now - sst.apnsNewMs} ms after ` +
                        'the previous one on this connection');
        sst.apnsJwt = jwt;
        sst.apnsNewMs = now;
    }

    // Headers.
    const cfg = state.config.apns;
    const topic = h['apns-topic'];
    const pushType = h['apns-push-type'];
    if (typeof topic !== 'string' || topic === '')
        return fail(400, 'MissingTopic', null);
    if (pushType !== undefined && !APNS_PUSH_TYPES.has(pushType))
        return fail(400, 'InvalidPushType', `apns-push-type ${pushType}`);
    if (cfg.topic && topic !== cfg.topic &&
        !(pushType && APNS_TOPIC_SUFFIX[pushType] &&
          topic === cfg.topic + APNS_TOPIC_SUFFIX[pushType]))
        return fail(400, 'BadTopic', `apns-topic ${topic}`);
    const prio = h['apns-priority'];
    if (prio !== undefined && prio !== '10' && prio !== '5' && prio !== '1')
        return fail(400, 'BadPriority', `apns-priority ${prio}`);
    if (prio === '10' && pushType === 'background')
        return fail(400, 'BadPriority', 'background push with priority 10');
    if (reqId !== undefined && !UUID_RE.test(reqId))
        return fail(400, 'BadMessageId', `apns-id ${reqId}`);
    const exp = h['apns-expiration'];
    if (exp !== undefined && !INT_RE.test(exp))
        return fail(400, 'BadExpirationDate', `apns-expiration ${exp}`);
    const collapse = h['apns-collapse-id'];
    if (collapse !== undefined && Buffer.byteLength(collapse) > 64)
        return fail(400, 'BadCollapseId', 'apns-collapse-id over 64 bytes');

    // Payload.
    const max = pushType === 'voip' ? 5120 : 4096;
    if (ctx.bodySize > max)
        return fail(413, 'PayloadTooLarge', `${ctx.bodySize} bytes > ${max}`);
    if (body.length === 0)
        return fail(400, 'PayloadEmpty', 'empty body');
    let payload;
    try {
        payload = JSON.parse(body.toString('utf8'));
    } catch (e) {
        if (!state.quiet)
            recordBody(rec, body);
        return fail(400, 'PayloadEmpty', 'body is not JSON');
    }
    if (!state.quiet) {
        rec.body = payload;
        rec.body_length = body.length;
    }
    if (!isObject(payload) || !isObject(payload.aps))
        return fail(400, 'PayloadEmpty', 'no "aps" object');

    const answer = nextAnswer('apns', token);
    if (!isSuccess(answer)) {
        const status = answer.status !== undefined && answer.status !== null
            ? Number(answer.status)
            : APNS_REASON_STATUS[answer.reason] || 400;
        const reason = answer.reason || APNS_DEFAULT_REASON[status] ||
            'InternalServerError';
        const ts = answer.timestamp !== undefined ? answer.timestamp
            : status === 410 && reason === 'Unregistered' ? now : undefined;
        return fail(status, reason, 'scripted', answer, ts);
    }
    finish(ctx, rec, 200, idHeader, null, answer);
}

// ---------------------------------------------------------------------------
// FCM: OAuth2 token endpoint

function assertionStatic(assertion) {
    const cfg = state.config.fcm;
    const r = {ok: false, error: null, header: null, claims: null};
    const j = parseJwt(assertion);
    if (!j) {
        r.error = 'Invalid JWT: assertion is not a JWT';
        return r;
    }
    r.header = j.header;
    r.claims = j.claims;
    const c = j.claims;
    if (!cfg || !state.fcmKey)
        r.error = 'fake_push has no fcm config';
    else if (j.header.alg !== 'RS256')
        r.error = `Invalid JWT: alg ${j.header.alg} is not RS256`;
    else if (!crypto.verify('sha256', j.input, state.fcmKey, j.sig))
        r.error = 'Invalid JWT Signature.';
    else if (c.iss !== cfg.client_email)
        r.error = 'Invalid grant: account not found';
    else if (typeof c.scope !== 'string' ||
             !c.scope.split(/\s+/).includes(FCM_SCOPE))
        r.error = `Invalid OAuth scope: scope must include ${FCM_SCOPE}`;
    else if (typeof c.iat !== 'number' || typeof c.exp !== 'number')
        r.error = 'Invalid JWT: iat and exp must be numbers';
    else if (c.exp - c.iat > 3600 || c.exp <= c.iat)
        r.error = 'Invalid JWT: Token must be a short-lived token (60 ' +
            'minutes) and in a reasonable timeframe. Check your iat and ' +
            'exp values in the JWT claim.';
    else
        r.ok = true;
    return r;
}

function tokenEndpoint(ctx, rec, body) {
    const fail = (status, error, description, answer) => {
        rec.error_code = error;
        rec.error = description;
        finish(ctx, rec, status, JSON_HEADERS,
               JSON.stringify({error, error_description: description}),
               answer);
    };
    state.counters.fcm_exchanges++;
    const form = new URLSearchParams(body.toString('utf8'));
    if (!state.quiet) {
        rec.body = Object.fromEntries(form);
        rec.body_length = body.length;
    }
    if (ctx.method !== 'POST')
        return fail(405, 'invalid_request', 'POST required');
    const grant = form.get('grant_type');
    if (grant !== JWT_BEARER)
        return fail(400, 'unsupported_grant_type',
                    `Invalid grant_type: ${grant ?? ''}`);
    const assertion = form.get('assertion') || '';
    const v = state.assertionCache.get(assertion) ||
        cacheSet(state.assertionCache, assertion, assertionStatic(assertion));
    let ok = v.ok, error = v.error;
    const now = Date.now();
    if (ok) {
        const c = v.claims;
        const auds = [`${state.origin}/token`, `https://${ctx.authority}/token`];
        if (!auds.includes(c.aud)) {
            ok = false;
            error = `Invalid JWT: aud ${c.aud} is not ${auds[0]}`;
        } else if (c.exp * 1000 <= now) {
            ok = false;
            error = 'Invalid JWT: Token must be a short-lived token (60 ' +
                'minutes) and in a reasonable timeframe. Check your iat ' +
                'and exp values in the JWT claim. (exp is past)';
        } else if (c.iat > now / 1000 + FUTURE_SKEW_S) {
            ok = false;
            error = 'Invalid JWT: Token must be a short-lived token (60 ' +
                'minutes) and in a reasonable timeframe. Check your iat ' +
                'and exp values in the JWT claim. (iat is in the future)';
        }
    }
    rec.auth = {ok, error, header: v.header, claims: v.claims};
    if (!ok)
        return fail(400, 'invalid_grant', error);
    const answer = nextAnswer('token', '*');
    if (!isSuccess(answer))
        return fail(Number(answer.status) || 400,
                    answer.error || 'internal_failure',
                    answer.error_description || 'scripted', answer);
    const lifetime = state.config.fcm.token_lifetime_s ?? 3600;
    const accessToken = `ya29.fake-${++state.accessSeq}`;
    state.issued.set(accessToken, {expires_ms: now + lifetime * 1000,
                                   header: v.header, claims: v.claims});
    state.counters.fcm_tokens_issued++;
    rec.access_token = accessToken;
    finish(ctx, rec, 200, JSON_HEADERS,
           JSON.stringify({access_token: accessToken, expires_in: lifetime,
                           token_type: 'Bearer'}), answer);
}

// ---------------------------------------------------------------------------
// FCM: messages:send

function fcmFail(ctx, rec, status, rpcStatus, message, details, answer,
                 headers) {
    rec.error = message;
    if (!rec.error_code)
        rec.error_code = rpcStatus;
    const err = {code: status, message, status: rpcStatus};
    if (details)
        err.details = details;
    finish(ctx, rec, status, headers || JSON_HEADERS,
           JSON.stringify({error: err}), answer);
}

function badRequest(ctx, rec, field, description, answer) {
    fcmFail(ctx, rec, 400, 'INVALID_ARGUMENT', description,
            [{'@type': 'type.googleapis.com/google.rpc.BadRequest',
              fieldViolations: [{field, description}]}], answer);
}

function fcmErrorCode(ctx, rec, code, answer) {
    const e = FCM_ERRORS[code] || [500, 'INTERNAL', `${code}`];
    const status = answer && answer.status !== undefined &&
        answer.status !== null ? Number(answer.status) : e[0];
    rec.error_code = code;
    fcmFail(ctx, rec, status, RPC_STATUS_BY_CODE[status] || e[1], e[2],
            [{'@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError',
              errorCode: code}], answer);
}

// null when the message is acceptable, else [field, description].
function fcmCheckPayload(b) {
    if (!isObject(b))
        return ['', 'Invalid JSON payload received. Expected an object.'];
    for (const k of Object.keys(b))
        if (!FCM_BODY_FIELDS.has(k))
            return [k, `Invalid JSON payload received. Unknown name "${k}": ` +
                    'Cannot find field.'];
    const m = b.message;
    if (!isObject(m))
        return ['message', 'Missing required field: message'];
    for (const k of Object.keys(m))
        if (!FCM_MESSAGE_FIELDS.has(k))
            return ['message', 'Invalid JSON payload received. Unknown name ' +
                    `"${k}" at 'message': Cannot find field.`];
    const targets = ['token', 'topic', 'condition'].filter(k => k in m);
    if (targets.length !== 1)
        return ['message', targets.length === 0
            ? 'Recipient of the message is not set.'
            : 'Exactly one of token, topic or condition must be set.'];
    for (const k of targets)
        if (typeof m[k] !== 'string')
            return [`message.${k}`, `Invalid value at 'message.${k}' ` +
                    '(TYPE_STRING)'];
    let size = 0;
    const checkData = (data, where) => {
        if (!isObject(data))
            return [where, `Invalid value at '${where}' (type.googleapis.com/` +
                    'google.firebase.fcm.v1.Message.DataEntry), expected a map'];
        let i = 0;
        for (const [k, v] of Object.entries(data)) {
            if (typeof v !== 'string')
                return [`${where}[${i}].value`, `Invalid value at ` +
                        `'${where}[${i}].value' (TYPE_STRING), ` +
                        JSON.stringify(v)];
            if (k === 'from' || k === 'message_type' ||
                /^(google|gcm)/i.test(k))
                return [where, `Invalid data payload key: ${k}`];
            size += Buffer.byteLength(k) + Buffer.byteLength(v);
            i++;
        }
        return null;
    };
    if (m.data !== undefined) {
        const e = checkData(m.data, 'message.data');
        if (e)
            return e;
    }
    if (m.notification !== undefined) {
        if (!isObject(m.notification))
            return ['message.notification',
                    "Invalid value at 'message.notification'"];
        for (const k of ['title', 'body', 'image']) {
            const v = m.notification[k];
            if (v === undefined)
                continue;
            if (typeof v !== 'string')
                return [`message.notification.${k}`, 'Invalid value at ' +
                        `'message.notification.${k}' (TYPE_STRING)`];
            size += Buffer.byteLength(v);
        }
    }
    for (const k of ['android', 'apns', 'webpush', 'fcm_options',
                     'fcmOptions'])
        if (m[k] !== undefined && !isObject(m[k]))
            return [`message.${k}`, `Invalid value at 'message.${k}'`];
    if (m.android) {
        const a = m.android;
        if (a.ttl !== undefined) {
            const t = /^(\d+)(\.\d{1,9})?s$/.exec(String(a.ttl));
            if (!t || Number(t[1]) > FCM_TTL_MAX_S)
                return ['message.android.ttl', `Invalid value at ` +
                        `'message.android.ttl' (${a.ttl}): a duration ` +
                        `"<seconds>s" of at most ${FCM_TTL_MAX_S}s`];
        }
        if (a.priority !== undefined &&
            !['NORMAL', 'HIGH', 'normal', 'high'].includes(a.priority))
            return ['message.android.priority', 'Invalid value at ' +
                    `'message.android.priority' (${a.priority})`];
        if (a.data !== undefined) {
            const e = checkData(a.data, 'message.android.data');
            if (e)
                return e;
        }
    }
    if (m.apns && m.apns.headers !== undefined) {
        if (!isObject(m.apns.headers))
            return ['message.apns.headers',
                    "Invalid value at 'message.apns.headers'"];
        for (const [k, v] of Object.entries(m.apns.headers))
            if (typeof v !== 'string')
                return [`message.apns.headers[${k}]`,
                        `Invalid value at 'message.apns.headers[${k}]' ` +
                        '(TYPE_STRING)'];
    }
    if (m.apns && m.apns.payload !== undefined && !isObject(m.apns.payload))
        return ['message.apns.payload',
                "Invalid value at 'message.apns.payload'"];
    if (size > 4096)
        return ['message', `Message is too big: ${size} bytes of data and ` +
                'notification (limit 4096)'];
    return null;
}

function fcm(ctx, rec, path, body) {
    const pm = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path);
    if (!pm || ctx.method !== 'POST')
        return fcmFail(ctx, rec, 404, 'NOT_FOUND',
                       `No ${ctx.method} ${path} in this fake`, null);
    let b;
    try {
        b = JSON.parse(body.toString('utf8'));
    } catch (e) {
        b = undefined;
    }
    if (!state.quiet) {
        if (b === undefined)
            recordBody(rec, body);
        else {
            rec.body = b;
            rec.body_length = body.length;
        }
    }
    if (isObject(b) && isObject(b.message) &&
        typeof b.message.token === 'string')
        rec.token = b.message.token;

    // Access token.
    const authz = first(ctx.headers.authorization);
    const bm = typeof authz === 'string' ? /^bearer\s+(\S+)\s*$/i.exec(authz)
        : null;
    const now = Date.now();
    let authError = null, issued = null;
    if (!bm) {
        authError = authz === undefined ? 'no authorization header'
            : 'authorization is not "Bearer <token>"';
    } else {
        const used = state.counters.accessUsed;
        if (used.has(bm[1]) || used.size < MAX_TRACKED)
            used.set(bm[1], (used.get(bm[1]) || 0) + 1);
        issued = state.issued.get(bm[1]);
        if (!issued)
            authError = 'access token not issued by this fake (or reset)';
        else if (issued.expires_ms <= now)
            authError = `access token expired ${now - issued.expires_ms} ms ago`;
    }
    if (!state.quiet)
        rec.auth = {ok: authError === null, error: authError,
                    header: issued ? issued.header : null,
                    claims: issued ? issued.claims : null,
                    access_token: bm ? bm[1] : null};
    if (authError) {
        rec.error_code = 'UNAUTHENTICATED';
        return fcmFail(ctx, rec, 401, 'UNAUTHENTICATED',
                       UNAUTHENTICATED_MESSAGE, null, null,
                       {'content-type': JSON_HEADERS['content-type'],
                        'www-authenticate':
                            'Bearer realm="https://accounts.google.com/"'});
    }
    const project = pm[1];
    if (project !== state.config.fcm.project_id)
        return fcmFail(ctx, rec, 403, 'PERMISSION_DENIED',
                       "Permission 'cloudmessaging.messages.create' denied " +
                       "on resource '//cloudresourcemanager.googleapis.com/" +
                       `projects/${project}' (or it may not exist).`, null);
    if (b === undefined)
        return badRequest(ctx, rec, '', 'Invalid JSON payload received. ' +
                          'Unexpected token.');
    const bad = fcmCheckPayload(b);
    if (bad)
        return badRequest(ctx, rec, bad[0], bad[1]);
    const m = b.message;
    if ('token' in m && m.token === '')
        return fcmErrorCode(ctx, rec, 'INVALID_ARGUMENT', null);

    const target = m.token ?? m.topic ?? m.condition;
    const answer = nextAnswer('fcm', target);
    if (!isSuccess(answer)) {
        if (answer.error_code)
            return fcmErrorCode(ctx, rec, String(answer.error_code), answer);
        const rpc = answer.rpc_status ? String(answer.rpc_status)
            : RPC_STATUS_BY_CODE[Number(answer.status)] || 'UNKNOWN';
        const status = answer.status !== undefined && answer.status !== null
            ? Number(answer.status) : RPC_STATUS_CODE[rpc] || 500;
        rec.error_code = rpc;
        if (rpc === 'INVALID_ARGUMENT')
            return fcmFail(ctx, rec, status, rpc,
                           'Invalid value at \'message\' (scripted)',
                           [{'@type':
                                 'type.googleapis.com/google.rpc.BadRequest',
                             fieldViolations: [{field: 'message',
                                 description: 'Invalid value at ' +
                                     '\'message\' (scripted)'}]}], answer);
        return fcmFail(ctx, rec, status, rpc,
                       rpc === 'UNAUTHENTICATED' ? UNAUTHENTICATED_MESSAGE
                           : `${rpc} (scripted)`, null, answer);
    }
    const validateOnly = b.validate_only === true || b.validateOnly === true;
    const name = `projects/${project}/messages/` +
        (validateOnly ? 'fake_message_id' : `${++state.messageSeq}`);
    finish(ctx, rec, 200, JSON_HEADERS, JSON.stringify({name}), answer);
}

// ---------------------------------------------------------------------------
// Web Push

function vapidKey(k) {
    let key = state.vapidKeyCache.get(k);
    if (key !== undefined)
        return key;
    key = null;
    const raw = Buffer.from(k, 'base64url');
    if (raw.length === 65 && raw[0] === 4) {
        try {
            key = crypto.createPublicKey({format: 'jwk', key: {
                kty: 'EC', crv: 'P-256',
                x: raw.subarray(1, 33).toString('base64url'),
                y: raw.subarray(33, 65).toString('base64url')}});
        } catch (e) {
            key = null;
        }
    }
    return cacheSet(state.vapidKeyCache, k, key);
}

function vapidStatic(t, k) {
    const r = {ok: false, error: null, header: null, claims: null};
    const key = vapidKey(k);
    const j = parseJwt(t);
    if (j) {
        r.header = j.header;
        r.claims = j.claims;
    }
    if (!key)
        r.error = 'k is not a 65-byte uncompressed P-256 public key';
    else if (!j)
        r.error = 't is not a JWT';
    else if (j.header.alg !== 'ES256')
        r.error = `alg ${j.header.alg} is not ES256`;
    else if (j.sig.length !== 64)
        r.error = `signature is ${j.sig.length} bytes, not a 64-byte ` +
            'JOSE R||S';
    else if (!crypto.verify('sha256', j.input,
                            {key, dsaEncoding: 'ieee-p1363'}, j.sig))
        r.error = 'signature does not verify with k';
    else if (typeof j.claims.aud !== 'string')
        r.error = 'aud missing';
    else if (typeof j.claims.exp !== 'number')
        r.error = 'exp missing or not a number';
    else if (typeof j.claims.sub !== 'string' || j.claims.sub === '')
        r.error = 'sub missing';
    else
        r.ok = true;
    return r;
}

function webpushKeysFor(sub) {
    return (header) => {
        const key = header.toString('latin1');
        let keys = sub.keyCache.get(key);
        if (!keys) {
            keys = deriveWebPushKeys(header, sub.ecdh, sub.pub, sub.auth);
            if (sub.keyCache.size >= 4096)
                sub.keyCache.clear();
            sub.keyCache.set(key, keys);
        }
        return keys;
    };
}

function webpush(ctx, rec, path, body) {
    const fail = (status, word, error, answer, headers) => {
        rec.error_code = word;
        rec.error = error;
        const text = http.STATUS_CODES[status] || 'Error';
        finish(ctx, rec, status, headers || JSON_HEADERS,
               JSON.stringify({code: status, error: text, message: error}),
               answer);
    };
    const id = path.slice(6);
    rec.token = id;
    if (!state.quiet) {
        rec.body = null;
        rec.body_length = body.length;
    }
    if (ctx.method !== 'POST')
        return fail(405, 'method', 'POST required');
    const sub = state.subs.get(id);
    const scripted = state.scripts.has(`webpush\0${id}`);
    if (!sub && !scripted)
        return fail(404, 'unknown', 'no such subscription');
    const h = ctx.headers;
    const ttl = first(h.ttl);
    if (ttl === undefined)
        return fail(400, 'ttl', 'TTL header missing');
    if (!/^\d+$/.test(ttl))
        return fail(400, 'ttl', `TTL ${ttl} is not a non-negative integer`);
    const ce = first(h['content-encoding']);
    if (ce !== 'aes128gcm')
        return fail(415, 'encoding',
                    `Content-Encoding ${ce ?? '(none)'} is not aes128gcm`);

    // VAPID.
    const authz = first(h.authorization);
    const am = typeof authz === 'string'
        ? /^vapid\s+(.*)$/i.exec(authz.trim()) : null;
    let t, k;
    if (am) {
        for (const part of am[1].split(',')) {
            const kv = /^\s*([a-zA-Z]+)\s*=\s*"?([^"\s]*)"?\s*$/.exec(part);
            if (kv && kv[1].toLowerCase() === 't')
                t = kv[2];
            else if (kv && kv[1].toLowerCase() === 'k')
                k = kv[2];
        }
    }
    if (!t || !k) {
        rec.auth = {ok: false, error: authz === undefined
            ? 'no authorization header'
            : 'authorization is not "vapid t=<JWT>, k=<key>"',
                    header: null, claims: null, k: k ?? null};
        return fail(401, 'vapid', rec.auth.error, null,
                    {'content-type': JSON_HEADERS['content-type'],
                     'www-authenticate': 'vapid'});
    }
    const ck = `${k} ${t}`;
    const v = state.vapidCache.get(ck) ||
        cacheSet(state.vapidCache, ck, vapidStatic(t, k));
    let ok = v.ok, error = v.error;
    if (ok) {
        const c = v.claims;
        const now = Date.now() / 1000;
        if (c.aud !== state.origin && c.aud !== `https://${ctx.authority}`) {
            ok = false;
            error = `aud ${c.aud} is not ${state.origin}`;
        } else if (c.exp <= now) {
            ok = false;
            error = 'exp is past';
        } else if (c.exp - now > 86400) {
            ok = false;
            error = `exp is ${Math.round(c.exp - now)} s away (> 24 h)`;
        }
    }
    if (!state.quiet)
        rec.auth = {ok, error, header: v.header, claims: v.claims, k};
    if (!ok)
        return fail(401, 'vapid', error, null,
                    {'content-type': JSON_HEADERS['content-type'],
                     'www-authenticate': 'vapid'});
    if (sub) {
        if (sub.boundKey === null)
            sub.boundKey = k;
        else if (sub.boundKey !== k)
            return fail(403, 'vapid-key', 'k is not the key this ' +
                        'subscription is bound to');
    }

    if (ctx.bodySize > 4096)
        return fail(413, 'size', `${ctx.bodySize} bytes > 4096`);
    if (sub) {
        let r;
        try {
            r = decryptAes128gcm(body, sub.ecdh, sub.pub, sub.auth,
                                 webpushKeysFor(sub));
        } catch (e) {
            return fail(400, 'decrypt', e.message);
        }
        if (!state.quiet) {
            const text = r.plaintext.toString('utf8');
            try {
                rec.plaintext = JSON.parse(text);
            } catch (e) {
                rec.plaintext = text;
            }
            rec.encryption = {rs: r.rs, salt: r.salt, as_public: r.as_public,
                              record_length: r.record_length,
                              padding_length: r.padding_length};
        }
    }
    const answer = nextAnswer('webpush', id);
    if (!isSuccess(answer))
        return fail(Number(answer.status) || 400, 'scripted', 'scripted',
                    answer);
    finish(ctx, rec, answer && answer.status ? Number(answer.status) : 201,
           {location: `${state.origin}/m/${id}.${++state.pushSeq}`, ttl},
           null, answer);
}

// ---------------------------------------------------------------------------
// Control

function configPart(part, cfg) {
    if (cfg === null)
        return {cfg: null, key: null};
    if (!isObject(cfg))
        throw new Error(`"${part}" must be an object or null`);
    let key = null;
    if (cfg.public_key_pem !== undefined) {
        try {
            key = crypto.createPublicKey(String(cfg.public_key_pem));
        } catch (e) {
            throw new Error(`${part}.public_key_pem: ${e.message}`);
        }
        if (part === 'apns' && (key.asymmetricKeyType !== 'ec' ||
            key.asymmetricKeyDetails.namedCurve !== 'prime256v1'))
            throw new Error('apns.public_key_pem must be an EC P-256 key');
        if (part === 'fcm' && key.asymmetricKeyType !== 'rsa')
            throw new Error('fcm.public_key_pem must be an RSA key');
    }
    const out = Object.assign({}, cfg);
    if (part === 'apns') {
        out.token_update_min_s = Number(cfg.token_update_min_s ?? 1200);
        if (!Number.isFinite(out.token_update_min_s) ||
            out.token_update_min_s < 0)
            throw new Error('apns.token_update_min_s must be >= 0');
    } else {
        out.token_lifetime_s = Number(cfg.token_lifetime_s ?? 3600);
        if (!Number.isFinite(out.token_lifetime_s) ||
            out.token_lifetime_s < 0)
            throw new Error('fcm.token_lifetime_s must be >= 0');
    }
    return {cfg: out, key};
}

function summary() {
    const c = state.counters;
    const apnsTokens = [];
    for (const e of c.apnsTokens.values())
        apnsTokens.push({iat: e.iat, kid: e.kid, first_ms: e.first_ms,
                         last_ms: e.last_ms, uses: e.uses,
                         sessions: e.sids.size});
    return {requests: c.requests, statuses: c.statuses,
            sessions: c.sessions.size, http_versions: c.http_versions,
            apns_tokens: apnsTokens,
            apns_tokens_untracked: c.apnsTokensOver,
            fcm_exchanges: c.fcm_exchanges,
            fcm_tokens_issued: c.fcm_tokens_issued,
            fcm_access_tokens_used: Object.fromEntries(c.accessUsed),
            records_kept: state.records.length,
            records_dropped: state.recordsDropped};
}

function subscribe(opts) {
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    let id;
    do
        id = crypto.randomBytes(12).toString('base64url');
    while (state.subs.has(id));
    let bound = null;
    if (opts.application_server_key !== undefined) {
        bound = String(opts.application_server_key);
        if (!vapidKey(bound))
            throw new Error('application_server_key is not a base64url ' +
                            '65-byte uncompressed P-256 public key');
    }
    const sub = {id, ecdh, pub: ecdh.getPublicKey(),
                 auth: crypto.randomBytes(16), boundKey: bound,
                 keyCache: new Map()};
    state.subs.set(id, sub);
    return {endpoint: `${state.origin}/push/${id}`, expirationTime: null,
            keys: {p256dh: sub.pub.toString('base64url'),
                   auth: sub.auth.toString('base64url')}};
}

function publicConfig() {
    const out = {};
    for (const part of ['apns', 'fcm'])
        out[part] = state.config[part];
    return out;
}

function control(ctx, path, query, body) {
    const reply = (status, obj) => ctx.respond(status, JSON_HEADERS,
                                               JSON.stringify(obj));
    try {
        const json = () => {
            const text = body.toString('utf8').trim();
            const v = text === '' ? {} : JSON.parse(text);
            if (!isObject(v))
                throw new Error('the body must be a JSON object');
            return v;
        };
        const m = ctx.method;
        if (path === '/_control/health') {
            reply(200, {ok: true});
        } else if (path === '/_control/config' && m === 'GET') {
            reply(200, publicConfig());
        } else if (path === '/_control/config' && m === 'POST') {
            const c = json();
            const next = {};
            for (const part of ['apns', 'fcm'])
                if (c[part] !== undefined)
                    next[part] = configPart(part, c[part]);
            for (const part of Object.keys(c))
                if (part !== 'apns' && part !== 'fcm')
                    throw new Error(`unknown config part "${part}"`);
            for (const [part, v] of Object.entries(next)) {
                state.config[part] = v.cfg;
                state[`${part}Key`] = v.key;
            }
            clearCaches();
            reply(200, publicConfig());
        } else if (path === '/_control/script' && m === 'POST') {
            const s = json();
            const provider = s.provider;
            if (!['apns', 'fcm', 'webpush', 'token'].includes(provider))
                throw new Error('"provider" must be apns, fcm, webpush or ' +
                                'token');
            const token = provider === 'token' ? '*' : s.token;
            if (typeof token !== 'string')
                throw new Error('"token" must be a string');
            if (!Array.isArray(s.answers) || !s.answers.every(isObject))
                throw new Error('"answers" must be an array of objects');
            const key = `${provider}\0${token}`;
            if (s.answers.length === 0)
                state.scripts.delete(key);
            else
                state.scripts.set(key, {answers: s.answers, next: 0});
            reply(200, {ok: true});
        } else if (path === '/_control/reset' && m === 'POST') {
            state.scripts.clear();
            state.records = [];
            state.recordsDropped = 0;
            state.issued.clear();
            state.subs.clear();
            state.counters = newCounters();
            reply(200, {ok: true});
        } else if (path === '/_control/webpush/subscribe' && m === 'POST') {
            reply(200, subscribe(json()));
        } else if (path === '/_control/requests' && m === 'GET') {
            const q = new URLSearchParams(query);
            const provider = q.get('provider');
            const token = q.get('token');
            const since = Number(q.get('since') ?? -1);
            reply(200, state.records.filter(r =>
                (provider === null || r.provider === provider) &&
                (token === null || r.token === token) && r.seq > since));
        } else if (path === '/_control/disconnect' && m === 'POST') {
            const reason = String(json().reason ?? 'Shutdown');
            let closed = 0;
            for (const conn of state.connections) {
                if (conn[SID] === ctx.sid)
                    continue;
                closed++;
                state.connections.delete(conn);
                try {
                    if (typeof conn.goaway === 'function') {
                        conn.goaway(http2.constants.NGHTTP2_NO_ERROR,
                                    undefined,
                                    Buffer.from(JSON.stringify({reason})));
                        conn.close();
                    } else {
                        conn.end();
                    }
                } catch (e) {
                    // Already closing.
                }
            }
            reply(200, {closed});
        } else if (path === '/_control/summary' && m === 'GET') {
            reply(200, summary());
        } else {
            reply(404, {error: `no control endpoint ${m} ${path}`});
        }
    } catch (e) {
        reply(400, {error: String(e.message || e)});
    }
}

// ---------------------------------------------------------------------------
// Dispatch

function dispatch(ctx, body) {
    const full = ctx.path || '/';
    const q = full.indexOf('?');
    const path = q < 0 ? full : full.slice(0, q);
    if (path.startsWith('/_control/'))
        return control(ctx, path, q < 0 ? '' : full.slice(q + 1), body);

    let provider = 'other';
    if (path.startsWith('/3/'))
        provider = 'apns';
    else if (path.startsWith('/v1/'))
        provider = 'fcm';
    else if (path.startsWith('/push/'))
        provider = 'webpush';
    else if (path === '/token')
        provider = 'token';

    const c = state.counters;
    bump(c.requests, provider);
    bump(c.http_versions, ctx.version);
    c.sessions.add(ctx.sid);
    const rec = {seq: ++state.seq, provider, time_ms: Date.now(),
                 http_version: ctx.version, session: ctx.sid,
                 method: ctx.method, path: full, token: null, headers: null,
                 body: null, status: null};
    if (!state.quiet) {
        rec.headers = ctx.headers;
        state.records.push(rec);
        if (state.records.length > MAX_RECORDS) {
            const drop = MAX_RECORDS / 2;
            state.records.splice(0, drop);
            state.recordsDropped += drop;
        }
    }
    try {
        if (provider === 'apns')
            apns(ctx, rec, path, body);
        else if (provider === 'fcm')
            fcm(ctx, rec, path, body);
        else if (provider === 'webpush')
            webpush(ctx, rec, path, body);
        else if (provider === 'token')
            tokenEndpoint(ctx, rec, body);
        else {
            if (!state.quiet)
                recordBody(rec, body);
            finish(ctx, rec, 404, JSON_HEADERS,
                   JSON.stringify({error: `no route ${ctx.method} ${path}`}));
        }
    } catch (e) {
        process.stderr.write(`fake_push: ${e.stack || e}\n`);
        rec.error = String(e.message || e);
        finish(ctx, rec, 500, JSON_HEADERS,
               JSON.stringify({error: rec.error}));
    }
}

function newSessionState() {
    return {apnsJwt: null, apnsNewMs: 0};
}

const SID = Symbol('sid');
const SST = Symbol('sessionState');

function respondH2(stream, status, headers, body) {
    if (stream.destroyed || stream.closed || stream.headersSent)
        return;
    const h = Object.assign({':status': status}, headers);
    try {
        if (body === null || body === undefined) {
            stream.respond(h, {endStream: true});
        } else {
            stream.respond(h);
            stream.end(body);
        }
    } catch (e) {
        // A bad scripted header, or the client went away.
        try {
            if (!stream.headersSent)
                stream.respond({':status': status}, {endStream: true});
        } catch (e2) {
            // Nothing to answer.
        }
    }
}

function onStream(stream, headers) {
    const session = stream.session;
    const chunks = [];
    let size = 0;
    stream.on('error', noop);
    stream.on('data', (chunk) => {
        size += chunk.length;
        if (size <= MAX_BODY_KEPT)
            chunks.push(chunk);
    });
    stream.on('end', () => {
        const ctx = {method: headers[':method'], path: headers[':path'],
                     headers, version: '2.0',
                     sid: session ? session[SID] : 0,
                     sst: session ? session[SST] : newSessionState(),
                     authority: headers[':authority'] || '',
                     bodySize: size,
                     respond: (st, h, b) => respondH2(stream, st, h, b)};
        dispatch(ctx, chunks.length === 1 ? chunks[0]
                                          : Buffer.concat(chunks));
    });
}

function onHttp1(req, res) {
    const socket = req.socket;
    if (socket[SID] === undefined) {
        socket[SID] = ++state.sessionSeq;
        socket[SST] = newSessionState();
        state.connections.add(socket);
        socket.on('close', () => state.connections.delete(socket));
    }
    const chunks = [];
    let size = 0;
    req.on('error', noop);
    req.on('data', (chunk) => {
        size += chunk.length;
        if (size <= MAX_BODY_KEPT)
            chunks.push(chunk);
    });
    req.on('end', () => {
        const headers = Object.assign({}, req.headers);
        const ctx = {method: req.method, path: req.url, headers,
                     version: req.httpVersion === '1.0' ? '1.0' : '1.1',
                     sid: socket[SID], sst: socket[SST],
                     authority: req.headers.host || '', bodySize: size,
                     respond: (st, h, b) => {
                         const hh = Object.assign({}, h);
                         const out = b === null || b === undefined ? '' : b;
                         hh['content-length'] = Buffer.byteLength(out);
                         send(res, st, hh, out);
                     }};
        dispatch(ctx, Buffer.concat(chunks));
    });
}

// ---------------------------------------------------------------------------
// Main

function usage(msg) {
    process.stderr.write(`fake_push: ${msg}\n` +
        'usage: fake_push.js --port N [--tls] --cert server.pem ' +
        '--key server.key [--host H] [--max-streams N] [--quiet]\n');
    process.exit(2);
}

function main() {
    const v = parseOptions(process.argv.slice(2), {
        port: {type: 'string'},
        host: {type: 'string', default: '127.0.0.1'},
        cert: {type: 'string'},
        key: {type: 'string'},
        'max-streams': {type: 'string', default: '1000'},
        quiet: {type: 'boolean', default: false},
        // TLS is always on; accepted for the start protocol of
        // tests/harness/fake_http.js (hx_fake_http_start() passes it)
        tls: {type: 'boolean', default: false},
    }, usage);
    const port = Number(v.port);
    if (v.port === undefined || !Number.isInteger(port) || port < 0 ||
        port > 65535)
        usage('--port is required (0..65535)');
    if (!v.cert || !v.key)
        usage('--cert and --key are required');
    const maxStreams = Number(v['max-streams']);
    if (!Number.isInteger(maxStreams) || maxStreams < 1)
        usage('--max-streams must be an integer >= 1');
    let cert, key;
    try {
        cert = fs.readFileSync(v.cert);
        key = fs.readFileSync(v.key);
    } catch (e) {
        usage(e.message);
    }
    state.quiet = v.quiet;

    const server = http2.createSecureServer({
        cert, key, allowHTTP1: true, maxSessionMemory: 256,
        // A real push service does not drop a busy client's connection for
        // streams it refused itself: do not count them against it.
        maxSessionRejectedStreams: 1 << 30,
        maxSessionInvalidFrames: 1 << 30,
        settings: {maxConcurrentStreams: maxStreams},
    });
    // HTTP/2 streams go to onStream; only HTTP/1.1 requests go through
    // 'request' (without this, adding a 'request' listener would route
    // HTTP/2 streams through the slower compatibility layer too).
    server.removeAllListeners('newListener');
    server.on('request', onHttp1);
    for (const l of server.listeners('stream'))
        server.removeListener('stream', l);
    server.on('stream', onStream);
    server.on('session', (session) => {
        session[SID] = ++state.sessionSeq;
        session[SST] = newSessionState();
        session.on('error', (e) => {
            if (!state.quiet)
                process.stderr.write(`fake_push: session ${session[SID]}: ` +
                                     `${e.message}\n`);
        });
        state.connections.add(session);
        session.on('close', () => state.connections.delete(session));
    });
    server.on('sessionError', noop);
    server.on('tlsClientError', noop);
    server.on('error', (e) => {
        process.stderr.write(`fake_push: ${e.message}\n`);
        process.exit(1);
    });
    listen(server, {port, host: v.host}, (p) => {
        state.port = p;
        state.origin = `https://127.0.0.1:${p}`;
    });
}

if (require.main === module)
    main();

module.exports = {decryptAes128gcm};
