/*
 * Test helpers for Amazon SQS: the emulator fauxqs (npm, installed into
 * tests/node by scripts/deps.sh) started on a free port, and synchronous
 * calls to it through libherald's own client (cloud/hr_sqs.h), signed with
 * static test credentials (fauxqs does not check signatures).
 *
 * Same conventions as harness.h: main thread only, every wait has a
 * timeout, failures return -1 / NULL and print why on stderr.
 */
#ifndef HX_SQS_H
#define HX_SQS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct hx_sqs;

/** Whether node and tests/node/node_modules/fauxqs are there. When not,
 *  the test should print why and exit HX_SKIP. */
bool hx_sqs_available(void);

/**
 * Start fauxqs on a free port in a fresh temporary directory and wait
 * (15 s) until GET /health answers. Returns NULL on failure (its output
 * printed). Free with hx_sqs_free().
 */
struct hx_sqs *hx_sqs_start(void);

/**
 * Start another SQS server instead: `node @js --port 0`, which prints
 * "listening <port>" and answers GET /_control/health (for example
 * tests/node/fake_sqs.js, which batches FIFO groups as AWS does where
 * fauxqs 1.9.2 returns one message per group and receive). Same contract
 * as hx_sqs_start().
 */
struct hx_sqs *hx_sqs_start_js(const char *js);

/** "http://127.0.0.1:<port>" (AWS_ENDPOINT_URL_SQS), borrowed. */
const char *hx_sqs_endpoint(const struct hx_sqs *q);

/** The environment a worker needs to read a queue of @q, NULL-terminated
 *  "K=V" strings valid until hx_sqs_free(): HERALD_SOURCE=sqs, the
 *  endpoint, region and static credentials (the queue URL is the
 *  caller's). */
const char *const *hx_sqs_env(const struct hx_sqs *q);

/**
 * Call @action with @request (taken over) and wait for the answer (20 s).
 * Returns the answer (new reference), or NULL with the error printed.
 */
json_t *hx_sqs_call(struct hx_sqs *q, const char *action, json_t *request);

/**
 * Create queue @name (a ".fifo" name makes a FIFO queue with
 * content-based deduplication off) with extra attributes @attrs (a JSON
 * object of strings, borrowed; may be NULL). Returns its URL (malloc'd,
 * caller frees) or NULL.
 */
char *hx_sqs_create(struct hx_sqs *q, const char *name, json_t *attrs);

/**
 * Send @n bodies to @url, ten per SendMessageBatch. @groups (may be NULL)
 * gives each message's MessageGroupId (FIFO queues; the deduplication id is
 * then the message's index plus @dedup_base). @attrs (may be NULL) is a
 * MessageAttributes object (borrowed) given to every message. Returns 0 or
 * -1.
 */
int hx_sqs_send(struct hx_sqs *q,
                const char *url,
                const char *const *bodies,
                const char *const *groups,
                size_t n,
                size_t dedup_base,
                json_t *attrs);

/**
 * ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible of
 * @url (fauxqs: exact), or -1.
 */
long hx_sqs_depth(struct hx_sqs *q, const char *url, long *visible);

/**
 * Receive (and delete) up to @max messages of @url, waiting up to
 * @wait_ms in all; each body (and its MessageAttributes object) is
 * appended to @out as {"body": ..., "attrs": {...}}. Returns how many, or
 * -1.
 */
int hx_sqs_drain(
    struct hx_sqs *q, const char *url, int max, int wait_ms, json_t *out);

/** GET @path of the server (e.g. fake_sqs.js's "/_control/log?queue=q"):
 *  the JSON answer of a 200 (new reference), or NULL (printed). */
json_t *hx_sqs_control(struct hx_sqs *q, const char *path);

/** Kill the emulator, remove its directory, free @q. NULL is a no-op. */
void hx_sqs_free(struct hx_sqs *q);

#endif
