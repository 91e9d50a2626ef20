/*
 * herald-chatgen sqs: send the scenario to an SQS queue, ten events per
 * SendMessageBatch, @a->concurrency calls in flight, through libherald's
 * own client. Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN (emulators take anything); endpoint:
 * AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL, else the queue's origin.
 * On a FIFO queue each event's group is its conversation, and its
 * deduplication id its index (a duplicate event is a distinct send).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatgen.h"
#include "hr_aws.h"
#include "hr_sqs.h"
#include "hr_time.h"

struct send_state {
    size_t in_flight;
    size_t failed;
    size_t sent;
};

struct batch {
    struct send_state *st;
    json_t *req; /* kept for a retry */
    size_t n;
    int tries;
    struct hr_sqs *sqs;
};

static void batch_done(void *opaque, const struct hr_sqs_reply *reply);

static int batch_start(struct batch *b)
{
    char errstr[256];

    b->tries++;
    if (hr_sqs_call(b->sqs, "SendMessageBatch", json_incref(b->req), 30000,
                    batch_done, b, errstr, sizeof(errstr))) {
        fprintf(stderr, "chatgen: %s\n", errstr);
        return -1;
    }
    b->st->in_flight++;
    return 0;
}

static void batch_done(void *opaque, const struct hr_sqs_reply *reply)
{
    struct batch *b = opaque;
    size_t failed = json_array_size(json_object_get(reply->body, "Failed"));

    b->st->in_flight--;
    if (reply->cls < 0 && !failed) {
        b->st->sent += b->n;
    } else if (b->tries < 5 && !batch_start(b)) {
        return; /* sent again whole: the emulator deduplicates nothing */
    } else {
        fprintf(stderr, "chatgen: SendMessageBatch failed: %s %s\n",
                reply->code, reply->message);
        b->st->failed += b->n;
    }
    json_decref(b->req);
    free(b);
}

int sqs_send(const struct gen_args *a, const struct chat_scenario *s)
{
    const char *url = a->queue_url;
    const char *key = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *endpoint = getenv("AWS_ENDPOINT_URL_SQS");
    const char *region = getenv("AWS_REGION");
    char origin[512], rbuf[64], errstr[256];
    struct send_state st = {0};
    size_t n = chat_count(s), conc = a->concurrency ? a->concurrency : 8;
    bool fifo;
    struct hr_aws *aws;
    struct hr_sqs *sqs;
    int64_t t0 = hr_time_mono_ms();
    const char *path;

    if (!url) {
        fprintf(stderr, "chatgen: --queue-url is required\n");
        return 1;
    }
    fifo = hr_sqs_queue_is_fifo(url);
    if (!endpoint)
        endpoint = getenv("AWS_ENDPOINT_URL");
    if (!endpoint) {
        path = strstr(url, "://");
        path = path ? strchr(path + 3, '/') : NULL;
        snprintf(origin, sizeof(origin), "%.*s",
                 (int)(path ? path - url : (long)strlen(url)), url);
        endpoint = origin;
    }
    if (!region)
        region = hr_sqs_queue_region(url, rbuf, sizeof(rbuf));
    aws = hr_aws_new_static(region ? region : "us-east-1", key ? key : "herald",
                            secret ? secret : "herald",
                            getenv("AWS_SESSION_TOKEN"));
    sqs = hr_sqs_new(aws, NULL, endpoint, errstr, sizeof(errstr));
    if (!sqs) {
        fprintf(stderr, "chatgen: %s\n", errstr);
        hr_aws_free(aws);
        return 1;
    }
    for (size_t i = 0; i < n; i += 10) {
        struct batch *b = calloc(1, sizeof(*b));
        json_t *entries = json_array();
        char id[32];

        if (!b)
            abort();
        for (size_t k = i; k < n && k < i + 10; k++) {
            const struct chat_event *ev = chat_event_at(s, k);
            json_t *e = json_object();

            snprintf(id, sizeof(id), "m%zu", k - i);
            json_object_set_new(e, "Id", json_string(id));
            json_object_set_new(e, "MessageBody",
                                json_stringn(ev->value, ev->len));
            if (fifo) {
                snprintf(id, sizeof(id), "%zu", k);
                json_object_set_new(e, "MessageGroupId", json_string(ev->key));
                json_object_set_new(e, "MessageDeduplicationId",
                                    json_string(id));
            }
            json_array_append_new(entries, e);
            b->n++;
        }
        b->st = &st;
        b->sqs = sqs;
        b->req = json_pack("{s:s, s:o}", "QueueUrl", url, "Entries", entries);
        while (st.in_flight >= conc)
            hr_sqs_run(sqs, 100);
        if (batch_start(b)) {
            st.failed += b->n;
            json_decref(b->req);
            free(b);
        }
    }
    while (st.in_flight)
        hr_sqs_run(sqs, 100);
    printf("sent %zu events to %s in %.2f s (%zu failed)\n", st.sent, url,
           (double)(hr_time_mono_ms() - t0) / 1000.0, st.failed);
    hr_sqs_free(sqs);
    hr_aws_free(aws);
    return st.failed ? 1 : 0;
}
