// What the scripts of tests/node share; Node's built-in modules only (no npm
// packages):
//   - parseOptions: the command line of fake_sts.js, fake_sqs.js,
//     bench_sqs_limit.js and bench_sqs_consumer.js, through util.parseArgs;
//   - send, sendJson, readBody, listen: the HTTP plumbing of the two fakes
//     (fake_sts.js, fake_sqs.js).
'use strict';

const util = require('util');

// The options in argv, as util.parseArgs({options}) returns them ("default"
// included), accepting only what these scripts always have: "--name value"
// for a string option (the value may start with "-"), "--name" for a
// boolean one, each as often as wanted (the last one wins). Anything else
// calls usage(message), which must not return: "--name needs a value" when
// a string option comes last, else "unknown argument '<arg>'" (also for
// "--name=value", short options, positionals and "--").
function parseOptions(argv, options, usage) {
    const {values, tokens} = util.parseArgs({args: argv, options,
                                             strict: false, tokens: true});
    for (const t of tokens) {
        const o = t.kind === 'option' && Object.hasOwn(options, t.name) &&
            t.rawName === `--${t.name}` && !t.inlineValue ? options[t.name]
            : null;
        if (o && o.type === 'string' && t.value === undefined)
            usage(`${t.rawName} needs a value`);
        else if (!o)
            usage(`unknown argument '${argv[t.index]}'`);
    }
    return values;
}

// Answer res (once; not at all when the client went away).
function send(res, status, headers, body) {
    try {
        if (res.writableEnded || res.destroyed)
            return;
        res.writeHead(status, headers);
        res.end(body);
    } catch (e) {
        // The client went away: nothing to answer.
    }
}

function sendJson(res, status, obj) {
    const body = JSON.stringify(obj);
    send(res, status, {'content-type': 'application/json',
                       'content-length': Buffer.byteLength(body)}, body);
}

// Calls done(body, a Buffer) once the whole request has arrived; from the
// chunk that takes it past max bytes on, the rest is read but dropped
// (max Infinity: keep it all).
function readBody(req, max, done) {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
        size += c.length;
        if (size <= max)
            chunks.push(c);
    });
    req.on('error', () => {});
    req.on('end', () => done(Buffer.concat(chunks)));
}

// Listen on opts.port (0: a free one) and opts.host, keeping idle
// connections 60 s and dropping malformed ones; once it accepts
// connections, calls onListening(port) if given and prints
// "listening <port>" on stdout.
function listen(server, opts, onListening) {
    server.keepAliveTimeout = 60000;
    server.on('clientError', (e, socket) => socket.destroy());
    server.listen(opts.port, opts.host, () => {
        const port = server.address().port;
        if (onListening)
            onListening(port);
        process.stdout.write(`listening ${port}\n`);
    });
    return server;
}

module.exports = {parseOptions, send, sendJson, readBody, listen};
