#!/usr/bin/env node
// A small fake Amazon SQS speaking the real JSON protocol, with AWS's FIFO
// batching, for Herald's tests; Node's built-in modules only (no npm
// packages), the command line and HTTP helpers shared with fake_sts.js in
// fake_common.js. fauxqs 1.9.2 returns at most one message per FIFO group per
// ReceiveMessage; real SQS returns several messages of one group, in order,
// in one receive, and this fake does the same.
//
//   node fake_sqs.js --port N [--host 127.0.0.1]
//
// Prints "listening <port>" on stdout once it accepts connections (--port 0
// picks a free port). HTTP/1.1 only. It runs until killed. State is in
// memory only.
//
// Protocol: POST / (any path outside /_control/ is accepted too) with
// Content-Type application/x-amz-json-1.0, X-Amz-Target
// AmazonSQS.<Action> and a JSON object body. Authorization and signatures
// are ignored. Success: 200, Content-Type application/x-amz-json-1.0,
// x-amzn-RequestId, a JSON object. Errors: Content-Type
// application/x-amz-json-1.0, {"__type": "com.amazonaws.sqs#<Code>",
// "message": ".."} and "x-amzn-query-error: <legacy code>;Sender":
//   QueueDoesNotExist      400 AWS.SimpleQueueService.NonExistentQueue
//   ReceiptHandleIsInvalid 404 ReceiptHandleIsInvalid (as in AWS's model)
//   MessageNotInflight     400 AWS.SimpleQueueService.MessageNotInflight
//   EmptyBatchRequest, TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct,
//   InvalidBatchEntryId, BatchRequestTooLong
//                          400 AWS.SimpleQueueService.<Code>
//   InvalidParameterValue, MissingParameter, InvalidAttributeName,
//   InvalidAction (unknown or missing X-Amz-Target)   400 <Code>
//   a body that is not a JSON object: 400 SerializationException.
// Queues are found by the last path segment of QueueUrl (so a bare name
// works too); their URL is http://<host>:<port>/000000000000/<name> (host
// 127.0.0.1 when --host is a wildcard), ARN arn:aws:sqs:us-east-1:
// 000000000000:<name>.
//
// Actions:
//   CreateQueue {QueueName, Attributes}: a name ending in ".fifo" makes a
//     FIFO queue (FifoQueue "true" on another name is refused). Attributes
//     used: VisibilityTimeout (default 30), ReceiveMessageWaitTimeSeconds
//     (default 0), ContentBasedDeduplication (FIFO); others are stored and
//     ignored. An existing name returns its URL, attributes unchanged.
//   GetQueueUrl {QueueName}, SetQueueAttributes {QueueUrl, Attributes},
//   PurgeQueue, DeleteQueue, ListQueues: the obvious.
//   SendMessage {QueueUrl, MessageBody, MessageAttributes, MessageGroupId,
//     MessageDeduplicationId, DelaySeconds} -> {MessageId, MD5OfMessageBody,
//     MD5OfMessageAttributes (when attributes), SequenceNumber (FIFO)}.
//   SendMessageBatch {QueueUrl, Entries [1..10 of {Id, ...as above}]} ->
//     {Successful [{Id, MessageId, MD5OfMessageBody, ...}], Failed [{Id,
//     SenderFault, Code, Message}]}; an invalid entry fails alone.
//     FIFO: MessageGroupId is required; the deduplication id is
//     MessageDeduplicationId, else SHA-256 of the body when
//     ContentBasedDeduplication is "true", else the send is refused. A
//     deduplication id seen in the last 5 minutes is accepted (answering
//     the first message's MessageId and SequenceNumber) but not enqueued.
//     DelaySeconds (0..900) only on standard queues. Messages <= 1 MiB
//     (body + attribute names, types and values), a batch as well.
//   ReceiveMessage {QueueUrl, MaxNumberOfMessages 1..10 (default 1),
//     WaitTimeSeconds 0..20 (default the queue's), VisibilityTimeout
//     0..43200 (default the queue's)} -> {Messages: [{MessageId,
//     ReceiptHandle (new for every receive), MD5OfBody, Body, Attributes
//     {SentTimestamp, ApproximateReceiveCount,
//     ApproximateFirstReceiveTimestamp, MessageGroupId, SequenceNumber and
//     MessageDeduplicationId (FIFO)}, MessageAttributes (as sent),
//     MD5OfMessageAttributes}]}, or {} when nothing is available.
//     Standard queue: the visible messages, oldest sent first.
//     FIFO queue: a group is available only when none of its messages is in
//     flight (received, not deleted, visibility not run out). The available
//     groups are taken in the order of their oldest visible message, and
//     from each group its visible messages in order, as many as still fit,
//     before the next group: with A1..A7 and B1..B3 queued, a receive of 10
//     returns A1..A7, B1..B3.
//     Every message returned is in flight for the visibility timeout, its
//     ApproximateReceiveCount goes up by one, and only its newest receipt
//     handle is valid from then on. Long poll (WaitTimeSeconds > 0): the
//     answer goes out as soon as anything is available (a send, or a
//     visibility running out: re-checked every 25 ms), else {} when the wait
//     is over; waiting receives are served in arrival order.
//   DeleteMessage {QueueUrl, ReceiptHandle} -> {};
//   DeleteMessageBatch {QueueUrl, Entries [{Id, ReceiptHandle}]} ->
//     {Successful [{Id}], Failed [...]}. A handle is valid only while it is
//     the newest of its message (even when the visibility ran out, as long
//     as nobody received the message again); otherwise ReceiptHandleIsInvalid
//     (SenderFault true). Deleting unlocks the group when the message was
//     the last of its group in flight.
//   ChangeMessageVisibility {QueueUrl, ReceiptHandle, VisibilityTimeout}
//   -> {}; ChangeMessageVisibilityBatch {QueueUrl, Entries [{Id,
//     ReceiptHandle, VisibilityTimeout}]} -> {Successful, Failed}: the
//     message becomes invisible for that many seconds from now (0: visible
//     at once; a FIFO group stays locked while another of its messages is
//     in flight). Not the newest handle: ReceiptHandleIsInvalid; the newest
//     one but the message is not in flight (its visibility ran out or was
//     set to 0): MessageNotInflight. Bad VisibilityTimeout:
//     InvalidParameterValue.
//   GetQueueAttributes {QueueUrl, AttributeNames} -> {Attributes}: All,
//     ApproximateNumberOfMessages (visible), ApproximateNumberOfMessages-
//     NotVisible (in flight), ApproximateNumberOfMessagesDelayed, QueueArn,
//     VisibilityTimeout, FifoQueue ("false" for standard queues),
//     ContentBasedDeduplication, ReceiveMessageWaitTimeSeconds, DelaySeconds,
//     MaximumMessageSize, MessageRetentionPeriod, CreatedTimestamp,
//     LastModifiedTimestamp; exact counts, every value a string.
//
// Deviations from AWS (on purpose): Attributes and MessageAttributes are
// always returned whatever AttributeNames / MessageSystemAttributeNames /
// MessageAttributeNames ask for; standard queues deliver oldest first (AWS
// is unordered, may short-poll a subset and may redeliver); retention,
// ReceiveRequestAttemptId, queue-level DelaySeconds, redrive (DLQ), the
// 12-hour visibility cap and in-flight limits are not emulated; the counts
// are exact at once.
//
// Control endpoints (JSON):
//   GET /_control/health           {"ok": true}
//   GET /_control/log?queue=<name> every API call received so far for that
//     queue (all queues without ?queue=, each entry then also has "queue"),
//     oldest first: {"time_ms" (received), "action", "entries" (n: entries
//     in a batch, 1 for a single call, messages returned for
//     ReceiveMessage), "message_ids" (SendMessage*: the MessageIds
//     answered; ReceiveMessage: the MessageIds returned, in order;
//     Delete*/ChangeMessageVisibility*: the messages the handles name, null
//     for an unreadable handle), "failed" (ids of failed batch entries'
//     messages), "status" (HTTP status answered, null while a long poll
//     waits), "done_ms" (when answered)}
//   GET /_control/queue?queue=<name> the queue's messages in send order:
//     {"message_id", "body", "group", "sequence", "state" ("visible" |
//      "inflight" | "delayed"), "receive_count", "visible_in_ms"}
//   POST /_control/reset           forget every queue and the log
'use strict';

const crypto = require('crypto');
const http = require('http');
const {parseOptions, send, sendJson, readBody, listen} =
    require('./fake_common');

const ACCOUNT = '000000000000';
const REGION = 'us-east-1';
const MAX_SIZE = 1048576;
const DEDUP_MS = 5 * 60 * 1000;
const TICK_MS = 25;

function usage(msg) {
    process.stderr.write(`fake_sqs: ${msg}\n` +
        'usage: fake_sqs.js --port N [--host H]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const v = parseOptions(argv, {
        port: {type: 'string'},
        host: {type: 'string', default: '127.0.0.1'},
    }, usage);
    const opts = {port: Number(v.port), host: v.host};
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
        usage('--port is required (0..65535)');
    return opts;
}

const opts = parseArgs(process.argv.slice(2));
let port = 0;                 // the one listened on
let queues = new Map();       // name -> queue
let log = [];                 // API calls, oldest first
let seqCounter = 0n;
let ticker = null;

// --- errors and answers -----------------------------------------------------

class SqsError extends Error {
    constructor(code, message, status = 400, legacy = code) {
        super(message);
        this.code = code;
        this.status = status;
        this.legacy = legacy;
    }
}

const LEGACY = {
    QueueDoesNotExist: 'AWS.SimpleQueueService.NonExistentQueue',
    MessageNotInflight: 'AWS.SimpleQueueService.MessageNotInflight',
    EmptyBatchRequest: 'AWS.SimpleQueueService.EmptyBatchRequest',
    TooManyEntriesInBatchRequest:
        'AWS.SimpleQueueService.TooManyEntriesInBatchRequest',
    BatchEntryIdsNotDistinct:
        'AWS.SimpleQueueService.BatchEntryIdsNotDistinct',
    InvalidBatchEntryId: 'AWS.SimpleQueueService.InvalidBatchEntryId',
    BatchRequestTooLong: 'AWS.SimpleQueueService.BatchRequestTooLong',
};

function err(code, message) {
    return new SqsError(code, message,
                        code === 'ReceiptHandleIsInvalid' ? 404 : 400,
                        LEGACY[code] || code);
}

function sendSqs(res, status, obj, extra = {}) {
    const body = JSON.stringify(obj);
    send(res, status, Object.assign({
        'content-type': 'application/x-amz-json-1.0',
        'content-length': Buffer.byteLength(body),
        'x-amzn-requestid': crypto.randomUUID()}, extra), body);
}

function sendError(res, e) {
    sendSqs(res, e.status, {__type: e.type || `com.amazonaws.sqs#${e.code}`,
                            message: e.message},
            {'x-amzn-query-error': `${e.legacy};Sender`});
}

// --- helpers ----------------------------------------------------------------

const md5 = (buf) => crypto.createHash('md5').update(buf).digest('hex');

// AWS's MD5OfMessageAttributes: names sorted; per attribute length-prefixed
// (4 bytes, big endian) name and DataType, a transport byte (1 string,
// 2 binary, 3 string list, 4 binary list) and the length-prefixed value(s).
function md5OfAttributes(attrs) {
    const parts = [];
    const lp = (b) => {
        const n = Buffer.alloc(4);
        n.writeUInt32BE(b.length);
        parts.push(n, b);
    };
    for (const name of Object.keys(attrs).sort()) {
        const a = attrs[name];
        lp(Buffer.from(name, 'utf8'));
        lp(Buffer.from(a.DataType, 'utf8'));
        if (a.StringValue !== undefined) {
            parts.push(Buffer.from([1]));
            lp(Buffer.from(a.StringValue, 'utf8'));
        } else if (a.BinaryValue !== undefined) {
            parts.push(Buffer.from([2]));
            lp(Buffer.from(a.BinaryValue, 'base64'));
        } else if (a.StringListValues) {
            parts.push(Buffer.from([3]));
            for (const v of a.StringListValues)
                lp(Buffer.from(v, 'utf8'));
        } else {
            parts.push(Buffer.from([4]));
            for (const v of a.BinaryListValues || [])
                lp(Buffer.from(v, 'base64'));
        }
    }
    return md5(Buffer.concat(parts));
}

function attrsSize(attrs) {
    let n = 0;
    for (const [name, a] of Object.entries(attrs)) {
        n += Buffer.byteLength(name) + Buffer.byteLength(a.DataType);
        if (a.StringValue !== undefined)
            n += Buffer.byteLength(a.StringValue);
        if (a.BinaryValue !== undefined)
            n += Buffer.from(a.BinaryValue, 'base64').length;
    }
    return n;
}

// An integer parameter in [lo, hi], or dflt when absent.
function intParam(obj, name, lo, hi, dflt) {
    const v = obj[name];
    if (v === undefined || v === null)
        return dflt;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (!Number.isInteger(n) || n < lo || n > hi)
        throw err('InvalidParameterValue',
                  `Value ${JSON.stringify(v)} for parameter ${name} is ` +
                  `invalid. Reason: must be between ${lo} and ${hi}.`);
    return n;
}

function need(obj, name) {
    const v = obj[name];
    if (typeof v !== 'string' || v === '')
        throw err('MissingParameter',
                  `The request must contain the parameter ${name}.`);
    return v;
}

function queueName(url) {
    return String(url).split('?')[0].replace(/\/+$/, '').split('/').pop();
}

function getQueue(body) {
    const name = queueName(need(body, 'QueueUrl'));
    const q = queues.get(name);
    if (!q)
        throw err('QueueDoesNotExist',
                  'The specified queue does not exist.');
    return q;
}

function urlOf(name) {
    const h = opts.host === '0.0.0.0' || opts.host === '::' ||
              opts.host === '' ? '127.0.0.1'
        : opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    return `http://${h}:${port}/${ACCOUNT}/${name}`;
}

// Receipt handles name their queue and message, so a stale one still tells
// which message it was about (for the log).
function newHandle(q, m) {
    return Buffer.from(`${q.name}\n${m.id}\n` +
                       crypto.randomBytes(24).toString('hex'))
        .toString('base64');
}

function handleMessageId(h) {
    if (typeof h !== 'string')
        return null;
    const parts = Buffer.from(h, 'base64').toString('utf8').split('\n');
    return parts.length === 3 ? parts[1] : null;
}

const inFlight = (m, now) => m.receives > 0 && m.visibleAt > now;
const visible = (m, now) => m.visibleAt <= now;

function batchEntries(body) {
    const entries = body.Entries;
    if (!Array.isArray(entries) || entries.length === 0)
        throw err('EmptyBatchRequest',
                  'There should be at least one entry in the request.');
    if (entries.length > 10)
        throw err('TooManyEntriesInBatchRequest',
                  `Maximum number of entries per request are 10. You have ` +
                  `sent ${entries.length}.`);
    const ids = new Set();
    for (const e of entries) {
        if (!e || typeof e !== 'object' || typeof e.Id !== 'string' ||
            !/^[A-Za-z0-9_-]{1,80}$/.test(e.Id))
            throw err('InvalidBatchEntryId',
                      'A batch entry id can only contain alphanumeric ' +
                      'characters, hyphens and underscores. It can be at ' +
                      'most 80 letters long.');
        if (ids.has(e.Id))
            throw err('BatchEntryIdsNotDistinct',
                      `Id ${e.Id} repeated.`);
        ids.add(e.Id);
    }
    return entries;
}

function failed(id, e) {
    return {Id: id, SenderFault: true, Code: e.code, Message: e.message};
}

// --- queues -----------------------------------------------------------------

function newQueue(name) {
    const now = Date.now();
    return {name, fifo: name.endsWith('.fifo'), attrs: {},
            vis: 30, wait: 0, cbd: false,
            created: now, modified: now,
            msgs: new Map(),          // id -> message, in send order
            dedup: new Map(),         // dedup id -> {until, id, seq}
            waiters: []};
}

function setAttributes(q, attrs) {
    if (attrs === undefined || attrs === null)
        return;
    if (typeof attrs !== 'object')
        throw err('InvalidParameterValue', 'Attributes must be a map.');
    const a = Object.assign({}, attrs);
    if (a.VisibilityTimeout !== undefined)
        q.vis = intParam(a, 'VisibilityTimeout', 0, 43200);
    if (a.ReceiveMessageWaitTimeSeconds !== undefined)
        q.wait = intParam(a, 'ReceiveMessageWaitTimeSeconds', 0, 20);
    if (a.ContentBasedDeduplication !== undefined)
        q.cbd = String(a.ContentBasedDeduplication) === 'true';
    if (a.FifoQueue !== undefined &&
        (String(a.FifoQueue) === 'true') !== q.fifo)
        throw err('InvalidParameterValue',
                  'The name of a FIFO queue must end with the .fifo suffix.');
    for (const [k, v] of Object.entries(a))
        q.attrs[k] = String(v);
    q.modified = Date.now();
}

function counts(q, now) {
    let vis = 0, inflight = 0, delayed = 0;
    for (const m of q.msgs.values()) {
        if (visible(m, now))
            vis++;
        else if (m.receives > 0)
            inflight++;
        else
            delayed++;
    }
    return {vis, inflight, delayed};
}

function queueAttributes(q, names) {
    const now = Date.now();
    const c = counts(q, now);
    const all = {
        ApproximateNumberOfMessages: c.vis,
        ApproximateNumberOfMessagesNotVisible: c.inflight,
        ApproximateNumberOfMessagesDelayed: c.delayed,
        QueueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:${q.name}`,
        VisibilityTimeout: q.vis,
        FifoQueue: q.fifo,
        ContentBasedDeduplication: q.cbd,
        ReceiveMessageWaitTimeSeconds: q.wait,
        DelaySeconds: 0,
        MaximumMessageSize: MAX_SIZE,
        MessageRetentionPeriod: 345600,
        CreatedTimestamp: Math.floor(q.created / 1000),
        LastModifiedTimestamp: Math.floor(q.modified / 1000),
    };
    const out = {};
    for (const n of names || []) {
        if (n === 'All') {
            for (const [k, v] of Object.entries(all))
                out[k] = String(v);
        } else if (Object.prototype.hasOwnProperty.call(all, n)) {
            out[n] = String(all[n]);
        } else {
            throw err('InvalidAttributeName', `Unknown Attribute ${n}.`);
        }
    }
    return out;
}

// --- sending ----------------------------------------------------------------

// Validate and enqueue one message; returns the answer's fields.
function sendOne(q, e) {
    if (typeof e.MessageBody !== 'string' || e.MessageBody === '')
        throw err('MissingParameter',
                  'The request must contain the parameter MessageBody.');
    const attrs = e.MessageAttributes || {};
    if (typeof attrs !== 'object' || Array.isArray(attrs))
        throw err('InvalidParameterValue', 'MessageAttributes must be a map.');
    if (Object.keys(attrs).length > 10)
        throw err('InvalidParameterValue',
                  'Number of message attributes exceeds the limit of 10.');
    for (const [n, a] of Object.entries(attrs)) {
        if (!a || typeof a.DataType !== 'string' ||
            (typeof a.StringValue !== 'string' &&
             typeof a.BinaryValue !== 'string' &&
             !Array.isArray(a.StringListValues) &&
             !Array.isArray(a.BinaryListValues)))
            throw err('InvalidParameterValue',
                      `Message attribute '${n}' must contain a DataType ` +
                      'and a value.');
    }
    const size = Buffer.byteLength(e.MessageBody) + attrsSize(attrs);
    if (size > MAX_SIZE)
        throw err('InvalidParameterValue',
                  'One or more parameters are invalid. Reason: Message must' +
                  ` be shorter than ${MAX_SIZE} bytes.`);
    const delay = intParam(e, 'DelaySeconds', 0, 900, 0);
    const group = e.MessageGroupId;
    let dedupId = e.MessageDeduplicationId;
    if (group !== undefined && (typeof group !== 'string' || !group ||
                                group.length > 128))
        throw err('InvalidParameterValue', 'Invalid MessageGroupId.');
    const now = Date.now();
    if (q.fifo) {
        if (group === undefined)
            throw err('MissingParameter',
                      'The request must contain the parameter ' +
                      'MessageGroupId.');
        if (delay > 0)
            throw err('InvalidParameterValue',
                      'Value ' + delay + ' for parameter DelaySeconds is ' +
                      'invalid. Reason: The request include parameter that ' +
                      'is not valid for this queue type.');
        if (dedupId === undefined && q.cbd)
            dedupId = crypto.createHash('sha256').update(e.MessageBody)
                .digest('hex');
        if (typeof dedupId !== 'string' || !dedupId || dedupId.length > 128)
            throw err('InvalidParameterValue',
                      'The queue should either have ' +
                      'ContentBasedDeduplication enabled or ' +
                      'MessageDeduplicationId provided explicitly');
    } else if (dedupId !== undefined) {
        throw err('InvalidParameterValue',
                  'Value ' + dedupId + ' for parameter ' +
                  'MessageDeduplicationId is invalid. Reason: The request ' +
                  'includes a parameter that is not valid for this queue ' +
                  'type.');
    }
    const hasAttrs = Object.keys(attrs).length > 0;
    const out = {MessageId: null, MD5OfMessageBody: md5(e.MessageBody)};
    if (hasAttrs)
        out.MD5OfMessageAttributes = md5OfAttributes(attrs);
    if (q.fifo) {
        const d = q.dedup.get(dedupId);
        if (d && d.until > now) {
            out.MessageId = d.id;
            out.SequenceNumber = d.seq;
            return out;
        }
    }
    const m = {id: crypto.randomUUID(), body: e.MessageBody,
               md5: out.MD5OfMessageBody,
               attrs: hasAttrs ? JSON.parse(JSON.stringify(attrs)) : null,
               attrsMd5: out.MD5OfMessageAttributes,
               group: group === undefined ? null : group,
               dedupId: q.fifo ? dedupId : null, seq: null,
               sent: now, receives: 0, firstReceive: 0,
               visibleAt: now + delay * 1000, handle: null};
    if (q.fifo) {
        m.seq = (10n ** 19n + ++seqCounter).toString();
        q.dedup.set(dedupId, {until: now + DEDUP_MS, id: m.id, seq: m.seq});
        out.SequenceNumber = m.seq;
    }
    q.msgs.set(m.id, m);
    out.MessageId = m.id;
    return out;
}

function sendMessage(q, body, rec) {
    const out = sendOne(q, body);
    rec.entries = 1;
    rec.message_ids.push(out.MessageId);
    serveWaiters(q);
    return out;
}

function sendMessageBatch(q, body, rec) {
    const entries = batchEntries(body);
    let total = 0;
    for (const e of entries)
        total += Buffer.byteLength(String(e.MessageBody ?? '')) +
            attrsSize(e.MessageAttributes || {});
    if (total > MAX_SIZE)
        throw err('BatchRequestTooLong',
                  `Batch requests cannot be longer than ${MAX_SIZE} bytes.`);
    const Successful = [], Failed = [];
    rec.entries = entries.length;
    for (const e of entries) {
        try {
            const out = sendOne(q, e);
            Successful.push(Object.assign({Id: e.Id}, out));
            rec.message_ids.push(out.MessageId);
        } catch (x) {
            if (!(x instanceof SqsError))
                throw x;
            Failed.push(failed(e.Id, x));
        }
    }
    serveWaiters(q);
    return {Successful, Failed};
}

// --- receiving --------------------------------------------------------------

// The messages a receive of max would get now (not yet taken).
function pick(q, max, now) {
    const out = [];
    if (!q.fifo) {
        for (const m of q.msgs.values()) {
            if (out.length >= max)
                break;
            if (visible(m, now))
                out.push(m);
        }
        return out;
    }
    const locked = new Set();
    for (const m of q.msgs.values())
        if (inFlight(m, now))
            locked.add(m.group);
    // Groups in the order of their oldest visible message.
    const groups = new Map();
    for (const m of q.msgs.values()) {
        if (locked.has(m.group) || !visible(m, now))
            continue;
        let g = groups.get(m.group);
        if (!g)
            groups.set(m.group, g = []);
        g.push(m);
    }
    for (const g of groups.values()) {
        for (const m of g) {
            if (out.length >= max)
                return out;
            out.push(m);
        }
    }
    return out;
}

function take(q, msgs, vis, now) {
    return msgs.map((m) => {
        m.receives++;
        if (!m.firstReceive)
            m.firstReceive = now;
        m.visibleAt = now + vis * 1000;
        m.handle = newHandle(q, m);
        const a = {SentTimestamp: String(m.sent),
                   ApproximateReceiveCount: String(m.receives),
                   ApproximateFirstReceiveTimestamp: String(m.firstReceive)};
        if (m.group !== null)
            a.MessageGroupId = m.group;
        if (q.fifo) {
            a.SequenceNumber = m.seq;
            a.MessageDeduplicationId = m.dedupId;
        }
        const out = {MessageId: m.id, ReceiptHandle: m.handle,
                     MD5OfBody: m.md5, Body: m.body, Attributes: a};
        if (m.attrs) {
            out.MessageAttributes = m.attrs;
            out.MD5OfMessageAttributes = m.attrsMd5;
        }
        return out;
    });
}

// Answer a receive with whatever is available; false when nothing is.
function tryReceive(q, w, force) {
    const now = Date.now();
    const msgs = take(q, pick(q, w.max, now), w.vis, now);
    if (!msgs.length && !force)
        return false;
    w.rec.entries = msgs.length;
    w.rec.message_ids = msgs.map(m => m.MessageId);
    w.rec.status = 200;
    w.rec.done_ms = now;
    sendSqs(w.res, 200, msgs.length ? {Messages: msgs} : {});
    return true;
}

function serveWaiters(q) {
    const now = Date.now();
    q.waiters = q.waiters.filter(w => !w.res.destroyed &&
                                  !tryReceive(q, w, now >= w.deadline));
    checkTicker();
}

function checkTicker() {
    let any = false;
    for (const q of queues.values())
        if (q.waiters.length)
            any = true;
    if (any && !ticker) {
        ticker = setInterval(() => {
            for (const q of queues.values())
                if (q.waiters.length)
                    serveWaiters(q);
        }, TICK_MS);
    } else if (!any && ticker) {
        clearInterval(ticker);
        ticker = null;
    }
}

// Returns undefined: the answer is sent by tryReceive.
function receiveMessage(q, body, rec, res) {
    const w = {res, rec,
               max: intParam(body, 'MaxNumberOfMessages', 1, 10, 1),
               vis: intParam(body, 'VisibilityTimeout', 0, 43200, q.vis)};
    const wait = intParam(body, 'WaitTimeSeconds', 0, 20, q.wait);
    rec.entries = 0;
    if (tryReceive(q, w, wait === 0))
        return;
    rec.status = null;
    w.deadline = Date.now() + wait * 1000;
    q.waiters.push(w);
    res.on('close', () => {
        if (rec.status !== null)
            return;
        rec.status = 499;               // the client went away
        rec.done_ms = Date.now();
        q.waiters = q.waiters.filter(x => x !== w);
        checkTicker();
    });
    checkTicker();
}

// Answer a waiting receive with nothing (its queue is going away).
function answerEmpty(w) {
    w.rec.status = 200;
    w.rec.done_ms = Date.now();
    sendSqs(w.res, 200, {});
}

// --- deleting and visibility ------------------------------------------------

// The message the newest handle h names, or throws ReceiptHandleIsInvalid.
function byHandle(q, h) {
    if (typeof h !== 'string' || h === '')
        throw err('MissingParameter',
                  'The request must contain the parameter ReceiptHandle.');
    const m = q.msgs.get(handleMessageId(h));
    if (!m || m.handle !== h)
        throw err('ReceiptHandleIsInvalid',
                  `The input receipt handle "${h}" is not a valid receipt ` +
                  'handle.');
    return m;
}

function deleteOne(q, e) {
    const m = byHandle(q, e.ReceiptHandle);
    q.msgs.delete(m.id);
}

function changeOne(q, e) {
    if (e.VisibilityTimeout === undefined || e.VisibilityTimeout === null)
        throw err('MissingParameter',
                  'The request must contain the parameter VisibilityTimeout.');
    const t = intParam(e, 'VisibilityTimeout', 0, 43200);
    const m = byHandle(q, e.ReceiptHandle);
    const now = Date.now();
    if (!inFlight(m, now))
        throw err('MessageNotInflight', 'Message does not exist or is not ' +
                  'available for visibility timeout change.');
    m.visibleAt = now + t * 1000;
}

function single(fn) {
    return (q, body, rec) => {
        rec.entries = 1;
        rec.message_ids.push(handleMessageId(body.ReceiptHandle));
        try {
            fn(q, body);
        } catch (x) {
            if (x instanceof SqsError)
                rec.failed.push(handleMessageId(body.ReceiptHandle));
            throw x;
        }
        serveWaiters(q);
        return {};
    };
}

function batch(fn) {
    return (q, body, rec) => {
        const entries = batchEntries(body);
        const Successful = [], Failed = [];
        rec.entries = entries.length;
        for (const e of entries) {
            const id = handleMessageId(e.ReceiptHandle);
            rec.message_ids.push(id);
            try {
                fn(q, e);
                Successful.push({Id: e.Id});
            } catch (x) {
                if (!(x instanceof SqsError))
                    throw x;
                Failed.push(failed(e.Id, x));
                rec.failed.push(id);
            }
        }
        serveWaiters(q);
        return {Successful, Failed};
    };
}

// --- queue administration ---------------------------------------------------

function createQueue(body, rec) {
    const name = need(body, 'QueueName');
    rec.queue = name;
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(name.replace(/\.fifo$/, '')) ||
        name.length > 80)
        throw err('InvalidParameterValue',
                  'Can only include alphanumeric characters, hyphens, or ' +
                  'underscores. 1 to 80 in length');
    if (!queues.has(name)) {
        const q = newQueue(name);
        setAttributes(q, body.Attributes);
        queues.set(name, q);
    }
    return {QueueUrl: urlOf(name)};
}

const ACTIONS = {
    SendMessage: sendMessage,
    SendMessageBatch: sendMessageBatch,
    ReceiveMessage: receiveMessage,
    DeleteMessage: single(deleteOne),
    DeleteMessageBatch: batch(deleteOne),
    ChangeMessageVisibility: single(changeOne),
    ChangeMessageVisibilityBatch: batch(changeOne),
    GetQueueAttributes: (q, body) =>
        ({Attributes: queueAttributes(q, body.AttributeNames)}),
    SetQueueAttributes: (q, body) => {
        setAttributes(q, body.Attributes);
        return {};
    },
    PurgeQueue: (q) => {
        q.msgs.clear();
        return {};
    },
    DeleteQueue: (q) => {
        q.waiters.forEach(answerEmpty);
        q.waiters = [];
        queues.delete(q.name);
        checkTicker();
        return {};
    },
};

function api(req, res, body) {
    const target = String(req.headers['x-amz-target'] || '');
    const action = target.startsWith('AmazonSQS.') ? target.slice(10) : '';
    const rec = {time_ms: Date.now(), queue: null, action: action || target,
                 entries: 0, message_ids: [], failed: [], status: null,
                 done_ms: null};
    log.push(rec);
    const fail = (e) => {
        rec.status = e.status;
        rec.done_ms = Date.now();
        sendError(res, e);
    };
    let json;
    try {
        json = JSON.parse(body.toString('utf8') || '{}');
    } catch (e) {
        json = null;
    }
    if (json && typeof json === 'object' && json.QueueUrl !== undefined)
        rec.queue = queueName(json.QueueUrl);
    else if (json && typeof json === 'object' &&
             typeof json.QueueName === 'string')
        rec.queue = json.QueueName;
    try {
        const ctype = String(req.headers['content-type'] || '');
        if (!ctype.startsWith('application/x-amz-json-1.0'))
            throw err('InvalidAction', 'Content-Type must be ' +
                      'application/x-amz-json-1.0 (only the JSON protocol ' +
                      'is served)');
        if (!json || typeof json !== 'object' || Array.isArray(json)) {
            const e = new SqsError('SerializationException',
                                   'the body is not a JSON object');
            e.type = 'com.amazon.coral.service#SerializationException';
            throw e;
        }
        let out;
        if (action === 'CreateQueue') {
            out = createQueue(json, rec);
        } else if (action === 'GetQueueUrl') {
            const name = need(json, 'QueueName');
            if (!queues.has(name))
                throw err('QueueDoesNotExist',
                          'The specified queue does not exist.');
            out = {QueueUrl: urlOf(name)};
        } else if (action === 'ListQueues') {
            const prefix = String(json.QueueNamePrefix || '');
            out = {QueueUrls: [...queues.keys()]
                .filter(n => n.startsWith(prefix)).map(urlOf)};
        } else if (Object.prototype.hasOwnProperty.call(ACTIONS, action)) {
            const q = getQueue(json);
            out = ACTIONS[action](q, json, rec, res);
        } else {
            throw err('InvalidAction',
                      `The action ${action || target || '(none)'} is not ` +
                      'valid for this endpoint.');
        }
        if (out !== undefined) {
            rec.status = 200;
            rec.done_ms = Date.now();
            sendSqs(res, 200, out);
        }
    } catch (e) {
        if (!(e instanceof SqsError)) {
            rec.status = 500;
            throw e;
        }
        fail(e);
    }
}

// --- control and HTTP -------------------------------------------------------

function queueDump(q) {
    const now = Date.now();
    return [...q.msgs.values()].map(m => ({
        message_id: m.id, body: m.body, group: m.group, sequence: m.seq,
        state: visible(m, now) ? 'visible'
            : m.receives > 0 ? 'inflight' : 'delayed',
        receive_count: m.receives,
        visible_in_ms: Math.max(0, m.visibleAt - now)}));
}

function control(req, res, path, params) {
    const name = params.get('queue');
    if (path === '/_control/health') {
        sendJson(res, 200, {ok: true});
    } else if (path === '/_control/log' && req.method === 'GET') {
        sendJson(res, 200, name === null ? log
            : log.filter(r => r.queue === name).map((r) => {
                const {queue, ...rest} = r;
                return rest;
            }));
    } else if (path === '/_control/queue' && req.method === 'GET') {
        const q = queues.get(name);
        if (!q)
            sendJson(res, 404, {error: `no queue ${name}`});
        else
            sendJson(res, 200, queueDump(q));
    } else if (path === '/_control/reset' && req.method === 'POST') {
        for (const q of queues.values())
            q.waiters.forEach(answerEmpty);
        queues = new Map();
        log = [];
        checkTicker();
        sendJson(res, 200, {ok: true});
    } else {
        sendJson(res, 404, {error: `no control endpoint ${path}`});
    }
}

function handler(req, res) {
    readBody(req, 4 * MAX_SIZE, (body) => {
        const u = new URL(req.url, 'http://x');
        try {
            if (u.pathname.startsWith('/_control/'))
                control(req, res, u.pathname, u.searchParams);
            else if (req.method === 'POST')
                api(req, res, body);
            else
                sendJson(res, 404, {error: `no route ${req.method} ` +
                                           u.pathname});
        } catch (e) {
            process.stderr.write(`fake_sqs: ${e.stack || e}\n`);
            sendSqs(res, 500, {__type: 'com.amazonaws.sqs#InternalFailure',
                               message: String(e.message || e)});
        }
    });
}

const server = http.createServer(handler);
server.requestTimeout = 0;
listen(server, opts, (p) => {
    port = p;
});
