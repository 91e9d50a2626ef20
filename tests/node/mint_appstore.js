#!/usr/bin/env node
// Mints App Store Server Notifications V2 the way Apple signs them (ES256
// JWS, x5c = leaf, intermediate, root) with Apple's own test chain from
// ../shared/vectors/appstore/certs (testLeaf.key signs; the chain verifies
// against testCA.pem with strict X.509 checks off). For the demo and the
// benchmark of herald-subs; Node's built-in modules only.
//
//   node mint_appstore.js --certs DIR [--count N] [--subscriptions M]
//        [--bundle com.example] [--start-ms T] [--life]
//
// Prints one line per notification on stdout: "<originalTransactionId>|
// {"signedPayload": "<JWS>"}" (the key and the body, for kcat -K '|').
// Each subscription i (originalTransactionId "sub-<i>", user
// "00000000-0000-4000-8000-<i>") gets, in turn, SUBSCRIBED/INITIAL_BUY,
// then DID_RENEW (as often as the count allows), and the last one of a
// subscription with --count = 3 * M is EXPIRED/VOLUNTARY; every
// notification carries a signed transaction and renewal info, so it costs
// three signature checks to verify. With --life, each subscription lives
// instead (the count is ignored): SUBSCRIBED/INITIAL_BUY, DID_RENEW,
// DID_FAIL_TO_RENEW (billing retry), DID_FAIL_TO_RENEW/GRACE_PERIOD,
// DID_RENEW/BILLING_RECOVERY, REFUND (the transaction revoked).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const {parseOptions} = require('./fake_common.js');

function usage(msg) {
    process.stderr.write(`mint_appstore: ${msg}\n` +
        'usage: mint_appstore.js --certs DIR [--count N] [--subscriptions M] ' +
        '[--bundle ID] [--start-ms T]\n');
    process.exit(2);
}

const opt = parseOptions(process.argv.slice(2), {
    certs: {type: 'string'}, count: {type: 'string', default: '3'},
    subscriptions: {type: 'string', default: '1'},
    bundle: {type: 'string', default: 'com.example'},
    'start-ms': {type: 'string'}, life: {type: 'boolean', default: false},
}, usage);
if (!opt.certs)
    usage('--certs is required');

const der = (name) => new crypto.X509Certificate(
    fs.readFileSync(path.join(opt.certs, name))).raw.toString('base64');
const x5c = [der('testLeaf.pem'), der('testIntermediate.pem'), der('testCA.pem')];
const key = crypto.createPrivateKey(fs.readFileSync(path.join(opt.certs, 'testLeaf.key')));
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const header = b64url(JSON.stringify({alg: 'ES256', x5c}));

function jws(payload) {
    const input = header + '.' + b64url(JSON.stringify(payload));
    const sig = crypto.sign('sha256', Buffer.from(input),
                            {key, dsaEncoding: 'ieee-p1363'});
    return input + '.' + b64url(sig);
}

const DAY = 86400000;
const subs = Math.max(1, Number(opt.subscriptions));
const LIFE = [['SUBSCRIBED', 'INITIAL_BUY'], ['DID_RENEW'],
              ['DID_FAIL_TO_RENEW'], ['DID_FAIL_TO_RENEW', 'GRACE_PERIOD'],
              ['DID_RENEW', 'BILLING_RECOVERY'], ['REFUND']];
const count = opt.life ? LIFE.length * subs : Number(opt.count);
const t0 = opt['start-ms'] ? Number(opt['start-ms']) : Date.now() - 10 * DAY;
const bundle = opt.bundle;
const perSub = Math.ceil(count / subs);

for (let n = 0; n < count; n++) {
    const i = n % subs, k = Math.floor(n / subs);
    const last = k === perSub - 1 && perSub >= 3;
    const [type, subtype] = opt.life ? LIFE[k]
        : k === 0 ? ['SUBSCRIBED', 'INITIAL_BUY']
        : last ? ['EXPIRED', 'VOLUNTARY'] : ['DID_RENEW', undefined];
    const signed = t0 + k * 60000;
    const expires = opt.life ? t0 + ({0: 1, 1: 2, 2: 2, 3: 2}[k] || 3) * 30 * DAY
        : last ? signed - 1000 : t0 + (k + 1) * 30 * DAY;
    const otid = `sub-${i}`;
    const user = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const uuid = crypto.randomUUID();
    const tx = {originalTransactionId: otid, transactionId: `${otid}-${k}`,
                productId: 'pro.monthly', bundleId: bundle, environment: 'Sandbox',
                purchaseDate: expires - 30 * DAY, expiresDate: expires,
                signedDate: signed, appAccountToken: user,
                type: 'Auto-Renewable Subscription'};
    if (type === 'REFUND') {
        tx.revocationDate = signed;
        tx.revocationReason = 0;
    }
    const ri = {originalTransactionId: otid, autoRenewProductId: 'pro.monthly',
                environment: 'Sandbox',
                autoRenewStatus: last || type === 'REFUND' ? 0 : 1,
                signedDate: signed};
    const note = {notificationType: type, notificationUUID: uuid,
                  signedDate: signed, version: '2.0',
                  data: {bundleId: bundle, environment: 'Sandbox',
                         signedTransactionInfo: jws(tx),
                         signedRenewalInfo: jws(ri)}};
    if (subtype)
        note.subtype = subtype;
    process.stdout.write(`${otid}|${JSON.stringify({signedPayload: jws(note)})}\n`);
}
