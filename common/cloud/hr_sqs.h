/*
 * An asynchronous Amazon SQS client over the JSON protocol (POST / with
 * X-Amz-Target: AmazonSQS.<Action>, application/x-amz-json-1.0, SigV4
 * through hr_aws): calls are started with hr_sqs_call() and finish in
 * hr_sqs_run(), which drives every transfer of the client's libcurl multi
 * handle and calls each call's done() once. Long polls, deletes and
 * visibility changes thus overlap each other and the worker's own work.
 *
 * Errors are classified by their AWS code, not their status (SQS answers
 * RequestThrottled and OverLimit with 403, like bad credentials):
 * research/aws.md §1.3-1.4.
 *
 * Not thread-safe: one per loop thread.
 */
#ifndef HR_SQS_H
#define HR_SQS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "hr_compat.h"

struct hr_aws;
struct hr_sqs;
struct hr_tls;

/** How a call ended. */
struct hr_sqs_reply {
    long status;         /* HTTP status, 0 when no answer came */
    const char *code;    /* AWS error code ("QueueDoesNotExist"), "" if none */
    const char *message; /* AWS's or curl's message, "" on success */
    json_t *body;        /* the answer on success (borrowed for the call of
                            done(); {} when the answer was empty), else NULL */
    int cls;             /* -1 on success, else an enum hr_err_class */
};

/** Called once per call from hr_sqs_run() (or hr_sqs_free(): see there). */
typedef void hr_sqs_done_fn(void *opaque, const struct hr_sqs_reply *reply);

/**
 * A client of the SQS endpoint @endpoint (no trailing '/'), signing with
 * @aws and verifying TLS with @tls (both borrowed; they outlive the
 * client). Returns NULL with @errstr on failure.
 */
struct hr_sqs *hr_sqs_new(struct hr_aws *aws,
                          const struct hr_tls *tls,
                          const char *endpoint,
                          char *errstr,
                          size_t errstr_size);

/**
 * Start @action ("ReceiveMessage", ...) with the JSON @request (taken
 * over, whatever happens), to finish within @timeout_ms. @done(@opaque,
 * reply) is called from a later hr_sqs_run(). Returns 0, or -1 with
 * @errstr when it could not start (no credentials, out of memory): @done
 * is then never called.
 */
int hr_sqs_call(struct hr_sqs *sqs,
                const char *action,
                json_t *request,
                long timeout_ms,
                hr_sqs_done_fn *done,
                void *opaque,
                char *errstr,
                size_t errstr_size) HR_MUST_CHECK;

/**
 * Drive every call: send, receive, and call done() for each finished one.
 * Waits up to @wait_ms for a call to finish when none has yet (0: never
 * waits). Returns how many finished.
 */
int hr_sqs_run(struct hr_sqs *sqs, int wait_ms);

/** Calls started and not finished. */
size_t hr_sqs_in_flight(const struct hr_sqs *sqs);

/** Abort every unfinished call of @action (NULL: every call) without
 *  calling its done(). Returns how many were aborted. */
size_t hr_sqs_abort(struct hr_sqs *sqs, const char *action);

/** Abort what is unfinished (done() is not called) and free @sqs. NULL is
 *  a no-op. */
void hr_sqs_free(struct hr_sqs *sqs);

/**
 * The queue name of @queue_url (its last path segment) into @buf; NULL
 * when the URL has none.
 */
const char *hr_sqs_queue_name(const char *queue_url, char *buf, size_t size);

/**
 * The region named by @queue_url's host ("sqs.<region>.amazonaws.com",
 * "sqs.<region>.localhost:4566", or "<region>.queue.amazonaws.com") into
 * @buf; NULL when it names none.
 */
const char *hr_sqs_queue_region(const char *queue_url, char *buf, size_t size);

/** Whether @queue_url names a FIFO queue (its name ends in ".fifo"). */
bool hr_sqs_queue_is_fifo(const char *queue_url);

#endif
