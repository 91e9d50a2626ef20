/*
 * herald-subs: the batch's parsing and App Store verification, spread over
 * HERALD_SUBS_VERIFY_THREADS threads (subs.h tells the story).
 *
 * Each thread takes the next item not taken yet and fills its struct
 * subs_pre: the value parsed, the store body found in it (bare, or the
 * data of its CloudEvent), and for an App Store body the signedPayload and
 * its signedTransactionInfo and signedRenewalInfo verified
 * (subs_jws_verify() is thread-safe; each JSON value is made and read by
 * one thread at a time). Nothing here touches an item, a metric, the log
 * or Redis: the loop thread then decides every item in order from what
 * was found (subs_handle()).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_event.h"
#include "hr_log.h"
#include "subs.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

/* Fewer items than this per thread are not worth a thread. */
#define ITEMS_PER_THREAD 8

/* Set @pre's poison reason. */
HR_PRINTF(2, 3) static void bad(struct subs_pre *pre, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(pre->bad, sizeof(pre->bad), fmt, ap);
    va_end(ap);
}

/* The store body of @item's value (the value, or the data of the
 * CloudEvent it is, when it has "specversion") into @pre. */
static void find_body(const struct hr_item *item, struct subs_pre *pre)
{
    json_error_t jerr;
    const json_t *body, *type;

    if (item->value_len > HR_EVENT_MAX_BYTES) {
        bad(pre, "payload too large: %zu bytes", item->value_len);
        return;
    }
    pre->root =
        json_loadb(item->value, item->value_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!pre->root || !json_is_object(pre->root)) {
        bad(pre, "invalid json: %s", pre->root ? "not an object" : jerr.text);
        return;
    }
    body = pre->root;
    if (json_object_get(body, "specversion")) {
        type = json_object_get(body, "type");
        if (!json_is_string(type) ||
            (strcmp(json_string_value(type), "appstore.notification") &&
             strcmp(json_string_value(type), "googleplay.notification"))) {
            bad(pre,
                "unexpected event type '%.100s' (herald-subs takes "
                "appstore.notification and googleplay.notification)",
                json_is_string(type) ? json_string_value(type) : "");
            return;
        }
        body = json_object_get(body, "data");
        if (!json_is_object(body)) {
            bad(pre, "data must be a JSON object");
            return;
        }
    }
    pre->body = body;
}

static void fill(const struct subs_state *st,
                 const struct hr_item *item,
                 struct subs_pre *pre)
{
    find_body(item, pre);
    if (pre->body &&
        json_is_string(json_object_get(pre->body, "signedPayload")))
        subs_apple_verify(st->verifier, pre->body, pre);
}

struct run {
    struct subs_state *st;
    struct hr_batch *batch;
    atomic_size_t next;
};

static void *work(void *arg)
{
    struct run *r = arg;
    size_t i;

    while ((i = atomic_fetch_add(&r->next, 1)) < r->batch->n) {
        if (r->batch->items[i].outcome == HR_OUT_PENDING)
            fill(r->st, &r->batch->items[i], &r->st->pre[i]);
    }
    return NULL;
}

void subs_pre_batch(struct subs_state *st, struct hr_batch *batch)
{
    struct run r = {st, batch, 0};
    size_t nthreads = batch->n / ITEMS_PER_THREAD;
    pthread_t threads[SUBS_VERIFY_THREADS_MAX];
    size_t started = 0;

    if (batch->n > st->pre_cap) {
        st->pre = realloc(st->pre, batch->n * sizeof(*st->pre));
        HR_ASSERT(st->pre);
        st->pre_cap = batch->n;
    }
    memset(st->pre, 0, batch->n * sizeof(*st->pre));
    st->npre = batch->n;
    if (nthreads > (size_t)st->set.verify_threads)
        nthreads = (size_t)st->set.verify_threads;
    /* the loop thread is one of them */
    for (; started + 1 < nthreads; started++) {
        if (pthread_create(&threads[started], NULL, work, &r)) {
            hr_log_warn("cannot start a verify thread; going on with fewer",
                        HR_LOG_I64("threads", (int64_t)started + 1));
            break;
        }
    }
    work(&r);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
}

void subs_pre_clear(struct subs_state *st)
{
    for (size_t i = 0; i < st->npre; i++) {
        struct subs_pre *pre = &st->pre[i];

        json_decref(pre->renewal);
        json_decref(pre->tx);
        json_decref(pre->payload);
        json_decref(pre->root);
    }
    st->npre = 0;
}
