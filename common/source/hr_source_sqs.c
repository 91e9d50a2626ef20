/*
 * The Amazon SQS source (HERALD_SOURCE=sqs): see hr_source.h for the
 * contract and the worker README for the operator's view.
 *
 * Receivers: HERALD_SQS_RECEIVERS long polls (ReceiveMessage, 10 messages,
 * HERALD_SQS_WAIT_SECONDS) stay in flight while fewer than a few batches'
 * worth of received messages wait; everything runs on the loop thread
 * through the asynchronous client (cloud/hr_sqs.h), driven by poll() and
 * serve().
 *
 * Every message received and not yet forgotten is held: waiting (ready) or
 * handed to the runtime (out). A held message's visibility is extended
 * before it runs out (ChangeMessageVisibilityBatch), so a batch paused for
 * a Redis outage keeps its messages for as long as the outage lasts.
 *
 * Acknowledgements are queued and sent ten at a time, at most
 * HR_SQS_OPS_MAX calls in flight: DeleteMessageBatch (HR_MSG_DONE),
 * ChangeMessageVisibilityBatch with a backoff (HR_MSG_AGAIN: SQS paces the
 * retry), SendMessageBatch to HERALD_SQS_DLQ_URL then a delete
 * (HR_MSG_DEAD). Transient failures are retried with backoff; a message
 * whose delete is lost comes back when its visibility runs out and meets
 * the handler's idempotency.
 *
 * FIFO queues (names ending in .fifo): at most one message of a
 * MessageGroupId is in the runtime at a time, so a group's messages take
 * effect in order. A group whose message is returned (a retry) gives back
 * its later messages at once: SQS keeps the group locked while the
 * returned one is invisible and delivers them after it. Other groups flow.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hr_arena.h"
#include "hr_aws.h"
#include "hr_base64.h"
#include "hr_conf.h"
#include "hr_hdrs.h"
#include "hr_list.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_msg.h"
#include "hr_retry.h"
#include "hr_sns.h"
#include "hr_source_impl.h"
#include "hr_sqs.h"
#include "hr_strmap.h"
#include "hr_time.h"
#include "hr_tls.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HR_SQS_BATCH    10 /* entries per batch call (the SQS limit) */
#define HR_SQS_OPS_MAX  16 /* acknowledgement calls in flight */
#define HR_SQS_OP_TRIES 6  /* attempts of one acknowledgement call */
#define HR_SQS_OP_MS    10000L
#define HR_SQS_ATTRS    10 /* message attributes per message */
#define HR_SQS_MSG_MAX  (1024 * 1024)
#define HR_SQS_VIS_MAX  43200 /* seconds */

enum envelope { ENV_AUTO, ENV_SNS, ENV_RAW };

struct attr {
    char *name;
    char *value; /* NUL-terminated copy */
    size_t len;
};

struct smsg {
    struct hr_msg msg; /* first: the runtime's pointer is this one's */
    char *body;        /* as received */
    size_t body_len;
    char *inner; /* an SNS envelope's Message: the value */
    char *receipt;
    char *id;
    char *group;
    char refused[160];
    struct attr *attrs;
    size_t nattrs, cap;
    int64_t visible_until;    /* monotonic ms */
    struct hr_list_node node; /* in ready or out */
};

#define SMSG(n) HR_LIST_ENTRY(n, struct smsg, node)

enum op_kind { OP_DELETE, OP_VISIBILITY, OP_SEND_DLQ };

/* One batch call of acknowledgements, kept until it succeeded or gave up. */
struct op {
    struct sqs_source *src;
    enum op_kind kind;
    size_t n;
    struct {
        char *receipt;
        int timeout_s; /* OP_VISIBILITY */
        json_t *entry; /* OP_SEND_DLQ: the SendMessageBatch entry */
    } e[HR_SQS_BATCH];
    unsigned tries;
    int64_t due;             /* monotonic ms */
    struct op *next;         /* queued */
    struct hr_list_node fly; /* in flight */
};

struct sqs_source {
    struct hr_source base; /* first */
    struct hr_tls *tls;
    struct hr_aws *aws;
    struct hr_sqs *sqs;
    char queue_url[512];
    char dlq_url[512];
    char queue_name[256];
    bool fifo, dlq_fifo;
    int receivers, wait_s, visibility_s;
    int64_t retry_base_ms, retry_max_ms, lag_interval_ms;
    enum envelope envelope;
    size_t ready_max;

    struct hr_list ready; /* received, not handed out */
    struct hr_list out;   /* handed to the runtime */
    int receives;         /* ReceiveMessage calls in flight */
    int64_t receive_after;
    unsigned receive_failures;

    /* acknowledgements being filled, waiting to be sent, and in flight */
    struct op *filling[3];
    struct op *queued, *queued_tail;
    struct hr_list flying; /* in flight: their calls own them until done */

    int64_t next_lag, next_beat;
    bool lag_in_flight;
    bool fatal, closing;
    bool ok_once; /* some call succeeded since the last failure */
    char not_ready[512];

    struct hr_metric *lag;
    struct hr_metric *errors;
    struct hr_metric *calls;
    struct hr_metric *messages;
};

static const struct hr_source_ops sqs_ops;

static void smsg_free(struct smsg *m)
{
    for (size_t i = 0; i < m->nattrs; i++) {
        free(m->attrs[i].name);
        free(m->attrs[i].value);
    }
    free(m->attrs);
    free(m->body);
    free(m->inner);
    free(m->receipt);
    free(m->id);
    free(m->group);
    hr_hdrs_free(m->msg.dead);
    free(m);
}

/* --- headers: message attributes ----------------------------------------- */

static const void *
smsg_header(const struct hr_msg *msg, const char *name, size_t *len)
{
    const struct smsg *m = (const struct smsg *)msg;

    for (size_t i = m->nattrs; i-- > 0;) {
        if (!strcmp(m->attrs[i].name, name)) {
            *len = m->attrs[i].len;
            return m->attrs[i].value;
        }
    }
    return NULL;
}

static int smsg_header_at(const struct hr_msg *msg,
                          size_t idx,
                          const char **name,
                          const void **value,
                          size_t *len)
{
    const struct smsg *m = (const struct smsg *)msg;

    if (idx >= m->nattrs)
        return -1;
    *name = m->attrs[idx].name;
    *value = m->attrs[idx].value;
    *len = m->attrs[idx].len;
    return 0;
}

static const struct hr_msg_ops smsg_ops = {smsg_header, smsg_header_at};

static void
attr_add(void *opaque, const char *name, const void *value, size_t len)
{
    struct smsg *m = opaque;
    struct attr *a;

    m->attrs = hr_grow(m->attrs, &m->cap, m->nattrs + 1, sizeof(*m->attrs), 4);
    a = &m->attrs[m->nattrs++];
    a->name = strdup(name);
    a->value = malloc(len + 1);
    HR_ASSERT(a->name && a->value);
    if (len)
        memcpy(a->value, value, len);
    a->value[len] = '\0';
    a->len = len;
}

/* --- settings --------------------------------------------------------------
 */

/* The queue URL's shape: http(s)://host/<account>/<name>. */
static void check_url(struct hr_conf *cfg, const char *name, const char *url)
{
    char buf[256];

    if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7))
        hr_conf_add_error(cfg, "%s: '%s' is not an http(s) URL", name, url);
    else if (!hr_sqs_queue_name(url, buf, sizeof(buf)) ||
             strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789-_.") != strlen(buf) ||
             strlen(buf) > 80)
        hr_conf_add_error(
            cfg,
            "%s: '%s' does not end in a queue name "
            "(https://sqs.<region>.amazonaws.com/<account>/<name>)",
            name, url);
}

void hr_source_sqs_validate(struct hr_conf *cfg)
{
    const char *url = hr_conf_str(cfg, "HERALD_SQS_QUEUE_URL");
    const char *dlq = hr_conf_str(cfg, "HERALD_SQS_DLQ_URL");
    char region[64];

    if (!url) {
        hr_conf_add_error(cfg, "HERALD_SQS_QUEUE_URL: required with the sqs "
                               "source");
    } else {
        check_url(cfg, "HERALD_SQS_QUEUE_URL", url);
    }
    if (dlq)
        check_url(cfg, "HERALD_SQS_DLQ_URL", dlq);
    if (url && dlq && !strcmp(url, dlq))
        hr_conf_add_error(cfg, "HERALD_SQS_DLQ_URL: is the input queue");
    if (url && dlq && hr_sqs_queue_is_fifo(url) != hr_sqs_queue_is_fifo(dlq))
        hr_conf_add_error(cfg, "HERALD_SQS_DLQ_URL: a FIFO queue's dead-letter "
                               "queue must be FIFO too, and a standard "
                               "queue's standard");
    if (hr_conf_int(cfg, "HERALD_SQS_RETRY_BASE_MS") >
        hr_conf_int(cfg, "HERALD_SQS_RETRY_MAX_MS"))
        hr_conf_add_error(cfg, "HERALD_SQS_RETRY_BASE_MS: above "
                               "HERALD_SQS_RETRY_MAX_MS");
    hr_aws_validate(
        cfg, url ? hr_sqs_queue_region(url, region, sizeof(region)) : NULL,
        "the sqs source");
}

/* --- calls ------------------------------------------------------------------
 */

static void count_call(struct sqs_source *src,
                       const char *action,
                       const struct hr_sqs_reply *reply)
{
    hr_metric_add(src->calls,
                  (const char *[]){action, reply->cls < 0
                                               ? "ok"
                                               : hr_err_class_name(reply->cls)},
                  1);
    if (reply->cls >= 0)
        hr_metric_add(src->errors, NULL, 1);
    if (reply->cls < 0)
        src->ok_once = true;
}

static void failed_call(struct sqs_source *src,
                        const char *action,
                        const struct hr_sqs_reply *reply)
{
    if (!strcmp(reply->code, "ExpiredToken") ||
        !strcmp(reply->code, "ExpiredTokenException"))
        hr_aws_expire(src->aws);
    hr_log_warn("sqs call failed", HR_LOG_STR("action", action),
                HR_LOG_I64("http_status", reply->status),
                HR_LOG_STR("code", reply->code),
                HR_LOG_STR("class", hr_err_class_name(reply->cls)),
                HR_LOG_STR("err", reply->message));
}

static json_t *request_for(const char *queue_url)
{
    json_t *req = json_object();

    json_object_set_new(req, "QueueUrl", json_string(queue_url));
    return req;
}

/* Start a call; a call that cannot start is counted as failed now. */
static int call(struct sqs_source *src,
                const char *action,
                json_t *req,
                long timeout_ms,
                hr_sqs_done_fn *done,
                void *opaque)
{
    char errstr[256];

    if (hr_sqs_call(src->sqs, action, req, timeout_ms, done, opaque, errstr,
                    sizeof(errstr))) {
        hr_metric_add(src->errors, NULL, 1);
        snprintf(src->not_ready, sizeof(src->not_ready), "sqs: %s", errstr);
        return -1;
    }
    return 0;
}

/* --- receiving ----------------------------------------------------------- */

/* Build a held message from one entry of a ReceiveMessage answer. */
static struct smsg *smsg_from(struct sqs_source *src, json_t *j)
{
    const char *id = json_string_value(json_object_get(j, "MessageId"));
    const char *receipt =
        json_string_value(json_object_get(j, "ReceiptHandle"));
    json_t *body = json_object_get(j, "Body");
    json_t *sys = json_object_get(j, "Attributes");
    json_t *attrs = json_object_get(j, "MessageAttributes");
    const char *group =
        json_string_value(json_object_get(sys, "MessageGroupId"));
    const char *v, *name;
    struct smsg *m;
    json_t *a;

    if (!id || !receipt || !json_is_string(body))
        return NULL;
    m = calloc(1, sizeof(*m));
    HR_ASSERT(m);
    m->id = strdup(id);
    m->receipt = strdup(receipt);
    m->body_len = json_string_length(body);
    m->body = malloc(m->body_len + 1);
    HR_ASSERT(m->id && m->receipt && m->body);
    memcpy(m->body, json_string_value(body), m->body_len + 1);
    if (group) {
        m->group = strdup(group);
        HR_ASSERT(m->group);
    }
    m->msg.topic = src->queue_name;
    m->msg.partition = 0;
    m->msg.offset = -1;
    m->msg.id = m->id;
    m->msg.group = m->group;
    m->msg.key = m->group;
    m->msg.key_len = m->group ? strlen(m->group) : 0;
    m->msg.ops = &smsg_ops;
    m->msg.value = m->body;
    m->msg.value_len = m->body_len;
    v = json_string_value(json_object_get(sys, "SentTimestamp"));
    m->msg.timestamp_ms = v ? strtoll(v, NULL, 10) : 0;
    v = json_string_value(json_object_get(sys, "ApproximateReceiveCount"));
    m->msg.attempt = v ? (int32_t)strtol(v, NULL, 10) : 1;
    json_object_foreach(attrs, name, a)
    {
        json_t *s = json_object_get(a, "StringValue");
        json_t *b = json_object_get(a, "BinaryValue");

        if (json_is_string(s)) {
            attr_add(m, name, json_string_value(s), json_string_length(s));
        } else if (json_is_string(b)) {
            size_t len;
            void *bin = hr_base64_decode(json_string_value(b),
                                         json_string_length(b), &len);

            if (bin)
                attr_add(m, name, bin, len);
            free(bin);
        }
    }
    if (src->envelope != ENV_RAW) {
        size_t len = 0;

        switch (hr_sns_unwrap(m->body, m->body_len, &m->inner, &len, attr_add,
                              m, m->refused, sizeof(m->refused))) {
        case HR_SNS_MESSAGE:
            m->msg.value = m->inner;
            m->msg.value_len = len;
            break;
        case HR_SNS_REFUSED:
            m->msg.refused = m->refused;
            break;
        case HR_SNS_NOT_ENVELOPE:
            if (src->envelope == ENV_SNS) {
                snprintf(m->refused, sizeof(m->refused),
                         "not an sns notification (HERALD_SQS_ENVELOPE=sns)");
                m->msg.refused = m->refused;
            }
            break;
        }
    }
    return m;
}

static void
give_back(struct sqs_source *src, const char *receipt, int timeout_s);

static void receive_done(void *opaque, const struct hr_sqs_reply *reply)
{
    struct sqs_source *src = opaque;
    int64_t now = hr_time_mono_ms();
    json_t *msgs, *j;
    size_t i;

    src->receives--;
    count_call(src, "ReceiveMessage", reply);
    if (reply->cls >= 0) {
        failed_call(src, "ReceiveMessage", reply);
        snprintf(src->not_ready, sizeof(src->not_ready),
                 "sqs receive failed: %s%s%s", reply->code,
                 reply->code[0] ? ": " : "", reply->message);
        if (!strcmp(reply->code, "QueueDoesNotExist") ||
            !strcmp(reply->code, "AWS.SimpleQueueService.NonExistentQueue")) {
            hr_log_error("sqs queue does not exist",
                         HR_LOG_STR("queue", src->queue_url));
            src->fatal = true;
        }
        src->receive_after = now +
                             hr_retry_backoff_ms(src->receive_failures++, 200,
                                                 20000, hr_retry_random()) +
                             100;
        return;
    }
    src->receive_failures = 0;
    src->not_ready[0] = '\0';
    msgs = json_object_get(reply->body, "Messages");
    json_array_foreach(msgs, i, j)
    {
        struct smsg *m = smsg_from(src, j);

        if (!m) {
            hr_metric_add(src->errors, NULL, 1);
            hr_log_warn("sqs message without id, receipt or body");
            continue;
        }
        m->visible_until = now + (int64_t)src->visibility_s * 1000;
        if (src->closing) {
            give_back(src, m->receipt, 0);
            smsg_free(m);
            continue;
        }
        hr_list_push(&src->ready, &m->node);
    }
}

static void receive_more(struct sqs_source *src)
{
    int64_t now = hr_time_mono_ms();

    while (!src->closing && !src->fatal && src->receives < src->receivers &&
           src->ready.n + (size_t)src->receives * HR_SQS_BATCH <
               src->ready_max &&
           now >= src->receive_after) {
        json_t *req = request_for(src->queue_url);

        json_object_set_new(req, "MaxNumberOfMessages",
                            json_integer(HR_SQS_BATCH));
        json_object_set_new(req, "WaitTimeSeconds", json_integer(src->wait_s));
        json_object_set_new(req, "VisibilityTimeout",
                            json_integer(src->visibility_s));
        json_object_set_new(req, "MessageAttributeNames",
                            json_pack("[s]", "All"));
        json_object_set_new(req, "MessageSystemAttributeNames",
                            json_pack("[s]", "All"));
        /* the older name, for emulators that predate the new one */
        json_object_set_new(req, "AttributeNames", json_pack("[s]", "All"));
        if (call(src, "ReceiveMessage", req, (long)(src->wait_s + 10) * 1000,
                 receive_done, src)) {
            src->receive_after = now + 1000;
            return;
        }
        src->receives++;
    }
}

/* --- acknowledgements ------------------------------------------------------
 */

static const char *op_action(enum op_kind kind)
{
    switch (kind) {
    case OP_DELETE:
        return "DeleteMessageBatch";
    case OP_VISIBILITY:
        return "ChangeMessageVisibilityBatch";
    default:
        return "SendMessageBatch";
    }
}

static void op_free(struct op *op)
{
    for (size_t i = 0; i < op->n; i++) {
        free(op->e[i].receipt);
        json_decref(op->e[i].entry);
    }
    free(op);
}

static void op_queue(struct sqs_source *src, struct op *op)
{
    op->next = NULL;
    if (src->queued_tail)
        src->queued_tail->next = op;
    else
        src->queued = op;
    src->queued_tail = op;
}

/* Close the batch being filled for @kind (it goes out at the next send). */
static void op_seal(struct sqs_source *src, enum op_kind kind)
{
    struct op *op = src->filling[kind];

    if (!op)
        return;
    src->filling[kind] = NULL;
    op->due = 0;
    op_queue(src, op);
}

/* Add an entry (@receipt copied, @entry taken) for @kind. */
static void op_add(struct sqs_source *src,
                   enum op_kind kind,
                   const char *receipt,
                   int timeout_s,
                   json_t *entry)
{
    struct op *op = src->filling[kind];

    if (!op) {
        op = calloc(1, sizeof(*op));
        HR_ASSERT(op);
        op->src = src;
        op->kind = kind;
        src->filling[kind] = op;
    }
    op->e[op->n].receipt = strdup(receipt);
    HR_ASSERT(op->e[op->n].receipt);
    op->e[op->n].timeout_s = timeout_s;
    op->e[op->n].entry = entry;
    if (++op->n == HR_SQS_BATCH)
        op_seal(src, kind);
}

static void
give_back(struct sqs_source *src, const char *receipt, int timeout_s)
{
    op_add(src, OP_VISIBILITY, receipt, timeout_s, NULL);
}

static void op_done(void *opaque, const struct hr_sqs_reply *reply);

static json_t *op_request(const struct sqs_source *src, const struct op *op)
{
    json_t *req =
        request_for(op->kind == OP_SEND_DLQ ? src->dlq_url : src->queue_url);
    json_t *entries = json_array();
    char id[24];

    for (size_t i = 0; i < op->n; i++) {
        json_t *e;

        snprintf(id, sizeof(id), "m%zu", i);
        if (op->kind == OP_SEND_DLQ) {
            e = json_deep_copy(op->e[i].entry);
            json_object_set_new(e, "Id", json_string(id));
        } else {
            e = json_pack("{s:s, s:s}", "Id", id, "ReceiptHandle",
                          op->e[i].receipt);
            if (op->kind == OP_VISIBILITY)
                json_object_set_new(e, "VisibilityTimeout",
                                    json_integer(op->e[i].timeout_s));
        }
        json_array_append_new(entries, e);
    }
    json_object_set_new(req, "Entries", entries);
    return req;
}

/* Send what is queued and due, at most HR_SQS_OPS_MAX calls in flight. */
static void ops_send(struct sqs_source *src)
{
    int64_t now = hr_time_mono_ms();
    struct op **pp = &src->queued, *prev = NULL;

    while (*pp && src->flying.n < HR_SQS_OPS_MAX) {
        struct op *op = *pp;

        if (op->due > now) {
            prev = op;
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        if (src->queued_tail == op)
            src->queued_tail = prev;
        op->tries++;
        if (call(src, op_action(op->kind), op_request(src, op), HR_SQS_OP_MS,
                 op_done, op)) {
            /* no credentials now: try again shortly */
            op->due = now + 1000;
            op_queue(src, op);
            return;
        }
        hr_list_push(&src->flying, &op->fly);
    }
}

/* The DLQ took these: delete them from the queue. */
static void dlq_sent(struct sqs_source *src, struct op *op, json_t *ok)
{
    size_t i;
    json_t *s;

    json_array_foreach(ok, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "Id"));
        size_t k =
            id && id[0] == 'm' ? strtoul(id + 1, NULL, 10) : HR_SQS_BATCH;

        if (k < op->n && op->e[k].receipt) {
            hr_metric_add(src->messages, (const char *[]){"dead_lettered"}, 1);
            op_add(src, OP_DELETE, op->e[k].receipt, 0, NULL);
            free(op->e[k].receipt);
            op->e[k].receipt = NULL; /* done with */
        }
    }
}

/* What failed of a batch call: retryable entries stay in @op (compacted),
 * the others are dropped. Returns how many stay. */
static size_t
op_keep_failed(struct sqs_source *src, struct op *op, json_t *failed)
{
    bool keep[HR_SQS_BATCH] = {false};
    size_t i, n = 0;
    json_t *f;

    json_array_foreach(failed, i, f)
    {
        const char *id = json_string_value(json_object_get(f, "Id"));
        const char *code = json_string_value(json_object_get(f, "Code"));
        size_t k =
            id && id[0] == 'm' ? strtoul(id + 1, NULL, 10) : HR_SQS_BATCH;

        if (k >= op->n)
            continue;
        /* the sender's fault (an expired or invalid receipt handle) is not
         * fixed by trying again: the message simply comes back */
        keep[k] = !json_is_true(json_object_get(f, "SenderFault"));
        hr_log_write(
            keep[k] ? HR_LOG_WARN : HR_LOG_INFO, "sqs batch entry failed",
            HR_LOG_STR("action", op_action(op->kind)), HR_LOG_STR("code", code),
            HR_LOG_STR("err", json_string_value(json_object_get(f, "Message"))),
            HR_LOG_BOOL("retried", keep[k]), HR_LOG_END);
        hr_metric_add(src->errors, NULL, 1);
    }
    for (i = 0; i < op->n; i++) {
        if (keep[i] && op->e[i].receipt) {
            op->e[n++] = op->e[i];
        } else {
            free(op->e[i].receipt);
            json_decref(op->e[i].entry);
        }
    }
    op->n = n;
    return n;
}

static void op_done(void *opaque, const struct hr_sqs_reply *reply)
{
    struct op *op = opaque;
    struct sqs_source *src = op->src;
    const char *action = op_action(op->kind);

    hr_list_unlink(&src->flying, &op->fly);
    count_call(src, action, reply);
    if (reply->cls < 0) {
        if (op->kind == OP_SEND_DLQ)
            dlq_sent(src, op, json_object_get(reply->body, "Successful"));
        if (!op_keep_failed(src, op, json_object_get(reply->body, "Failed"))) {
            op_free(op);
            return;
        }
    } else {
        failed_call(src, action, reply);
        if (reply->cls == HR_ERR_PERMANENT) {
            /* a bug or an expired handle: the messages come back anyway */
            op_free(op);
            return;
        }
    }
    if (op->tries >= HR_SQS_OP_TRIES) {
        hr_log_warn("sqs acknowledgement given up; its messages come back "
                    "when their visibility runs out",
                    HR_LOG_STR("action", action),
                    HR_LOG_I64("messages", (int64_t)op->n));
        if (op->kind == OP_SEND_DLQ) {
            /* not dead-lettered: make them come back after a while */
            for (size_t i = 0; i < op->n; i++) {
                if (op->e[i].receipt)
                    give_back(src, op->e[i].receipt, src->visibility_s);
            }
        }
        op_free(op);
        return;
    }
    op->due = hr_time_mono_ms() +
              hr_retry_backoff_ms(op->tries, 200, 5000, hr_retry_random()) + 50;
    op_queue(src, op);
}

static void ops_seal_all(struct sqs_source *src)
{
    for (int k = OP_DELETE; k <= OP_SEND_DLQ; k++)
        op_seal(src, (enum op_kind)k);
}

/* Seconds a returned message stays invisible: equal-jitter backoff over
 * its receive count, at least what the failure asked (Retry-After). */
static int again_seconds(const struct sqs_source *src, const struct smsg *m)
{
    unsigned attempt = m->msg.attempt > 1 ? (unsigned)m->msg.attempt - 1 : 0;
    int64_t cap =
        hr_retry_cap_ms(attempt, src->retry_base_ms, src->retry_max_ms);
    int64_t ms =
        cap / 2 + (int64_t)(hr_retry_random() % (uint64_t)(cap / 2 + 1));

    if (m->msg.again_ms > ms)
        ms = m->msg.again_ms;
    ms = (ms + 999) / 1000;
    return ms > HR_SQS_VIS_MAX ? HR_SQS_VIS_MAX : (int)ms;
}

/* The dead letter of @m: its original body with the failure headers as
 * message attributes, herald-* first (SQS takes ten); a body that would
 * not fit beside them is cut, and says so. */
static json_t *dlq_entry(struct sqs_source *src, struct smsg *m)
{
    json_t *e = json_object(), *attrs = json_object();
    const char *name;
    const void *value;
    size_t len, used = 0, body_len = m->body_len;
    char num[32];

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; !hr_hdrs_at(m->msg.dead, i, &name, &value, &len);
             i++) {
            bool ours = !strncmp(name, "herald-", 7);

            if (ours != (pass == 0) ||
                json_object_size(attrs) >= HR_SQS_ATTRS ||
                json_object_get(attrs, name) || !len)
                continue;
            if (!json_object_get(attrs, name)) {
                json_t *v = json_stringn(value, len);

                if (v) {
                    json_object_set_new(attrs, name,
                                        json_pack("{s:s, s:o}", "DataType",
                                                  "String", "StringValue", v));
                } else {
                    char *b64 = hr_base64_encode(value, len, NULL);

                    json_object_set_new(attrs, name,
                                        json_pack("{s:s, s:s}", "DataType",
                                                  "Binary", "BinaryValue",
                                                  b64));
                    free(b64);
                }
                used += strlen(name) + len + 16;
            }
        }
    }
    if (body_len + used > HR_SQS_MSG_MAX) {
        body_len = HR_SQS_MSG_MAX - used - 1024;
        /* cut at a character boundary */
        while (body_len && ((unsigned char)m->body[body_len] & 0xc0) == 0x80)
            body_len--;
        snprintf(num, sizeof(num), "%zu", m->body_len);
        json_object_set_new(
            attrs, "herald-value-truncated",
            json_pack("{s:s, s:s}", "DataType", "Number", "StringValue", num));
    }
    json_object_set_new(e, "MessageBody", json_stringn(m->body, body_len));
    json_object_set_new(e, "MessageAttributes", attrs);
    if (src->dlq_fifo) {
        json_object_set_new(e, "MessageGroupId",
                            json_string(m->group ? m->group : "herald-dlq"));
        json_object_set_new(e, "MessageDeduplicationId", json_string(m->id));
    }
    return e;
}

/* FIFO: give back every waiting message of @group (they must not overtake
 * the one that was returned or abandoned). */
static void give_back_group(struct sqs_source *src, const char *group)
{
    for (struct hr_list_node *n = src->ready.head, *next; n; n = next) {
        struct smsg *m = SMSG(n);

        next = n->next;
        if (!m->group || strcmp(m->group, group))
            continue;
        hr_list_unlink(&src->ready, n);
        give_back(src, m->receipt, 0);
        smsg_free(m);
    }
}

static int sqs_ack(struct hr_source *base,
                   struct hr_msg *const *msgs,
                   size_t n,
                   char *errstr,
                   size_t errstr_size)
{
    struct sqs_source *src = (struct sqs_source *)base;

    (void)errstr;
    (void)errstr_size;
    for (size_t i = 0; i < n; i++) {
        struct smsg *m = (struct smsg *)msgs[i];

        hr_list_unlink(&src->out, &m->node);
        switch (m->msg.fate) {
        case HR_MSG_DONE:
            hr_metric_add(src->messages, (const char *[]){"deleted"}, 1);
            op_add(src, OP_DELETE, m->receipt, 0, NULL);
            break;
        case HR_MSG_AGAIN:
            hr_metric_add(src->messages, (const char *[]){"returned"}, 1);
            give_back(src, m->receipt, again_seconds(src, m));
            if (src->fifo && m->group)
                give_back_group(src, m->group);
            break;
        case HR_MSG_DEAD:
            op_add(src, OP_SEND_DLQ, m->receipt, 0, dlq_entry(src, m));
            break;
        }
        smsg_free(m);
    }
    ops_seal_all(src);
    ops_send(src);
    hr_sqs_run(src->sqs, 0);
    return 0;
}

static void
sqs_abandon(struct hr_source *base, struct hr_msg *const *msgs, size_t n)
{
    struct sqs_source *src = (struct sqs_source *)base;

    for (size_t i = 0; i < n; i++) {
        struct smsg *m = (struct smsg *)msgs[i];

        hr_list_unlink(&src->out, &m->node);
        hr_metric_add(src->messages, (const char *[]){"given_back"}, 1);
        give_back(src, m->receipt, 0);
        if (src->fifo && m->group)
            give_back_group(src, m->group);
        smsg_free(m);
    }
    ops_seal_all(src);
    ops_send(src);
}

/* --- keeping messages, lag -------------------------------------------------
 */

/* Extend the visibility of every held message that runs out within a
 * third of the visibility timeout. */
static void heartbeat(struct sqs_source *src, int64_t now)
{
    int64_t margin = (int64_t)src->visibility_s * 1000 / 3;
    struct hr_list *lists[] = {&src->ready, &src->out};
    size_t extended = 0;

    if (now < src->next_beat)
        return;
    src->next_beat = now + 1000;
    for (size_t l = 0; l < HR_ARRAY_SIZE(lists); l++) {
        for (struct hr_list_node *n = lists[l]->head; n; n = n->next) {
            struct smsg *m = SMSG(n);

            if (m->visible_until - now > margin)
                continue;
            op_add(src, OP_VISIBILITY, m->receipt, src->visibility_s, NULL);
            m->visible_until = now + (int64_t)src->visibility_s * 1000;
            extended++;
        }
    }
    if (extended) {
        hr_metric_add(src->messages, (const char *[]){"extended"},
                      (double)extended);
        op_seal(src, OP_VISIBILITY);
    }
}

static void lag_done(void *opaque, const struct hr_sqs_reply *reply)
{
    struct sqs_source *src = opaque;
    json_t *attrs = json_object_get(reply->body, "Attributes");
    const char *v = json_string_value(
        json_object_get(attrs, "ApproximateNumberOfMessages"));
    const char *nv = json_string_value(
        json_object_get(attrs, "ApproximateNumberOfMessagesNotVisible"));

    src->lag_in_flight = false;
    count_call(src, "GetQueueAttributes", reply);
    if (reply->cls >= 0) {
        failed_call(src, "GetQueueAttributes", reply);
        return;
    }
    if (src->receive_failures == 0)
        src->not_ready[0] = '\0';
    if (v)
        hr_metric_set(
            src->lag, (const char *[]){src->queue_name, "0"},
            (double)(strtoll(v, NULL, 10) + (nv ? strtoll(nv, NULL, 10) : 0)));
}

static void lag_poll(struct sqs_source *src, int64_t now)
{
    json_t *req;

    if (src->lag_in_flight || now < src->next_lag || src->closing)
        return;
    src->next_lag = now + src->lag_interval_ms;
    req = request_for(src->queue_url);
    json_object_set_new(req, "AttributeNames",
                        json_pack("[s,s]", "ApproximateNumberOfMessages",
                                  "ApproximateNumberOfMessagesNotVisible"));
    if (!call(src, "GetQueueAttributes", req, HR_SQS_OP_MS, lag_done, src))
        src->lag_in_flight = true;
}

/* Everything but handing messages out: credentials, receivers, the
 * heartbeat, lag, acknowledgements; then the transfers, waiting up to
 * @wait_ms for one to finish. */
static void service(struct sqs_source *src, int wait_ms)
{
    int64_t now = hr_time_mono_ms();
    char errstr[256];

    if (hr_aws_refresh(src->aws, errstr, sizeof(errstr)))
        snprintf(src->not_ready, sizeof(src->not_ready),
                 "aws credentials unavailable: %s", errstr);
    heartbeat(src, now);
    lag_poll(src, now);
    receive_more(src);
    /* what callbacks added (deletes after dead letters) goes out too */
    ops_seal_all(src);
    ops_send(src);
    hr_sqs_run(src->sqs, wait_ms);
}

static void sqs_serve(struct hr_source *base)
{
    service((struct sqs_source *)base, 0);
}

/* The next waiting message that may go out now (FIFO: none of its group
 * is out or already taken), or NULL. */
static struct smsg *next_ready(struct sqs_source *src, struct hr_strmap *busy)
{
    for (struct hr_list_node *n = src->ready.head; n; n = n->next) {
        struct smsg *m = SMSG(n);

        if (!src->fifo || !m->group)
            return m;
        if (hr_strmap_get(busy, m->group, strlen(m->group)) == SIZE_MAX)
            return m;
    }
    return NULL;
}

static size_t sqs_poll(struct hr_source *base,
                       struct hr_msg **msgs,
                       size_t max,
                       size_t max_bytes,
                       int wait_ms)
{
    struct sqs_source *src = (struct sqs_source *)base;
    int64_t deadline = hr_time_mono_ms() + wait_ms;
    struct hr_strmap busy;
    size_t n = 0, bytes = 0;

    hr_strmap_init(&busy);
    if (src->fifo) {
        for (struct hr_list_node *o = src->out.head; o; o = o->next) {
            struct smsg *m = SMSG(o);

            if (m->group)
                (void)hr_strmap_put(&busy, m->group, strlen(m->group), NULL);
        }
    }
    service(src, 0);
    for (;;) {
        struct smsg *m;
        int64_t left;

        while (n < max && bytes < max_bytes && (m = next_ready(src, &busy))) {
            hr_list_unlink(&src->ready, &m->node);
            hr_list_push(&src->out, &m->node);
            if (src->fifo && m->group)
                (void)hr_strmap_put(&busy, m->group, strlen(m->group), NULL);
            msgs[n++] = &m->msg;
            bytes += m->msg.value_len;
        }
        if (n >= max || bytes >= max_bytes)
            break;
        left = deadline - hr_time_mono_ms();
        if (left <= 0)
            break;
        service(src, left < 50 ? (int)left : 50);
    }
    hr_strmap_release(&busy);
    return n;
}

static bool sqs_is_ready(struct hr_source *base, char *reason, size_t size)
{
    struct sqs_source *src = (struct sqs_source *)base;

    if (src->fatal) {
        snprintf(reason, size, "sqs queue unusable: %s", src->not_ready);
        return false;
    }
    if (src->not_ready[0]) {
        snprintf(reason, size, "%s", src->not_ready);
        return false;
    }
    if (!src->ok_once) {
        snprintf(reason, size, "connecting to sqs");
        return false;
    }
    return true;
}

static bool sqs_is_fatal(const struct hr_source *base)
{
    return ((const struct sqs_source *)base)->fatal;
}

static bool sqs_paces_retries(const struct hr_source *base)
{
    (void)base;
    return true;
}

static bool sqs_has_dlq(const struct hr_source *base)
{
    return ((const struct sqs_source *)base)->dlq_url[0] != '\0';
}

static void ops_free_all(struct sqs_source *src)
{
    for (int k = OP_DELETE; k <= OP_SEND_DLQ; k++) {
        if (src->filling[k])
            op_free(src->filling[k]);
        src->filling[k] = NULL;
    }
    while (src->queued) {
        struct op *op = src->queued;

        src->queued = op->next;
        op_free(op);
    }
    src->queued_tail = NULL;
    while (src->flying.head) {
        struct op *op = HR_LIST_ENTRY(src->flying.head, struct op, fly);

        hr_list_unlink(&src->flying, &op->fly);
        op_free(op);
    }
}

static void sqs_free(struct sqs_source *src)
{
    struct hr_list *lists[] = {&src->ready, &src->out};

    for (size_t l = 0; l < HR_ARRAY_SIZE(lists); l++) {
        while (lists[l]->head) {
            struct smsg *m = SMSG(lists[l]->head);

            hr_list_unlink(lists[l], &m->node);
            smsg_free(m);
        }
    }
    hr_sqs_free(src->sqs); /* aborts what flies: no callback is called */
    ops_free_all(src);
    hr_aws_free(src->aws);
    hr_tls_free(src->tls);
    free(src);
}

static int sqs_close(struct hr_source *base, int64_t deadline_ms)
{
    struct sqs_source *src = (struct sqs_source *)base;
    int rc = 0;

    src->closing = true;
    src->receives -= (int)hr_sqs_abort(src->sqs, "ReceiveMessage");
    hr_sqs_abort(src->sqs, "GetQueueAttributes");
    src->lag_in_flight = false;
    /* waiting messages go back at once, for another consumer */
    while (src->ready.head) {
        struct smsg *m = SMSG(src->ready.head);

        hr_list_unlink(&src->ready, &m->node);
        give_back(src, m->receipt, 0);
        smsg_free(m);
    }
    ops_seal_all(src);
    while ((src->queued || hr_sqs_in_flight(src->sqs)) &&
           hr_time_mono_ms() < deadline_ms) {
        char errstr[256];

        (void)hr_aws_refresh(src->aws, errstr, sizeof(errstr));
        ops_send(src);
        hr_sqs_run(src->sqs, 50);
        ops_seal_all(src);
    }
    if (src->queued || hr_sqs_in_flight(src->sqs)) {
        hr_log_warn("sqs acknowledgements unfinished at shutdown; those "
                    "messages come back when their visibility runs out");
        rc = -1;
    }
    sqs_free(src);
    return rc;
}

struct hr_source *hr_source_sqs_new(const struct hr_conf *cfg,
                                    struct hr_metrics *reg,
                                    char *errstr,
                                    size_t errstr_size)
{
    struct sqs_source *src = calloc(1, sizeof(*src));
    const char *url = hr_conf_str(cfg, "HERALD_SQS_QUEUE_URL");
    const char *dlq = hr_conf_str(cfg, "HERALD_SQS_DLQ_URL");
    const char *env = hr_conf_str(cfg, "HERALD_SQS_ENVELOPE");
    char region[64], origin[512], endpoint[512];
    const char *path;

    HR_ASSERT(src);
    src->base.ops = &sqs_ops;
    snprintf(src->queue_url, sizeof(src->queue_url), "%s", url ? url : "");
    snprintf(src->dlq_url, sizeof(src->dlq_url), "%s", dlq ? dlq : "");
    if (!hr_sqs_queue_name(src->queue_url, src->queue_name,
                           sizeof(src->queue_name))) {
        snprintf(errstr, errstr_size, "bad queue url '%s'", src->queue_url);
        free(src);
        return NULL;
    }
    src->fifo = hr_sqs_queue_is_fifo(src->queue_url);
    src->dlq_fifo = dlq && hr_sqs_queue_is_fifo(dlq);
    src->receivers = (int)hr_conf_int(cfg, "HERALD_SQS_RECEIVERS");
    src->wait_s = (int)hr_conf_int(cfg, "HERALD_SQS_WAIT_SECONDS");
    src->visibility_s = (int)hr_conf_int(cfg, "HERALD_SQS_VISIBILITY_TIMEOUT");
    src->retry_base_ms = hr_conf_int(cfg, "HERALD_SQS_RETRY_BASE_MS");
    src->retry_max_ms = hr_conf_int(cfg, "HERALD_SQS_RETRY_MAX_MS");
    src->lag_interval_ms = hr_conf_int(cfg, "HERALD_SQS_LAG_INTERVAL_MS");
    src->envelope = env && !strcmp(env, "sns")   ? ENV_SNS
                    : env && !strcmp(env, "raw") ? ENV_RAW
                                                 : ENV_AUTO;
    src->ready_max = (size_t)src->receivers * HR_SQS_BATCH * 4;
    snprintf(src->not_ready, sizeof(src->not_ready), "connecting to sqs");

    src->tls =
        hr_tls_new(hr_conf_str(cfg, "HERALD_TLS_CA_FILE"), errstr, errstr_size);
    if (!src->tls)
        goto out_free;
    src->aws = hr_aws_new(
        cfg,
        hr_aws_region_of(cfg, hr_sqs_queue_region(url, region, sizeof(region))),
        src->tls, errstr, errstr_size);
    if (!src->aws)
        goto out_free;
    /* Without an override, the queue URL's own origin (what the SDKs do:
     * research/aws.md §1.1); calls go to POST / there. */
    path = strstr(src->queue_url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    snprintf(origin, sizeof(origin), "%.*s",
             (int)(path ? path - src->queue_url : (long)strlen(src->queue_url)),
             src->queue_url);
    hr_aws_endpoint(cfg, "SQS", origin, endpoint, sizeof(endpoint));
    src->sqs = hr_sqs_new(src->aws, src->tls, endpoint, errstr, errstr_size);
    if (!src->sqs)
        goto out_free;

    src->lag = hr_metrics_gauge(reg, "herald_consumer_lag",
                                "Messages behind: SQS's visible plus "
                                "in-flight messages of the queue",
                                "topic,partition");
    src->errors =
        hr_metrics_counter(reg, "herald_source_errors_total",
                           "Errors reported by the source client", NULL);
    src->calls = hr_metrics_counter(reg, "herald_sqs_calls_total",
                                    "SQS API calls by action and result",
                                    "action,result");
    src->messages = hr_metrics_counter(
        reg, "herald_sqs_messages_total",
        "What happened to received messages: deleted, returned (a retry "
        "paced by visibility), dead_lettered, given_back, extended",
        "fate");
    hr_log_info("sqs source", HR_LOG_STR("queue", src->queue_url),
                HR_LOG_STR("endpoint", endpoint),
                HR_LOG_STR("region", hr_aws_region(src->aws)),
                HR_LOG_BOOL("fifo", src->fifo),
                HR_LOG_STR("dlq", src->dlq_url[0] ? src->dlq_url : NULL),
                HR_LOG_I64("receivers", src->receivers),
                HR_LOG_I64("visibility_s", src->visibility_s));
    return &src->base;
out_free:
    hr_sqs_free(src->sqs);
    hr_aws_free(src->aws);
    hr_tls_free(src->tls);
    free(src);
    return NULL;
}

static const struct hr_source_ops sqs_ops = {
    .kind = "sqs",
    .poll = sqs_poll,
    .serve = sqs_serve,
    .ack = sqs_ack,
    .abandon = sqs_abandon,
    .is_ready = sqs_is_ready,
    .is_fatal = sqs_is_fatal,
    .paces_retries = sqs_paces_retries,
    .has_dlq = sqs_has_dlq,
    .close = sqs_close,
};
