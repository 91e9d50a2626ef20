#!/usr/bin/env node
// A fake email provider for Herald's email worker (herald-email), with two
// faces: an SMTP server (the npm package smtp-server, a real implementation
// of the protocol: EHLO, STARTTLS, AUTH PLAIN/LOGIN, PIPELINING, SIZE,
// dot-unstuffing) and an Amazon SES v2 SendEmail endpoint over HTTP/1.1 that
// checks (and with the keys, verifies) AWS Signature Version 4. Every
// accepted message is parsed with the npm package mailparser (simpleParser)
// plus a small MIME walk of its own, and recorded for the tests; control
// calls over HTTP script failures and read the records. The command line and
// the HTTP plumbing come from fake_common.js.
//
//   node fake_email.js --port N --smtp-port N [--host 127.0.0.1]
//        [--cert server.pem --key server.key [--smtps]]
//        [--user U --password P]
//        [--aws-key AKID --aws-secret SECRET [--aws-token TOKEN]]
//        [--aws-region R] [--max-size BYTES] [--quiet]
//
// --port: the HTTP port (SES v2 and /_control/); --smtp-port: the SMTP port
// (0 for either picks a free one). Both listen on --host. Once both accept
// connections it prints two lines on stdout, in this order:
//   smtp <smtpPort>
//   listening <httpPort>
// (the "listening" line comes last: whoever waits for it can read the SMTP
// port on the line before) and runs until killed.
//
// SMTP:
//   --cert/--key (PEM files): STARTTLS is offered (and used when the client
//     asks); with --smtps the SMTP port speaks implicit TLS instead (port 465
//     style, no STARTTLS). Without them, STARTTLS is neither offered nor
//     accepted (smtp-server would otherwise offer it with a built-in
//     self-signed certificate).
//   --user/--password: AUTH PLAIN and LOGIN are offered and required
//     (MAIL without it: "530 5.7.0 Authentication required"); a wrong name
//     or password: "535 5.7.8 Authentication credentials invalid". AUTH is
//     allowed without TLS (allowInsecureAuth) so tests can run plain. Without
//     them AUTH is not offered and not needed.
//   A MAIL FROM whose SIZE= parameter is over the limit gets "552 ..."
//   from smtp-server itself, before any script, and is not counted.
//   Up to 1000 concurrent connections, any number of messages per
//   connection, messages up to --max-size bytes (default 10485760 = 10 MiB,
//   announced with SIZE; a bigger one gets "552 Error: message exceeds fixed
//   maximum message size"). Greeting "220 fake-email.test ESMTP Herald
//   fake_email". ENHANCEDSTATUSCODES is not announced; the fake's own
//   replies carry an enhanced code in their text anyway ("535 5.7.8 ...",
//   "250 2.0.0 Ok: queued as <id>"). No reverse DNS lookups.
//   An accepted message gets "250 2.0.0 Ok: queued as <queue_id>" (the
//   record is there before that reply is sent).
//
// SES v2: POST /v2/email/outbound-emails (SendEmail), checked in this order
// (errors are AWS REST-JSON: status, header x-amzn-ErrorType: <type>,
// x-amzn-RequestId, body {"message": "..."}; each is counted in the
// summary's "failures" by type):
//   Authorization missing: 403 MissingAuthenticationTokenException.
//   Not "AWS4-HMAC-SHA256 Credential=<AKID>/<yyyymmdd>/<region>/<service>/
//     aws4_request, SignedHeaders=<a;b;c>, Signature=<64 lower-case hex>"
//     (", " or "," between the parts), or X-Amz-Date missing or not
//     yyyymmddThhmmssZ: 400 IncompleteSignatureException.
//   service not exactly "ses", the credential date not X-Amz-Date's date,
//     region not --aws-region (when given), SignedHeaders without host or
//     x-amz-date, X-Amz-Date more than 15 minutes from now:
//     403 InvalidSignatureException (AWS's wording in the message).
//   With --aws-key and --aws-secret the signature is verified in full:
//     AKID not --aws-key: 403 UnrecognizedClientException ("The security
//     token included in the request is invalid."); with --aws-token, a
//     missing or different X-Amz-Security-Token: the same; then the
//     SigV4 signature computed here (canonical request: method, the path as
//     sent (the path with each segment URI-encoded again is accepted too),
//     the canonical query, the SignedHeaders' values (all occurrences,
//     trimmed, inner spaces squeezed, joined by ","), SignedHeaders, hex
//     SHA-256 of the body; string to sign "AWS4-HMAC-SHA256\n<X-Amz-Date>\n
//     <date>/<region>/ses/aws4_request\n<hex SHA-256 of the canonical
//     request>"; key HMAC chain "AWS4"+secret, date, region, "ses",
//     "aws4_request") must equal Signature, else 403 SignatureDoesNotMatch
//     ("The request signature we calculated does not match the signature
//     you provided. ..."). Without the keys only the checks above are made.
//   Content-Type not JSON (application/json, or anything with "json"):
//     400 BadRequestException; so is a body that is not a JSON object, an
//     unknown top-level field (SendEmail's are FromEmailAddress,
//     FromEmailAddressIdentityArn, Destination, ReplyToAddresses,
//     FeedbackForwardingEmailAddress,
//     FeedbackForwardingEmailAddressIdentityArn,
//     Content, EmailTags, ConfigurationSetName, ListManagementOptions,
//     EndpointId, TenantName), a field of the wrong type, Destination with
//     ToAddresses/CcAddresses/BccAddresses not arrays of strings or more than
//     50 addresses in all, Content without exactly one of Raw/Simple
//     (Template is refused), Raw.Data not a non-empty string of strict
//     base64 (no line breaks, padding right), Simple without Subject.Data,
//     Body.Text.Data or Body.Html.Data, or FromEmailAddress; no recipient at
//     all (no Destination and, for Raw, no To/Cc/Bcc header).
//   A raw message over --max-size bytes: 400 MessageRejected.
//   Then the script (below); else 200 {"MessageId": "<generated>"}, the
//   message recorded with transport "ses" (Raw, parsed exactly as an SMTP
//   one; envelope: FromEmailAddress, else the From header's address, and
//   the Destination addresses, else those of To/Cc/Bcc) or "ses-simple"
//   (Simple: subject/text/html/from/to from the JSON, headers from
//   Simple.Headers, raw null, parts [], valid when subject and a body are
//   there).
//   Any other path or method: 404 UnknownOperationException.
//
// Every accepted message (unless --quiet) is recorded as:
//   {seq, transport: "smtp"|"ses"|"ses-simple", time_ms, session (SMTP: one
//    number per connection; SES: null), queue_id (SMTP's "queued as" id, or
//    SES's MessageId), envelope {mail_from, rcpt_to: [...]}, auth_user (SMTP
//    AUTH name, or SES access key id; null), auth_method ("PLAIN"|"LOGIN"|
//    "SIGV4"|null), secure (TLS in use on that SMTP connection; false for
//    SES), tls_protocol ("TLSv1.3"... or null), message_id, subject, from,
//    to, cc, reply_to (mailparser's text of each, or null), date (ISO, or
//    null), headers {lower-case name: raw value, unfolded and trimmed; for
//    date, message-id, auto-submitted, list-unsubscribe,
//    list-unsubscribe-post, mime-version, content-type, subject, from, to,
//    cc, reply-to, sender, precedence, content-transfer-encoding and every
//    x-* header; the first one when repeated}, text, html (mailparser's:
//    the text/plain and text/html content, decoded; null when absent),
//    parts: [{content_type, charset, transfer_encoding, disposition,
//    filename, parent (the enclosing multipart's type, or null), size (bytes
//    of the encoded body)}] (the leaf parts in the order they appear in the
//    raw message; message/rfc822 is a leaf), attachments: [{filename,
//    content_type, size}] (mailparser's), valid, problems: [strings],
//    warnings: [strings], size (bytes of the raw message), raw (the raw
//    message as UTF-8 text, after SMTP dot-unstuffing), ses (SES only:
//    {region, key_id, signed_headers, signature_verified,
//    configuration_set, email_tags, from_email_address, destination})}.
//   valid: mailparser parsed it without error and problems is empty. A
//   problem: mailparser's error; no Date, From, To, Message-ID or
//   top-level MIME-Version header; one of Date, From, Sender, To, Cc,
//   Reply-To, Subject, Message-ID, MIME-Version more than once; a Date
//   that does not parse; a Message-ID not like <left@right>. Warnings do
//   not make a message invalid: bare LF or CR line ends, lines longer than
//   998 bytes, 8-bit bytes in the header, 8-bit bytes in a part declared
//   7bit, a multipart without boundary or without its closing delimiter.
//   Up to 20,000 records are kept (then the oldest half is dropped, counted
//   in the summary's records_dropped).
//
// Control calls: JSON over the HTTP port, paths under /_control/; neither
// recorded nor counted.
//   POST /_control/script {"rcpt": "<address>" | "mail_from": "<address>" |
//        "ses_to": "<address>", "answers": [answer, ...]}: the next
//        transactions with that address (compared case-insensitively) get
//        these answers in order, the last one repeating; "answers": []
//        forgets the script. Answers {"key": ..., "address": ...,
//        "answers": n}. A new script for the same key and address replaces
//        the old one.
//     SMTP answer: {"stage": "mail"|"rcpt"|"data", "code": 451,
//        "message": "4.3.0 try later", "delay_ms": 0}: no code, or a 2xx
//        one (e.g. {} or {"code": 250}), accepts normally (after delay_ms
//        if given); a 4xx/5xx code answers that stage with "<code>
//        <message>" (421 also closes the connection, as smtp-server does);
//        the message defaults to an enhanced code and words for the code
//        (451 "4.3.0 Local error in processing, try again later", 550 "5.1.1
//        Mailbox unavailable", ...). A "rcpt" script is consumed at the RCPT
//        TO of that address: stage "rcpt" (the default) refuses that
//        recipient, stage "data" lets it through and refuses the DATA of that
//        transaction (after reading the message). Stage "mail" cannot be
//        known from the recipient (MAIL comes first): while the next answer
//        of a "rcpt" script has stage "mail", the next MAIL FROM on any
//        connection consumes it (exact when one message is sent at a time;
//        use "mail_from" otherwise). A "mail_from" script is consumed at the
//        MAIL FROM of that sender: stage "mail" (its default) refuses it,
//        "rcpt" refuses every RCPT of the transaction, "data" its DATA.
//        A refused transaction records no message; every refusal is counted
//        in the summary's "failures" by code and listed by
//        /_control/failures.
//     SES answer ("ses_to": matched against every Destination address, or
//        those of To/Cc/Bcc for Raw without Destination; every matching
//        script is consumed, the first refusal wins): {"status": 429,
//        "type": "TooManyRequestsException", "message": "...",
//        "delay_ms": 0}; {} (or a 2xx status) accepts. Type by status when
//        missing (400 BadRequestException, 403 UnrecognizedClientException,
//        404 NotFoundException, 429 TooManyRequestsException, 500
//        InternalFailure, 503 ServiceUnavailable); status by type when
//        missing (MessageRejected, MailFromDomainNotVerifiedException,
//        LimitExceededException, SendingPausedException,
//        AccountSuspendedException, BadRequestException 400;
//        UnrecognizedClientException, AccessDeniedException 403;
//        NotFoundException 404; TooManyRequestsException 429;
//        InternalFailure 500; ServiceUnavailable 503). Scripts apply only to
//        requests that pass the checks above.
//   GET  /_control/scripts  {"scripts": [{key, address, answers, used}]}
//   GET  /_control/messages[?since=SEQ][&to=ADDR][&transport=smtp|ses|
//        ses-simple]  {"messages": [...]} oldest first: seq > SEQ, ADDR among
//        envelope.rcpt_to (case-insensitive).
//   GET  /_control/failures[?since=SEQ]  {"failures": [{seq, time_ms,
//        transport, session, stage, code (SMTP code or SES type), status
//        (SES's HTTP status), message, mail_from, rcpt, scripted (true for a
//        scripted answer)}]}; stage: SMTP "mail"|"rcpt"|"data" (scripted),
//        "size" (552 over --max-size), "auth" (535; counted in
//        auth_failures, not in failures); SES "auth" (the signature checks),
//        "request" (the body checks), "script". seq numbers are shared with
//        messages, so the two lists interleave.
//   GET  /_control/summary  {"messages": n, "by_transport": {t: n},
//        "failures": {"<code>"|"<type>": n}, "sessions": distinct SMTP
//        connections that sent MAIL FROM, "connections": SMTP connections
//        accepted, "auth_failures": n, "bytes": bytes of accepted messages,
//        "first_ms", "last_ms" (time of the first and last accepted message,
//        null before), "rate": (messages - 1) / seconds between first and
//        last (null with fewer than 2), "records_kept", "records_dropped"};
//        all since the start or the last reset; kept in --quiet mode too.
//   POST /_control/reset    forget messages, failures, scripts, counters
//        (seq, session and queue numbers keep counting).
//   GET  /_control/health   {"ok": true}
//
// --quiet (benchmark sink): nothing is parsed or recorded; a message's data
// is counted and dropped as it streams in, only the summary's counters are
// kept (scripts and SES checks still apply).
//
// require('./fake_email') runs nothing and exports the helpers sigv4,
// walkMime and checkMessage for tests.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const {parseOptions, send, sendJson, readBody, listen} =
    require('./fake_common');

const MAX_RECORDS = 20000;
const SIGV4_SKEW_MS = 15 * 60 * 1000;
const SES_PATH = '/v2/email/outbound-emails';
const SES_MAX_DESTINATIONS = 50;

const RECORDED_HEADERS = new Set(['date', 'message-id', 'auto-submitted',
    'list-unsubscribe', 'list-unsubscribe-post', 'mime-version',
    'content-type', 'subject', 'from', 'to', 'cc', 'reply-to', 'sender',
    'precedence', 'content-transfer-encoding']);
const SINGLE_HEADERS = ['date', 'from', 'sender', 'to', 'cc', 'reply-to',
    'subject', 'message-id', 'mime-version'];

const SMTP_DEFAULT_MESSAGE = {
    421: '4.4.2 Service not available, closing transmission channel',
    450: '4.2.1 Mailbox unavailable, try again later',
    451: '4.3.0 Local error in processing, try again later',
    452: '4.2.2 Insufficient system storage',
    454: '4.7.0 Temporary authentication failure',
    550: '5.1.1 Mailbox unavailable',
    551: '5.1.6 User not local',
    552: '5.2.2 Exceeded storage allocation',
    553: '5.1.3 Mailbox name not allowed',
    554: '5.6.0 Transaction failed',
};

const SES_FIELDS = new Set(['FromEmailAddress', 'FromEmailAddressIdentityArn',
    'Destination', 'ReplyToAddresses', 'FeedbackForwardingEmailAddress',
    'FeedbackForwardingEmailAddressIdentityArn', 'Content', 'EmailTags',
    'ConfigurationSetName', 'ListManagementOptions', 'EndpointId',
    'TenantName']);
const SES_STATUS_BY_TYPE = {
    MessageRejected: 400, MailFromDomainNotVerifiedException: 400,
    LimitExceededException: 400, SendingPausedException: 400,
    AccountSuspendedException: 400, BadRequestException: 400,
    IncompleteSignatureException: 400,
    UnrecognizedClientException: 403, AccessDeniedException: 403,
    InvalidSignatureException: 403, SignatureDoesNotMatch: 403,
    MissingAuthenticationTokenException: 403,
    NotFoundException: 404, TooManyRequestsException: 429,
    InternalFailure: 500, ServiceUnavailable: 503,
};
const SES_TYPE_BY_STATUS = {
    400: 'BadRequestException', 403: 'UnrecognizedClientException',
    404: 'NotFoundException', 429: 'TooManyRequestsException',
    500: 'InternalFailure', 503: 'ServiceUnavailable',
};
const SES_DEFAULT_MESSAGE = {
    MessageRejected: 'Email address is not verified. The following ' +
        'identities failed the check in region EU-WEST-1: ' +
        'sender@example.test',
    MailFromDomainNotVerifiedException: 'MAIL FROM domain is not verified',
    LimitExceededException: 'Maximum sending rate exceeded.',
    SendingPausedException: 'Sending is paused for this account.',
    AccountSuspendedException: 'The account has been suspended.',
    BadRequestException: 'Bad request',
    UnrecognizedClientException: 'The security token included in the ' +
        'request is invalid.',
    AccessDeniedException: 'User is not authorized to perform ' +
        'ses:SendEmail',
    NotFoundException: 'Resource not found',
    TooManyRequestsException: 'Too Many Requests',
    InternalFailure: 'The request processing has failed because of an ' +
        'unknown error, exception or failure.',
    ServiceUnavailable: 'Service is unavailable. Please try again later.',
};
const SIGNATURE_MISMATCH = 'The request signature we calculated does not ' +
    'match the signature you provided. Check your AWS Secret Access Key and ' +
    'signing method. Consult the service documentation for details.';
const BAD_TOKEN = 'The security token included in the request is invalid.';

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([^/\s,]+)\/([^/\s,]+)\/aws4_request, ?SignedHeaders=([a-z0-9;_.-]+), ?Signature=([0-9a-f]{64})$/;
const AMZ_DATE_RE = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/;

const noop = () => {};

// ---------------------------------------------------------------------------
// State

const state = {
    quiet: false,
    maxSize: 10485760,
    aws: {key: null, secret: null, token: null, region: null},
    seq: 0,                 // messages and failures
    sessionSeq: 0,          // SMTP connections (never reset)
    queueSeq: 0,            // "queued as" ids (never reset)
    epoch: 1,               // bumped by reset: tells sessions apart
    records: [],
    recordsDropped: 0,
    failureRecords: [],
    // scripts: key ("rcpt" | "mail_from" | "ses_to") + ":" + address ->
    // {key, address, answers, next}
    scripts: new Map(),
    counters: null,
};

function newCounters() {
    return {messages: 0, byTransport: {}, failures: {}, sessions: 0,
            connections: 0, authFailures: 0, bytes: 0, firstMs: null,
            lastMs: null};
}
state.counters = newCounters();

function countAccepted(transport, size) {
    const c = state.counters;
    const now = Date.now();
    c.messages++;
    c.byTransport[transport] = (c.byTransport[transport] || 0) + 1;
    c.bytes += size;
    if (c.firstMs === null)
        c.firstMs = now;
    c.lastMs = now;
    return now;
}

function keepRecord(list, rec) {
    list.push(rec);
    if (list.length > MAX_RECORDS) {
        const drop = list.length >> 1;
        list.splice(0, drop);
        if (list === state.records)
            state.recordsDropped += drop;
    }
}

function countFailure(f) {
    const key = String(f.code);
    state.counters.failures[key] = (state.counters.failures[key] || 0) + 1;
    if (state.quiet)
        return;
    keepRecord(state.failureRecords, {seq: ++state.seq, time_ms: Date.now(),
        transport: f.transport, session: f.session ?? null, stage: f.stage,
        code: f.code, status: f.status ?? null, message: f.message ?? null,
        mail_from: f.mail_from ?? null, rcpt: f.rcpt ?? null,
        scripted: !!f.scripted});
}

// ---------------------------------------------------------------------------
// Scripts

function scriptFor(key, address) {
    if (state.scripts.size === 0 || typeof address !== 'string')
        return null;
    return state.scripts.get(`${key}:${address.toLowerCase()}`) || null;
}

function peekAnswer(s) {
    return s.answers[Math.min(s.next, s.answers.length - 1)];
}

function takeAnswer(s) {
    const a = peekAnswer(s);
    s.next++;
    return a;
}

function smtpRefuses(a) {
    return a && a.code !== undefined && a.code >= 300;
}

function smtpError(a) {
    const e = new Error(a.message !== undefined ? a.message
        : SMTP_DEFAULT_MESSAGE[a.code] ||
          `${String(a.code)[0]}.0.0 Scripted failure`);
    e.responseCode = a.code;
    return e;
}

function validateScript(body) {
    if (!body || typeof body !== 'object' || Array.isArray(body))
        return 'the body must be a JSON object';
    const keys = ['rcpt', 'mail_from', 'ses_to'].filter((k) =>
        Object.hasOwn(body, k));
    if (keys.length !== 1)
        return 'give exactly one of "rcpt", "mail_from", "ses_to"';
    const key = keys[0];
    if (typeof body[key] !== 'string' || !body[key])
        return `"${key}" must be a non-empty string`;
    if (!Array.isArray(body.answers))
        return '"answers" must be an array';
    for (const [i, a] of body.answers.entries()) {
        if (!a || typeof a !== 'object' || Array.isArray(a))
            return `answers[${i}] must be an object`;
        if (a.delay_ms !== undefined &&
            !(Number.isFinite(a.delay_ms) && a.delay_ms >= 0))
            return `answers[${i}].delay_ms must be a number >= 0`;
        if (a.message !== undefined && typeof a.message !== 'string')
            return `answers[${i}].message must be a string`;
        if (key === 'ses_to') {
            if (a.status !== undefined && !(Number.isInteger(a.status) &&
                a.status >= 200 && a.status <= 599))
                return `answers[${i}].status must be an HTTP status`;
            if (a.type !== undefined && (typeof a.type !== 'string' ||
                                         !/^[A-Za-z0-9_.:-]+$/.test(a.type)))
                return `answers[${i}].type must be an error type name`;
        } else {
            if (a.code !== undefined && !(Number.isInteger(a.code) &&
                                          a.code >= 200 && a.code <= 599))
                return `answers[${i}].code must be an SMTP code 200..599`;
            if (a.code >= 300 && a.code < 400)
                return `answers[${i}].code: 3xx is not a final answer`;
            if (a.stage !== undefined &&
                !['mail', 'rcpt', 'data'].includes(a.stage))
                return `answers[${i}].stage must be mail, rcpt or data`;
            if (a.message !== undefined && /[\r\n]/.test(a.message))
                return `answers[${i}].message must be one line`;
        }
    }
    return null;
}

function setScript(body) {
    const key = ['rcpt', 'mail_from', 'ses_to'].find((k) =>
        Object.hasOwn(body, k));
    const address = body[key].toLowerCase();
    const id = `${key}:${address}`;
    if (body.answers.length === 0) {
        state.scripts.delete(id);
    } else {
        const dflt = key === 'mail_from' ? 'mail' : 'rcpt';
        const answers = body.answers.map((a) => key === 'ses_to' ? {...a}
            : {...a, stage: a.stage || dflt});
        state.scripts.set(id, {key, address, answers, next: 0});
    }
    return {key, address: body[key], answers: body.answers.length};
}

// ---------------------------------------------------------------------------
// Message checks: a small MIME walk next to mailparser

// The header fields of a list of header lines (latin1 strings), in order:
// [{name (lower case), value (unfolded, trimmed)}].
function parseHeaderLines(lines, problems) {
    const out = [];
    for (const line of lines) {
        if ((line[0] === ' ' || line[0] === '\t') && out.length) {
            out[out.length - 1].value += line;
        } else {
            const k = line.indexOf(':');
            if (k > 0 && !/[\s]/.test(line.slice(0, k).trimEnd()))
                out.push({name: line.slice(0, k).trim().toLowerCase(),
                          value: line.slice(k + 1)});
            else if (problems && line !== '')
                problems.push(`malformed header line: ${line.slice(0, 80)}`);
        }
    }
    for (const h of out)
        h.value = h.value.trim();
    return out;
}

function headerValue(fields, name) {
    const f = fields.find((h) => h.name === name);
    return f ? f.value : null;
}

// "type/subtype; a=b; c="d"" -> {type (lower case), params {name: value}}
function parseParams(value) {
    const m = /^\s*([^;\s]+)/.exec(value || '');
    const params = {};
    const re = /;\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/g;
    let p;
    while ((p = re.exec(value || '')) !== null) {
        let v = p[2];
        if (v.startsWith('"'))
            v = v.slice(1, -1).replace(/\\(.)/g, '$1');
        params[p[1].toLowerCase()] = v;
    }
    return {type: m ? m[1].toLowerCase() : '', params};
}

// Split the lines of an entity into header lines and body lines.
function splitEntity(lines) {
    const i = lines.indexOf('');
    return i < 0 ? {head: lines, body: []}
        : {head: lines.slice(0, i), body: lines.slice(i + 1)};
}

function latin1ToUtf8(s) {
    return Buffer.from(s, 'latin1').toString('utf8');
}

// Append the leaf parts of an entity (its lines, latin1) to out.
function walkEntity(lines, parent, depth, out, warnings) {
    const {head, body} = splitEntity(lines);
    const fields = parseHeaderLines(head, null);
    const ctValue = headerValue(fields, 'content-type');
    const ct = parseParams(ctValue ||
        (parent === 'multipart/digest' ? 'message/rfc822'
            : 'text/plain; charset=us-ascii'));
    const cte = (headerValue(fields, 'content-transfer-encoding') || '7bit')
        .toLowerCase();
    if (ct.type.startsWith('multipart/') && depth < 50) {
        const b = ct.params.boundary;
        if (!b) {
            warnings.push(`${ct.type} without boundary`);
        } else {
            const delim = `--${b}`;
            const close = `--${b}--`;
            const parts = [];
            let cur = null;
            let closed = false;
            for (const l of body) {
                const t = l.replace(/[ \t]+$/, '');
                if (t === close) {
                    if (cur)
                        parts.push(cur);
                    cur = null;
                    closed = true;
                    break;
                }
                if (t === delim) {
                    if (cur)
                        parts.push(cur);
                    cur = [];
                } else if (cur) {
                    cur.push(l);
                }
            }
            if (cur)
                parts.push(cur);
            if (!closed)
                warnings.push(`${ct.type} without its closing delimiter`);
            for (const p of parts)
                walkEntity(p, ct.type, depth + 1, out, warnings);
            return;
        }
    }
    const disp = parseParams(headerValue(fields, 'content-disposition'));
    let size = 0;
    for (const l of body)
        size += l.length + 2;
    if (cte === '7bit' && body.some((l) => /[\x80-\xff]/.test(l)))
        warnings.push(`8-bit data in a 7bit ${ct.type} part`);
    out.push({
        content_type: ct.type,
        charset: ct.params.charset !== undefined
            ? ct.params.charset.toLowerCase() : null,
        transfer_encoding: cte,
        disposition: disp.type || null,
        filename: disp.params.filename !== undefined
            ? latin1ToUtf8(disp.params.filename)
            : ct.params.name !== undefined ? latin1ToUtf8(ct.params.name)
                : null,
        parent,
        size: Math.max(0, size - 2),
    });
}

// {headers, parts, problems, warnings} of a raw message (a Buffer), the
// checks that do not need mailparser.
function walkMime(raw) {
    const problems = [];
    const warnings = [];
    let bareLf = 0;
    let bareCr = 0;
    let longest = 0;
    let lineStart = 0;
    for (let i = 0; i < raw.length; i++) {
        const c = raw[i];
        if (c === 10) {
            if (i === 0 || raw[i - 1] !== 13)
                bareLf++;
            const len = i - lineStart - (i > 0 && raw[i - 1] === 13 ? 1 : 0);
            if (len > longest)
                longest = len;
            lineStart = i + 1;
        } else if (c === 13 && raw[i + 1] !== 10) {
            bareCr++;
        }
    }
    if (raw.length - lineStart > longest)
        longest = raw.length - lineStart;
    if (bareLf)
        warnings.push(`${bareLf} line(s) end in a bare LF (not CRLF)`);
    if (bareCr)
        warnings.push(`${bareCr} bare CR(s)`);
    if (longest > 998)
        warnings.push(`a line of ${longest} bytes (the limit is 998)`);

    const lines = raw.toString('latin1').split(/\r?\n/);
    const {head} = splitEntity(lines);
    const fields = parseHeaderLines(head, problems);
    if (head.some((l) => /[\x80-\xff]/.test(l)))
        warnings.push('8-bit bytes in the header');
    const headers = {};
    const counts = {};
    for (const h of fields) {
        counts[h.name] = (counts[h.name] || 0) + 1;
        if ((RECORDED_HEADERS.has(h.name) || h.name.startsWith('x-')) &&
            !Object.hasOwn(headers, h.name))
            headers[h.name] = latin1ToUtf8(h.value);
    }
    for (const [name, label] of [['date', 'Date'], ['from', 'From'],
        ['to', 'To'], ['message-id', 'Message-ID'],
        ['mime-version', 'MIME-Version']])
        if (!counts[name])
            problems.push(`no ${label} header`);
    for (const name of SINGLE_HEADERS)
        if (counts[name] > 1)
            problems.push(`${counts[name]} ${name} headers (one allowed)`);
    if (headers.date !== undefined && Number.isNaN(Date.parse(
        headers.date.replace(/\s*\([^)]*\)\s*$/, ''))))
        problems.push(`Date does not parse: ${headers.date}`);
    if (headers['message-id'] !== undefined &&
        !/^<[^<>@\s]+@[^<>@\s]+>$/.test(headers['message-id']))
        problems.push(`Message-ID not like <left@right>: ` +
                      headers['message-id']);
    const parts = [];
    walkEntity(lines, null, 0, parts, warnings);
    return {headers, parts, problems, warnings};
}

function addressText(a) {
    if (!a)
        return null;
    return Array.isArray(a) ? a.map((x) => x.text).join(', ') : a.text;
}

function addressList(a) {
    const out = [];
    const add = (v) => {
        for (const x of v || []) {
            if (x.group)
                add(x.group);
            else if (x.address)
                out.push(x.address);
        }
    };
    for (const o of Array.isArray(a) ? a : a ? [a] : [])
        add(o.value);
    return out;
}

// The record fields of a raw message (a Buffer), mailparser's view plus
// walkMime's; resolves (never rejects).
async function checkMessage(raw) {
    let w;
    try {
        w = walkMime(raw);
    } catch (e) {
        w = {headers: {}, parts: [], warnings: [],
             problems: ['fake_email could not walk the message: ' +
                        e.message]};
    }
    let parsed = null;
    try {
        parsed = await simpleParser(raw, {skipHtmlToText: true,
            skipTextToHtml: true, skipImageLinks: true, keepCidLinks: true,
            checksumAlgo: false});
    } catch (e) {
        w.problems.unshift(`mailparser: ${e.message}`);
    }
    const p = parsed || {};
    const date = p.date instanceof Date && !Number.isNaN(p.date.getTime())
        ? p.date.toISOString() : null;
    return {
        message_id: p.messageId ?? null,
        subject: p.subject ?? null,
        from: addressText(p.from),
        to: addressText(p.to),
        cc: addressText(p.cc),
        reply_to: addressText(p.replyTo),
        date,
        headers: w.headers,
        text: typeof p.text === 'string' ? p.text : null,
        html: typeof p.html === 'string' ? p.html : null,
        parts: w.parts,
        attachments: (p.attachments || []).map((a) => ({
            filename: a.filename ?? null, content_type: a.contentType,
            size: a.size})),
        valid: parsed !== null && w.problems.length === 0,
        problems: w.problems,
        warnings: w.warnings,
        size: raw.length,
        raw: raw.toString('utf8'),
        // for SES's envelope
        _recipients: [...addressList(p.to), ...addressList(p.cc),
                      ...addressList(p.bcc)],
        _from: addressList(p.from)[0] ?? null,
    };
}

let simpleParser = null;    // loaded unless --quiet

function record(transport, base, checked) {
    const rec = {seq: ++state.seq, transport, ...base};
    for (const [k, v] of Object.entries(checked))
        if (!k.startsWith('_'))
            rec[k] = v;
    keepRecord(state.records, rec);
    return rec;
}

// ---------------------------------------------------------------------------
// SMTP

function nextQueueId() {
    return (++state.queueSeq).toString(16).toUpperCase().padStart(10, '0');
}

function smtpFailure(session, stage, a, rcpt, scripted) {
    const tx = session.herald;
    countFailure({transport: 'smtp', session: tx.num, stage, code: a.code,
                  message: a.message !== undefined ? a.message
                      : SMTP_DEFAULT_MESSAGE[a.code] || null,
                  mail_from: tx.mailFrom, rcpt, scripted});
}

// Call cb(err) after the answer's delay_ms, if any.
function later(a, fn) {
    if (a && a.delay_ms > 0)
        setTimeout(fn, a.delay_ms);
    else
        fn();
}

function onConnect(session, cb) {
    session.herald = {num: ++state.sessionSeq, epoch: 0, mailFrom: null,
                      rcptFail: null, dataFail: null, dataDelay: null,
                      authMethod: null};
    state.counters.connections++;
    cb();
}

function onAuth(auth, session, cb) {
    const u = state.smtpUser;
    if (u && (auth.method === 'PLAIN' || auth.method === 'LOGIN') &&
        auth.username === u.user && auth.password === u.password) {
        session.herald.authMethod = auth.method;
        return cb(null, {user: auth.username});
    }
    state.counters.authFailures++;
    if (!state.quiet)
        keepRecord(state.failureRecords, {seq: ++state.seq,
            time_ms: Date.now(), transport: 'smtp',
            session: session.herald.num, stage: 'auth', code: 535,
            status: null, message: `${auth.method} as ${auth.username}`,
            mail_from: null, rcpt: null, scripted: false});
    const e = new Error('5.7.8 Authentication credentials invalid');
    e.responseCode = 535;
    cb(e);
}

function onMailFrom(address, session, cb) {
    const tx = session.herald;
    if (tx.epoch !== state.epoch) {
        tx.epoch = state.epoch;
        state.counters.sessions++;
    }
    tx.mailFrom = address.address;
    tx.rcptFail = null;
    tx.dataFail = null;
    tx.dataDelay = null;
    if (state.scripts.size === 0)
        return cb();
    let a = null;   // the answer for this MAIL FROM
    const s = scriptFor('mail_from', address.address);
    if (s) {
        const m = takeAnswer(s);
        if (m.stage === 'mail')
            a = m;
        else if (smtpRefuses(m) && m.stage === 'rcpt')
            tx.rcptFail = m;
        else if (smtpRefuses(m))
            tx.dataFail = m;
        else if (m.stage === 'data')
            tx.dataDelay = m;
    }
    if (!a || !smtpRefuses(a)) {
        // a "rcpt" script whose next answer is for MAIL: the first one wins
        for (const r of state.scripts.values()) {
            if (r.key === 'rcpt' && peekAnswer(r).stage === 'mail') {
                a = takeAnswer(r);
                break;
            }
        }
    }
    if (a && smtpRefuses(a)) {
        smtpFailure(session, 'mail', a, null, true);
        return later(a, () => cb(smtpError(a)));
    }
    later(a, () => cb());
}

function onRcptTo(address, session, cb) {
    const tx = session.herald;
    if (tx.rcptFail) {
        const a = tx.rcptFail;
        smtpFailure(session, 'rcpt', a, address.address, true);
        return later(a, () => cb(smtpError(a)));
    }
    const s = scriptFor('rcpt', address.address);
    if (!s || peekAnswer(s).stage === 'mail')
        return cb();
    const a = takeAnswer(s);
    if (smtpRefuses(a) && a.stage === 'rcpt') {
        smtpFailure(session, 'rcpt', a, address.address, true);
        return later(a, () => cb(smtpError(a)));
    }
    if (a.stage === 'data' && smtpRefuses(a))
        tx.dataFail ??= a;
    else if (a.stage === 'data')
        tx.dataDelay ??= a;
    later(a.stage === 'rcpt' ? a : null, () => cb());
}

function onData(stream, session, cb) {
    const tx = session.herald;
    const envelope = session.envelope;
    const finish = (raw) => {
        const rcpts = envelope.rcptTo.map((r) => r.address);
        if (stream.sizeExceeded) {
            // smtp-server answers 552 itself (rejectOversized)
            countFailure({transport: 'smtp', session: tx.num, stage: 'size',
                          code: 552, message: 'message exceeds ' +
                          `${state.maxSize} bytes`, mail_from: tx.mailFrom,
                          rcpt: rcpts.join(', '), scripted: false});
            return cb();
        }
        const a = tx.dataFail;
        if (a) {
            smtpFailure(session, 'data', a, rcpts.join(', '), true);
            return later(a, () => cb(smtpError(a)));
        }
        const qid = nextQueueId();
        const ok = `2.0.0 Ok: queued as ${qid}`;
        if (state.quiet) {
            countAccepted('smtp', stream.byteLength);
            return later(tx.dataDelay, () => cb(null, ok));
        }
        checkMessage(raw).then((checked) => {
            const now = countAccepted('smtp', raw.length);
            const tls = session.tlsOptions;
            record('smtp', {
                time_ms: now, session: tx.num, queue_id: qid,
                envelope: {mail_from: tx.mailFrom, rcpt_to: rcpts},
                auth_user: session.user ?? null,
                auth_method: session.user ? tx.authMethod : null,
                secure: !!session.secure,
                tls_protocol: tls && tls.version ? tls.version : null,
            }, checked);
            // data-stage answers that accept may still be slow
            later(tx.dataDelay, () => cb(null, ok));
        }).catch((e) => {
            process.stderr.write(`fake_email: ${e.stack || e}\n`);
            const err = new Error('4.3.0 fake_email internal error');
            err.responseCode = 451;
            cb(err);
        });
    };
    if (state.quiet || tx.dataFail) {
        stream.on('end', () => finish(null));
        stream.resume();
        return;
    }
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => finish(Buffer.concat(chunks)));
}

// ---------------------------------------------------------------------------
// SigV4

function sha256Hex(data) {
    return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
    return crypto.createHmac('sha256', key).update(data).digest();
}

// RFC 3986 percent-encoding as SigV4 wants it (unreserved characters kept).
function awsEncode(s) {
    return encodeURIComponent(s).replace(/[!'()*]/g,
        (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function safeDecode(s) {
    try {
        return decodeURIComponent(s);
    } catch (e) {
        return s;
    }
}

function canonicalQuery(qs) {
    if (!qs)
        return '';
    return qs.split('&').filter(Boolean).map((p) => {
        const i = p.indexOf('=');
        const k = i < 0 ? p : p.slice(0, i);
        const v = i < 0 ? '' : p.slice(i + 1);
        return [awsEncode(safeDecode(k)), awsEncode(safeDecode(v))];
    }).sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1
        : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)
        .map(([k, v]) => `${k}=${v}`).join('&');
}

const signingKeys = new Map();

function signingKey(secret, date, region, service) {
    const id = `${secret}\0${date}\0${region}\0${service}`;
    let k = signingKeys.get(id);
    if (!k) {
        k = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service),
                 'aws4_request');
        if (signingKeys.size > 100)
            signingKeys.clear();
        signingKeys.set(id, k);
    }
    return k;
}

// The SigV4 signatures (hex) of a request for the secret: one per accepted
// spelling of the canonical URI. req: {method, url, rawHeaders}; auth: the
// parsed Authorization header.
function sigv4(req, body, auth, secret) {
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const query = canonicalQuery(q < 0 ? '' : req.url.slice(q + 1));
    const values = new Map();
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        const n = req.rawHeaders[i].toLowerCase();
        const v = String(req.rawHeaders[i + 1]).trim().replace(/\s+/g, ' ');
        if (values.has(n))
            values.get(n).push(v);
        else
            values.set(n, [v]);
    }
    const names = auth.signedHeaders.split(';');
    const canonHeaders = names.map((n) =>
        `${n}:${(values.get(n) || []).join(',')}\n`).join('');
    const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
    const key = signingKey(secret, auth.date, auth.region, auth.service);
    const payloadHash = sha256Hex(body);
    const paths = [path];
    const twice = path.split('/').map(awsEncode).join('/');
    if (twice !== path)
        paths.push(twice);
    return paths.map((p) => {
        const canonical = [req.method, p, query, canonHeaders,
            auth.signedHeaders, payloadHash].join('\n');
        const sts = ['AWS4-HMAC-SHA256', auth.amzDate, scope,
            sha256Hex(canonical)].join('\n');
        return crypto.createHmac('sha256', key).update(sts).digest('hex');
    });
}

function amzDateMs(s) {
    const m = AMZ_DATE_RE.exec(s);
    if (!m)
        return NaN;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

// null when the request's signature passes, else [status, type, message].
function checkSignature(req, body) {
    const h = req.headers;
    if (h.authorization === undefined)
        return [403, 'MissingAuthenticationTokenException',
                'Missing Authentication Token'];
    const m = AUTH_RE.exec(h.authorization);
    if (!m)
        return [400, 'IncompleteSignatureException',
                'Authorization header requires \'Credential\', ' +
                '\'Signature\' and \'SignedHeaders\' parameters in the ' +
                'form "AWS4-HMAC-SHA256 Credential=<AKID>/<date>/<region>/' +
                '<service>/aws4_request, SignedHeaders=<h;h>, ' +
                'Signature=<64 hex>". Authorization=' + h.authorization];
    const auth = {keyId: m[1], date: m[2], region: m[3], service: m[4],
                  signedHeaders: m[5], signature: m[6],
                  amzDate: h['x-amz-date']};
    req.sigv4 = auth;
    if (auth.amzDate === undefined)
        return [400, 'IncompleteSignatureException',
                'Authorization header requires existence of either a ' +
                '\'X-Amz-Date\' or a \'Date\' header.'];
    const t = amzDateMs(auth.amzDate);
    if (Number.isNaN(t))
        return [400, 'IncompleteSignatureException',
                `X-Amz-Date '${auth.amzDate}' is not yyyymmddThhmmssZ`];
    if (auth.service !== 'ses')
        return [403, 'InvalidSignatureException',
                'Credential should be scoped to correct service: \'ses\'. '];
    if (auth.date !== auth.amzDate.slice(0, 8))
        return [403, 'InvalidSignatureException',
                'Date in Credential scope does not match YYYYMMDD from ' +
                `ISO-8601 version of date from HTTP: '${auth.date}' != ` +
                `'${auth.amzDate.slice(0, 8)}', from '${auth.amzDate}'.`];
    if (state.aws.region && auth.region !== state.aws.region)
        return [403, 'InvalidSignatureException',
                'Credential should be scoped to a valid region. ' +
                `(expected '${state.aws.region}', got '${auth.region}')`];
    const signed = auth.signedHeaders.split(';');
    if (!signed.includes('host'))
        return [403, 'InvalidSignatureException',
                '\'Host\' or \':authority\' must be a \'SignedHeader\' in ' +
                'the AWS Authorization.'];
    if (!signed.includes('x-amz-date'))
        return [403, 'InvalidSignatureException',
                '\'X-Amz-Date\' must be a \'SignedHeader\' in the AWS ' +
                'Authorization.'];
    const now = Date.now();
    const stamp = (ms) => new Date(ms).toISOString()
        .replace(/[-:]/g, '').replace(/\.\d+/, '');
    if (t < now - SIGV4_SKEW_MS)
        return [403, 'InvalidSignatureException',
                `Signature expired: ${auth.amzDate} is now earlier than ` +
                `${stamp(now - SIGV4_SKEW_MS)} (${stamp(now)} - 15 min.)`];
    if (t > now + SIGV4_SKEW_MS)
        return [403, 'InvalidSignatureException',
                `Signature not yet current: ${auth.amzDate} is still later ` +
                `than ${stamp(now + SIGV4_SKEW_MS)} (${stamp(now)} + 15 ` +
                'min.)'];
    auth.verified = false;
    if (state.aws.key && state.aws.secret) {
        if (auth.keyId !== state.aws.key)
            return [403, 'UnrecognizedClientException', BAD_TOKEN];
        if (state.aws.token !== null &&
            h['x-amz-security-token'] !== state.aws.token)
            return [403, 'UnrecognizedClientException', BAD_TOKEN];
        if (!sigv4(req, body, auth, state.aws.secret)
            .includes(auth.signature))
            return [403, 'SignatureDoesNotMatch', SIGNATURE_MISMATCH];
        auth.verified = true;
    }
    return null;
}

// ---------------------------------------------------------------------------
// SES v2

function sesId() {
    return '0100' + Date.now().toString(16).padStart(12, '0') + '-' +
        crypto.randomUUID() + '-000000';
}

function sesHeaders(extra) {
    return {'x-amzn-requestid': crypto.randomUUID(), ...extra};
}

function sesError(res, status, type, message, stage) {
    countFailure({transport: 'ses', stage: stage || 'request', code: type,
                  status, message, scripted: stage === 'script'});
    const body = JSON.stringify({message});
    send(res, status, sesHeaders({
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-amzn-errortype': type}), body);
}

function isStringArray(v) {
    return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

// null when the SendEmail body is well-formed, else the reason.
function checkSesBody(b) {
    if (!b || typeof b !== 'object' || Array.isArray(b))
        return 'The request body must be a JSON object';
    for (const k of Object.keys(b))
        if (!SES_FIELDS.has(k))
            return `Unknown field: ${k}`;
    for (const k of ['FromEmailAddress', 'FromEmailAddressIdentityArn',
                     'FeedbackForwardingEmailAddress',
                     'FeedbackForwardingEmailAddressIdentityArn',
                     'ConfigurationSetName', 'EndpointId', 'TenantName'])
        if (b[k] !== undefined && typeof b[k] !== 'string')
            return `${k} must be a string`;
    if (b.ReplyToAddresses !== undefined && !isStringArray(b.ReplyToAddresses))
        return 'ReplyToAddresses must be a list of strings';
    if (b.EmailTags !== undefined && !(Array.isArray(b.EmailTags) &&
        b.EmailTags.every((t) => t && typeof t.Name === 'string' &&
                          typeof t.Value === 'string')))
        return 'EmailTags must be a list of {Name, Value}';
    if (b.Destination !== undefined) {
        const d = b.Destination;
        if (!d || typeof d !== 'object' || Array.isArray(d))
            return 'Destination must be an object';
        for (const k of Object.keys(d))
            if (!['ToAddresses', 'CcAddresses', 'BccAddresses'].includes(k))
                return `Unknown field: Destination.${k}`;
        for (const k of ['ToAddresses', 'CcAddresses', 'BccAddresses'])
            if (d[k] !== undefined && !isStringArray(d[k]))
                return `Destination.${k} must be a list of strings`;
        const n = (d.ToAddresses || []).length + (d.CcAddresses || []).length +
            (d.BccAddresses || []).length;
        if (n > SES_MAX_DESTINATIONS)
            return `Too many recipients: ${n} (at most ` +
                `${SES_MAX_DESTINATIONS})`;
    }
    const c = b.Content;
    if (!c || typeof c !== 'object' || Array.isArray(c))
        return 'Content is required';
    const kinds = Object.keys(c);
    if (kinds.length !== 1 || !['Raw', 'Simple'].includes(kinds[0]))
        return 'Content must have exactly one of Raw or Simple' +
            (kinds.includes('Template') ? ' (Template is not supported ' +
             'by this fake)' : '');
    if (c.Raw) {
        if (typeof c.Raw !== 'object' || typeof c.Raw.Data !== 'string' ||
            !c.Raw.Data)
            return 'Content.Raw.Data is required';
        if (Object.keys(c.Raw).some((k) => k !== 'Data'))
            return 'Content.Raw has unknown fields';
        if (!BASE64_RE.test(c.Raw.Data))
            return 'Content.Raw.Data is not valid base64 (standard ' +
                'alphabet, padded, no line breaks)';
    } else {
        const s = c.Simple;
        if (!s || typeof s !== 'object')
            return 'Content.Simple must be an object';
        if (!s.Subject || typeof s.Subject.Data !== 'string')
            return 'Content.Simple.Subject.Data is required';
        if (!s.Body || typeof s.Body !== 'object' ||
            !((s.Body.Text && typeof s.Body.Text.Data === 'string') ||
              (s.Body.Html && typeof s.Body.Html.Data === 'string')))
            return 'Content.Simple.Body needs Text.Data or Html.Data';
        if (s.Headers !== undefined && !(Array.isArray(s.Headers) &&
            s.Headers.every((x) => x && typeof x.Name === 'string' &&
                            typeof x.Value === 'string')))
            return 'Content.Simple.Headers must be a list of {Name, Value}';
        if (typeof b.FromEmailAddress !== 'string' || !b.FromEmailAddress)
            return 'FromEmailAddress is required with Content.Simple';
    }
    return null;
}

function sesRefuses(a) {
    return a.status !== undefined ? a.status >= 300 : a.type !== undefined;
}

// The SES answer of the scripts of the destinations (all consumed; the
// first refusal wins), or null.
function sesScript(addresses) {
    if (state.scripts.size === 0)
        return null;
    let refusal = null;
    let delay = null;
    for (const addr of addresses) {
        const s = scriptFor('ses_to', addr);
        if (!s)
            continue;
        const a = takeAnswer(s);
        const refuses = sesRefuses(a);
        if (refuses && !refusal)
            refusal = a;
        else if (!refuses && a.delay_ms > 0 && !delay)
            delay = a;
    }
    return refusal || delay;
}

function sesSend(req, res, body) {
    const bad = checkSignature(req, body);
    if (bad)
        return sesError(res, bad[0], bad[1], bad[2], 'auth');
    const ctype = req.headers['content-type'] || '';
    if (!/json/i.test(ctype))
        return sesError(res, 400, 'BadRequestException',
                        `Content-Type must be application/json (got ` +
                        `'${ctype}')`);
    let b;
    try {
        b = JSON.parse(body.toString('utf8'));
    } catch (e) {
        return sesError(res, 400, 'BadRequestException',
                        `The request body is not JSON: ${e.message}`);
    }
    const why = checkSesBody(b);
    if (why)
        return sesError(res, 400, 'BadRequestException', why);
    const auth = req.sigv4;
    const d = b.Destination || {};
    let rcpts = [...(d.ToAddresses || []), ...(d.CcAddresses || []),
                 ...(d.BccAddresses || [])];
    let raw = null;
    if (b.Content.Raw) {
        raw = Buffer.from(b.Content.Raw.Data, 'base64');
        if (raw.length > state.maxSize)
            return sesError(res, 400, 'MessageRejected',
                            `Message length is more than ${state.maxSize} ` +
                            'bytes long.');
    }
    const go = (checked) => {
        const recipients = rcpts.length ? rcpts
            : checked ? checked._recipients : [];
        if (recipients.length === 0)
            return sesError(res, 400, 'BadRequestException',
                            'No recipient: give Destination or To/Cc/Bcc ' +
                            'headers');
        const a = sesScript(recipients);
        const refuses = a && sesRefuses(a);
        later(a, () => {
            if (refuses) {
                const type = a.type || SES_TYPE_BY_STATUS[a.status] ||
                    (a.status >= 500 ? 'InternalFailure'
                        : 'BadRequestException');
                const status = a.status || SES_STATUS_BY_TYPE[type] || 400;
                return sesError(res, status, type, a.message ??
                                SES_DEFAULT_MESSAGE[type] ?? type, 'script');
            }
            const id = sesId();
            const transport = raw ? 'ses' : 'ses-simple';
            const now = countAccepted(transport, raw ? raw.length
                : Buffer.byteLength(b.Content.Simple.Body?.Text?.Data || '') +
                  Buffer.byteLength(b.Content.Simple.Body?.Html?.Data || ''));
            if (!state.quiet) {
                const base = {
                    time_ms: now, session: null, queue_id: id,
                    envelope: {mail_from: b.FromEmailAddress ||
                                   (checked ? checked._from : null),
                               rcpt_to: recipients},
                    auth_user: auth.keyId, auth_method: 'SIGV4',
                    secure: false, tls_protocol: null,
                };
                const ses = {
                    region: auth.region, key_id: auth.keyId,
                    signed_headers: auth.signedHeaders,
                    signature_verified: auth.verified,
                    configuration_set: b.ConfigurationSetName ?? null,
                    email_tags: b.EmailTags ?? null,
                    from_email_address: b.FromEmailAddress ?? null,
                    destination: b.Destination ?? null,
                };
                if (checked) {
                    record(transport, base, {...checked, ses});
                } else {
                    const s = b.Content.Simple;
                    const headers = {};
                    for (const x of s.Headers || [])
                        headers[x.Name.toLowerCase()] ??= x.Value;
                    const subject = s.Subject.Data;
                    const text = s.Body.Text ? s.Body.Text.Data : null;
                    const html = s.Body.Html ? s.Body.Html.Data : null;
                    record(transport, base, {
                        message_id: null, subject,
                        from: b.FromEmailAddress,
                        to: (d.ToAddresses || []).join(', ') || null,
                        cc: (d.CcAddresses || []).join(', ') || null,
                        reply_to: (b.ReplyToAddresses || []).join(', ') ||
                            null,
                        date: new Date(now).toISOString(), headers, text,
                        html, parts: [], attachments: [],
                        valid: subject !== '' && (!!text || !!html),
                        problems: subject === '' ? ['empty subject'] : [],
                        warnings: [], size: 0, raw: null, ses});
                }
            }
            const out = JSON.stringify({MessageId: id});
            send(res, 200, sesHeaders({
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(out)}), out);
        });
    };
    if (raw && !state.quiet)
        checkMessage(raw).then(go).catch((e) => {
            process.stderr.write(`fake_email: ${e.stack || e}\n`);
            sesError(res, 500, 'InternalFailure', String(e.message || e));
        });
    else if (raw && rcpts.length === 0)
        go({_recipients: recipientsOfHeaders(raw), _from: null});
    else
        go(null);
}

// Quiet mode, Raw without Destination: the addresses of To/Cc/Bcc, roughly.
function recipientsOfHeaders(raw) {
    const lines = raw.toString('latin1').split(/\r?\n/);
    const fields = parseHeaderLines(splitEntity(lines).head, null);
    const out = [];
    for (const f of fields)
        if (f.name === 'to' || f.name === 'cc' || f.name === 'bcc')
            for (const m of f.value.matchAll(/[^\s<>,;:"]+@[^\s<>,;:"]+/g))
                out.push(m[0]);
    return out;
}

// ---------------------------------------------------------------------------
// HTTP: control and SES

function summary() {
    const c = state.counters;
    const span = c.lastMs !== null ? (c.lastMs - c.firstMs) / 1000 : 0;
    return {
        messages: c.messages, by_transport: c.byTransport,
        failures: c.failures, sessions: c.sessions,
        connections: c.connections, auth_failures: c.authFailures,
        bytes: c.bytes, first_ms: c.firstMs, last_ms: c.lastMs,
        rate: c.messages >= 2 && span > 0
            ? Math.round((c.messages - 1) / span * 10) / 10 : null,
        records_kept: state.records.length,
        records_dropped: state.recordsDropped,
    };
}

function control(req, res, path, params, body) {
    const route = `${req.method} ${path}`;
    if (route === 'GET /_control/health')
        return sendJson(res, 200, {ok: true});
    if (route === 'GET /_control/summary')
        return sendJson(res, 200, summary());
    if (route === 'GET /_control/messages') {
        const since = Number(params.get('since') || 0);
        const to = params.get('to');
        const tr = params.get('transport');
        const toL = to ? to.toLowerCase() : null;
        const messages = state.records.filter((r) => r.seq > since &&
            (!tr || r.transport === tr) &&
            (!toL || r.envelope.rcpt_to.some((a) => a.toLowerCase() === toL)));
        return sendJson(res, 200, {messages});
    }
    if (route === 'GET /_control/failures') {
        const since = Number(params.get('since') || 0);
        return sendJson(res, 200, {failures: state.failureRecords.filter(
            (r) => r.seq > since)});
    }
    if (route === 'GET /_control/scripts')
        return sendJson(res, 200, {scripts: [...state.scripts.values()].map(
            (s) => ({key: s.key, address: s.address, answers: s.answers,
                     used: s.next}))});
    if (route === 'POST /_control/script') {
        let b;
        try {
            b = JSON.parse(body.toString('utf8'));
        } catch (e) {
            return sendJson(res, 400,
                            {error: `body is not JSON: ${e.message}`});
        }
        const why = validateScript(b);
        if (why)
            return sendJson(res, 400, {error: why});
        return sendJson(res, 200, setScript(b));
    }
    if (route === 'POST /_control/reset') {
        state.records = [];
        state.failureRecords = [];
        state.recordsDropped = 0;
        state.scripts.clear();
        state.counters = newCounters();
        state.epoch++;
        return sendJson(res, 200, {ok: true});
    }
    sendJson(res, 404, {error: `no control endpoint ${route}`});
}

function handler(req, res) {
    readBody(req, 4 * state.maxSize + (1 << 20), (body) => {
        const q = req.url.indexOf('?');
        const path = q < 0 ? req.url : req.url.slice(0, q);
        try {
            if (path.startsWith('/_control/'))
                return control(req, res, path,
                    new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1)),
                    body);
            if (path === SES_PATH && req.method === 'POST')
                return sesSend(req, res, body);
            const msg = `No operation for ${req.method} ${path}`;
            const out = JSON.stringify({message: msg});
            send(res, 404, sesHeaders({
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(out),
                'x-amzn-errortype': 'UnknownOperationException'}), out);
        } catch (e) {
            process.stderr.write(`fake_email: ${e.stack || e}\n`);
            sendJson(res, 500, {message: String(e.message || e)});
        }
    });
}

// ---------------------------------------------------------------------------
// Main

function usage(msg) {
    process.stderr.write(`fake_email: ${msg}\n` +
        'usage: fake_email.js --port N --smtp-port N [--host H] ' +
        '[--cert server.pem --key server.key [--smtps]] ' +
        '[--user U --password P] [--aws-key AKID --aws-secret SECRET ' +
        '[--aws-token T]] [--aws-region R] [--max-size BYTES] [--quiet]\n');
    process.exit(2);
}

function portOption(v, name) {
    const n = Number(v);
    if (v === undefined || !/^\d+$/.test(v) || n > 65535)
        usage(`--${name} is required (0..65535)`);
    return n;
}

function main() {
    const v = parseOptions(process.argv.slice(2), {
        port: {type: 'string'},
        'smtp-port': {type: 'string'},
        host: {type: 'string', default: '127.0.0.1'},
        cert: {type: 'string'},
        key: {type: 'string'},
        smtps: {type: 'boolean', default: false},
        user: {type: 'string'},
        password: {type: 'string'},
        'aws-key': {type: 'string'},
        'aws-secret': {type: 'string'},
        'aws-token': {type: 'string'},
        'aws-region': {type: 'string'},
        'max-size': {type: 'string', default: '10485760'},
        quiet: {type: 'boolean', default: false},
    }, usage);
    const port = portOption(v.port, 'port');
    const smtpPort = portOption(v['smtp-port'], 'smtp-port');
    if (!v.cert !== !v.key)
        usage('--cert and --key go together');
    if (v.smtps && !v.cert)
        usage('--smtps needs --cert and --key');
    if ((v.user === undefined) !== (v.password === undefined))
        usage('--user and --password go together');
    if (!v['aws-key'] !== !v['aws-secret'])
        usage('--aws-key and --aws-secret go together');
    if (v['aws-token'] !== undefined && !v['aws-key'])
        usage('--aws-token needs --aws-key and --aws-secret');
    const maxSize = Number(v['max-size']);
    if (!Number.isInteger(maxSize) || maxSize < 1)
        usage('--max-size must be an integer >= 1');
    let tls = {};
    if (v.cert) {
        try {
            tls = {cert: fs.readFileSync(v.cert), key: fs.readFileSync(v.key)};
        } catch (e) {
            usage(e.message);
        }
    }
    state.quiet = v.quiet;
    state.maxSize = maxSize;
    state.aws = {key: v['aws-key'] || null, secret: v['aws-secret'] || null,
                 token: v['aws-token'] ?? null,
                 region: v['aws-region'] || null};
    state.smtpUser = v.user !== undefined
        ? {user: v.user, password: v.password} : null;
    if (!state.quiet)
        simpleParser = require('mailparser').simpleParser;
    const {SMTPServer} = require('smtp-server');

    const disabled = [];
    if (!v.cert || v.smtps)
        disabled.push('STARTTLS');
    if (!state.smtpUser)
        disabled.push('AUTH');
    const smtp = new SMTPServer({
        ...tls,
        secure: v.smtps,
        name: 'fake-email.test',
        banner: 'Herald fake_email',
        size: maxSize,
        rejectOversized: true,
        authMethods: ['PLAIN', 'LOGIN'],
        authOptional: !state.smtpUser,
        authRequiredMessage: '5.7.0 Authentication required',
        allowInsecureAuth: true,
        disabledCommands: disabled,
        maxClients: 1000,
        disableReverseLookup: true,
        logger: false,
        socketTimeout: 120000,
        closeTimeout: 1000,
        onConnect, onAuth, onMailFrom, onRcptTo, onData,
    });
    smtp.on('error', (e) => {
        if (!state.quiet && e.code !== 'ECONNRESET' && e.code !== 'EPIPE')
            process.stderr.write(`fake_email: smtp: ${e.message}\n`);
    });
    smtp.server.once('error', (e) => {
        process.stderr.write(`fake_email: smtp: ${e.message}\n`);
        process.exit(1);
    });
    smtp.listen(smtpPort, v.host, () => {
        process.stdout.write(`smtp ${smtp.server.address().port}\n`);
        const server = http.createServer(handler);
        server.requestTimeout = 0;
        server.on('error', (e) => {
            process.stderr.write(`fake_email: ${e.message}\n`);
            process.exit(1);
        });
        listen(server, {port, host: v.host});
    });
}

if (require.main === module)
    main();

module.exports = {sigv4, walkMime, checkMessage: (raw) => {
    simpleParser ??= require('mailparser').simpleParser;
    return checkMessage(raw);
}};
