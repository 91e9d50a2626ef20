#!/usr/bin/env node
// The Node.js peer of herald-subs' App Store path, for its benchmark:
// Apple's own @apple/app-store-server-library verifying the same App Store
// Server Notifications V2 that herald-subs consumes.
//
//   node bench_subs_apple.js --notes notes.txt --root testCA.der
//        [--bundle com.example]
//
// --notes holds the lines of mint_appstore.js ("<key>|{"signedPayload":
// ...}"). One SignedDataVerifier([root DER], enableOnlineChecks false,
// Environment.SANDBOX, --bundle, appAppleId undefined): with online checks
// off the library checks the chain at the payload's signedDate and makes
// no OCSP call (it has no switch for strict X.509 checks; it checks the
// chain itself with node:crypto, which Apple's test chain passes). For
// each body, in turn: verifyAndDecodeNotification(signedPayload), then
// verifyAndDecodeTransaction(data.signedTransactionInfo) and
// verifyAndDecodeRenewalInfo(data.signedRenewalInfo), the three signature
// checks herald-subs makes (the library caches a verified chain's public
// key, as herald-subs may). A notification counts as verified when all
// three succeed.
//
// Prints exactly one JSON line on stdout at the end:
//   {"verified": n, "failed": f, "seconds": s, "rate": n/s, "rss_mb": m}
// timed from the first verification to the last; rss_mb is the process's
// peak RSS. Errors go to stderr (the first 5 failures in full, then a count
// by reason). Exit 0 when all were verified, 1 otherwise (the line is still
// printed), 2 on bad arguments.
'use strict';

const fs = require('fs');
const {performance} = require('perf_hooks');
const {parseOptions} = require('./fake_common');
const {SignedDataVerifier, Environment} = require('@apple/app-store-server-library');

function usage(msg) {
    process.stderr.write(`bench_subs_apple: ${msg}\n` +
        'usage: bench_subs_apple.js --notes notes.txt --root testCA.der ' +
        '[--bundle com.example]\n');
    process.exit(2);
}

function describe(e) {
    if (e && e.status !== undefined) {
        const cause = e.cause ? `: ${e.cause.message || e.cause}` : '';
        return `VerificationException status ${e.status}${cause}`;
    }
    return (e && e.message) || String(e);
}

async function main() {
    const o = parseOptions(process.argv.slice(2), {
        notes: {type: 'string'}, root: {type: 'string'},
        bundle: {type: 'string', default: 'com.example'},
    }, usage);
    if (!o.notes || !o.root)
        usage('--notes and --root are required');
    let bodies, root;
    try {
        bodies = fs.readFileSync(o.notes, 'utf8').split('\n').filter((l) => l)
            .map((l) => JSON.parse(l.slice(l.indexOf('|') + 1)).signedPayload);
        root = fs.readFileSync(o.root);
    } catch (e) {
        usage(e.message);
    }
    if (bodies.length === 0)
        usage(`${o.notes}: no notifications`);

    const verifier = new SignedDataVerifier([root], false, Environment.SANDBOX,
                                            o.bundle, undefined);
    let verified = 0, failed = 0, shown = 0;
    const reasons = new Map();
    const t0 = performance.now();
    for (const body of bodies) {
        try {
            const note = await verifier.verifyAndDecodeNotification(body);
            await verifier.verifyAndDecodeTransaction(note.data.signedTransactionInfo);
            await verifier.verifyAndDecodeRenewalInfo(note.data.signedRenewalInfo);
            verified++;
        } catch (e) {
            failed++;
            const r = describe(e);
            reasons.set(r, (reasons.get(r) || 0) + 1);
            if (shown++ < 5)
                process.stderr.write(`bench_subs_apple: ${r}\n${e && e.stack || ''}\n`);
        }
    }
    const seconds = (performance.now() - t0) / 1000;
    for (const [r, n] of reasons)
        process.stderr.write(`bench_subs_apple: ${n} x ${r}\n`);
    if (verified === 0)
        process.stderr.write('bench_subs_apple: the library verified none of the ' +
                             'notifications (see the reasons above)\n');
    const rssMb = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(JSON.stringify({
        verified, failed, seconds: Number(seconds.toFixed(3)),
        rate: Math.round(verified / seconds),
        rss_mb: Number(rssMb.toFixed(1)),
    }) + '\n');
    process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => {
    process.stderr.write(`bench_subs_apple: ${e.stack || e}\n`);
    process.exit(1);
});
