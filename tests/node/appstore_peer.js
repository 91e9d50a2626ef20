#!/usr/bin/env node
// The App Store side-by-side corpus: every signed file of
// ../shared/vectors/appstore, a notification minted for every Apple type and
// subtype of herald-subs' strategy table, Apple's model payloads, and the
// forgeries issue 15 names, each decided by Apple's own
// @apple/app-store-server-library SignedDataVerifier (online checks off, the
// settings of the case). tests/unit/test_subs_jws_peer.c runs this, decides
// every case again with subs_jws.c and compares.
//
//   node appstore_peer.js --vectors DIR --table FILE
//
// --vectors is ../shared/vectors/appstore; --table the strategy table as
// JSON ({"appstore": {type: {subtype: strategy}}}; subtype "" is none, "*"
// any other). Prints a JSON array of cases: {name, kind (notification,
// transaction, renewal), jws, root (file under --vectors), strict, env,
// app_apple_id, bundle, expect (subs_jws.h's code, "ok" when it must
// verify), differs (why Apple's verdict is expected to differ, or absent),
// apple (Apple's VerificationStatus name, "OK" when it verified),
// apple_type (the notificationType Apple decoded)}.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const {parseOptions} = require('./fake_common.js');
const {SignedDataVerifier, Environment, VerificationStatus} =
    require('@apple/app-store-server-library');

function usage(msg) {
    process.stderr.write(`appstore_peer: ${msg}\n` +
        'usage: appstore_peer.js --vectors DIR --table FILE\n');
    process.exit(2);
}

const opt = parseOptions(process.argv.slice(2), {
    vectors: {type: 'string'}, table: {type: 'string'},
}, usage);
if (!opt.vectors || !opt.table)
    usage('--vectors and --table are required');

const file = (rel) => fs.readFileSync(path.join(opt.vectors, rel));
const cert = (rel) => new crypto.X509Certificate(file(rel));
const der = (rel) => cert(rel).raw.toString('base64');
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const key = crypto.createPrivateKey(file('certs/testLeaf.key'));
const testChain = [der('certs/testLeaf.pem'), der('certs/testIntermediate.pem'),
                   der('certs/testCA.pem')];

function sign(header, payload, signer = key) {
    const input = b64url(JSON.stringify(header)) + '.' +
                  b64url(JSON.stringify(payload));
    const sig = crypto.sign('sha256', Buffer.from(input),
                            {key: signer, dsaEncoding: 'ieee-p1363'});
    return input + '.' + b64url(sig);
}
const es256 = (payload, x5c = testChain, signer = key) =>
    sign({alg: 'ES256', x5c}, payload, signer);

// Upstream's test settings: root testCA, strict off, Sandbox, com.example.
const SANDBOX = {root: 'certs/testCA.der', strict: false, env: 'Sandbox',
                 app_apple_id: 1234, bundle: 'com.example'};
const PRODUCTION = {...SANDBOX, env: 'Production'};
const REAL = {root: 'certs/AppleRootCA-G3.cer', strict: true,
              env: 'Production', app_apple_id: 1234, bundle: 'com.example'};

const cases = [];
function add(name, kind, jws, settings, expect, differs) {
    cases.push({name, kind, jws, ...settings, expect,
                ...(differs ? {differs} : {})});
}

// ---- the vectors, with the verdicts their SOURCE.md states ----------------
const vec = (rel) => file(rel).toString().trim();
add('vector testNotification', 'notification',
    vec('mock_signed_data/testNotification'), SANDBOX, 'ok');
add('vector testNotification in Production', 'notification',
    vec('mock_signed_data/testNotification'), PRODUCTION, 'environment');
add('vector testNotification in Production, another app', 'notification',
    vec('mock_signed_data/testNotification'),
    {...PRODUCTION, app_apple_id: 1235}, 'app_apple_id');
add('vector transactionInfo', 'transaction',
    vec('mock_signed_data/transactionInfo'), SANDBOX, 'ok');
add('vector transactionInfo, another bundle', 'transaction',
    vec('mock_signed_data/transactionInfo'),
    {...SANDBOX, bundle: 'com.example.x'}, 'bundle_id');
add('vector renewalInfo', 'renewal', vec('mock_signed_data/renewalInfo'),
    SANDBOX, 'ok');
add('vector wrongBundleId', 'notification',
    vec('mock_signed_data/wrongBundleId'), SANDBOX, 'bundle_id');
add('vector missingX5CHeaderClaim', 'notification',
    vec('mock_signed_data/missingX5CHeaderClaim'), SANDBOX, 'x5c');
add('literal a.b.c', 'notification', 'a.b.c', SANDBOX, 'bad_format');
add('literal a.b.c.d', 'notification', 'a.b.c.d', SANDBOX, 'bad_format');
add('vector xcode-signed-transaction in Production', 'transaction',
    vec('xcode/xcode-signed-transaction'), PRODUCTION, 'x5c');
add('vector xcode-signed-renewal-info in Production', 'renewal',
    vec('xcode/xcode-signed-renewal-info'), PRODUCTION, 'x5c');
add('vector testNotification against Apple Root CA - G3', 'notification',
    vec('mock_signed_data/testNotification'),
    {...SANDBOX, root: 'certs/AppleRootCA-G3.cer'}, 'chain');
add('vector testNotification with strict X.509', 'notification',
    vec('mock_signed_data/testNotification'), {...SANDBOX, strict: true},
    'chain', 'Apple\'s Node library has no strict X.509 mode (the Python ' +
    'one does: the test chain fails it, SOURCE.md)');

// ---- minted: every type and subtype of the table -------------------------
const DAY = 86400000;
const T0 = 1767225600000; // 2026-01-01, inside the test chain's validity
let serial = 0;
function notification(type, subtype, body = {}) {
    const n = ++serial;
    const tx = {originalTransactionId: '1000', transactionId: `1000-${n}`,
                productId: 'pro.monthly', bundleId: 'com.example',
                environment: 'Sandbox', purchaseDate: T0, expiresDate: T0 + 30 * DAY,
                signedDate: T0 + n, type: 'Auto-Renewable Subscription'};
    const ri = {originalTransactionId: '1000', autoRenewProductId: 'pro.monthly',
                environment: 'Sandbox', autoRenewStatus: 1, signedDate: T0 + n};
    const p = {notificationType: type,
               notificationUUID: crypto.randomUUID(), signedDate: T0 + n,
               version: '2.0',
               data: {bundleId: 'com.example', appAppleId: 1234,
                      environment: 'Sandbox',
                      signedTransactionInfo: es256(tx),
                      signedRenewalInfo: es256(ri)},
               ...body};
    if (subtype)
        p.subtype = subtype;
    return p;
}
const table = JSON.parse(fs.readFileSync(opt.table, 'utf8')).appstore;
for (const [type, subtypes] of Object.entries(table)) {
    for (const st of Object.keys(subtypes)) {
        const subtype = st === '*' ? 'SOME_FUTURE_SUBTYPE' : st;
        let body = {};
        if (type === 'RENEWAL_EXTENSION' && subtype === 'SUMMARY')
            body = {data: undefined,
                    summary: {requestIdentifier: crypto.randomUUID(),
                              environment: 'Sandbox', appAppleId: 1234,
                              bundleId: 'com.example', productId: 'pro.monthly',
                              storefrontCountryCodes: ['USA'],
                              succeededCount: 5, failedCount: 0}};
        if (type === 'EXTERNAL_PURCHASE_TOKEN')
            body = {data: undefined,
                    externalPurchaseToken: {
                        externalPurchaseId: 'SANDBOX_b2158121-7af9-49d4-9561-1f588205523e',
                        tokenCreationDate: T0, appAppleId: 1234,
                        bundleId: 'com.example'}};
        const p = notification(type, subtype, body);
        add(`minted ${type}/${subtype || '-'}`, 'notification', es256(p),
            SANDBOX, 'ok');
    }
}
add('minted transaction', 'transaction',
    es256({originalTransactionId: '1000', bundleId: 'com.example',
           environment: 'Sandbox', signedDate: T0}), SANDBOX, 'ok');
add('minted renewal info', 'renewal',
    es256({originalTransactionId: '1000', environment: 'Sandbox',
           signedDate: T0}), SANDBOX, 'ok');

// Apple's own model payloads (every file of models/), signed with the test
// leaf. Their environment is LocalTesting (refused by a Sandbox verifier)
// except the external purchase tokens, whose id says the environment.
for (const m of fs.readdirSync(path.join(opt.vectors, 'models')).sort()) {
    if (!m.endsWith('.json'))
        continue;
    const p = JSON.parse(file(`models/${m}`));
    const kind = p.notificationType ? 'notification'
        : /Renewal/.test(m) ? 'renewal' : 'transaction';
    const inner = p.data || p.summary || p.appData || p.externalPurchaseToken || p;
    const ept = p.externalPurchaseToken;
    const env = ept && !ept.externalPurchaseId.startsWith('SANDBOX')
        ? PRODUCTION : SANDBOX;
    add(`model ${m}`, kind, es256(p),
        {...env, app_apple_id: inner.appAppleId || 1234},
        inner.environment === 'LocalTesting' ? 'environment' : 'ok');
}

// ---- forgeries -------------------------------------------------------------
const good = notification('REFUND_REVERSED', undefined);
const goodJws = es256(good);
const [gh, gp] = goodJws.split('.');
add('forgery alg none', 'notification',
    b64url(JSON.stringify({alg: 'none', x5c: testChain})) + '.' + gp + '.',
    SANDBOX, 'alg');
{
    const leafPem = cert('certs/testLeaf.pem').publicKey.export(
        {type: 'spki', format: 'pem'});
    const input = b64url(JSON.stringify({alg: 'HS256', typ: 'JWT',
                                         x5c: testChain})) + '.' + gp;
    const mac = crypto.createHmac('sha256', leafPem).update(input).digest();
    add('forgery HS256 keyed with the leaf PEM', 'notification',
        input + '.' + b64url(mac), SANDBOX, 'alg');
}
add('forgery leaf without its OID', 'notification',
    es256(good, [der('certs/testInvalidOIDLeaf.pem'),
                 der('certs/testIntermediate.pem'), testChain[2]]),
    SANDBOX, 'oid');
add('forgery intermediate without its OID', 'notification',
    es256(good, [der('certs/testInvalidIntermediateLeaf.pem'),
                 der('certs/testInvalidOIDIntermediate.pem'), testChain[2]]),
    SANDBOX, 'oid');
add('forgery signed after the certificates expired', 'notification',
    es256({...good, signedDate: 2280946846000}), SANDBOX, 'chain');
add('forgery signed before the certificates were valid', 'notification',
    es256({...good, signedDate: 1577836800000}), SANDBOX, 'chain');
add('forgery tampered payload', 'notification',
    gh + '.' + b64url(JSON.stringify({...good, notificationType: 'REFUND'})) +
    '.' + goodJws.split('.')[2], SANDBOX, 'signature');
add('forgery another key under the test chain', 'notification',
    es256(good, testChain,
          crypto.generateKeyPairSync('ec', {namedCurve: 'P-256'}).privateKey),
    SANDBOX, 'signature');
add('forgery truncated chain', 'notification',
    es256(good, testChain.slice(0, 2)), SANDBOX, 'x5c');
add('forgery four certificates', 'notification',
    es256(good, [...testChain, testChain[2]]), SANDBOX, 'x5c');
add('forgery a certificate that is not one', 'notification',
    es256(good, [Buffer.from('abc').toString('base64'), testChain[1],
                 testChain[2]]), SANDBOX, 'x5c');
add('forgery Apple\'s real chain, signed with another key', 'notification',
    es256({...good, signedDate: 1761962975000,
           data: {...good.data, environment: 'Production'}},
          [der('real_apple_chain/REAL_APPLE_SIGNING_CERTIFICATE_BASE64_ENCODED.der'),
           der('real_apple_chain/REAL_APPLE_INTERMEDIATE_BASE64_ENCODED.der'),
           der('certs/AppleRootCA-G3.cer')]),
    REAL, 'signature');
add('forgery test chain in Production against Apple Root CA - G3',
    'notification',
    es256({...good, data: {...good.data, environment: 'Production'}}),
    REAL, 'chain');

// ---- Apple's verdicts ------------------------------------------------------
const ENV = {Sandbox: Environment.SANDBOX, Production: Environment.PRODUCTION};
const decode = {notification: 'verifyAndDecodeNotification',
                transaction: 'verifyAndDecodeTransaction',
                renewal: 'verifyAndDecodeRenewalInfo'};

(async () => {
    for (const c of cases) {
        const v = new SignedDataVerifier([cert(c.root).raw], false, ENV[c.env],
                                         c.bundle, c.app_apple_id);
        try {
            const p = await v[decode[c.kind]](c.jws);
            c.apple = 'OK';
            c.apple_type = p.notificationType || null;
        } catch (e) {
            c.apple = e && e.status !== undefined
                ? VerificationStatus[e.status] : `exception: ${e}`;
        }
    }
    process.stdout.write(JSON.stringify(cases, null, 1) + '\n');
})();
