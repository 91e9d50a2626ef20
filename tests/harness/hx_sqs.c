#include "hx_sqs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hr_aws.h"
#include "hr_sqs.h"

#define HX_SQS_START_MS 15000
/* fauxqs, installed by scripts/deps.sh */
#define HX_FAUXQS HX_SOURCE_DIR "/tests/node/node_modules/fauxqs/dist/cli.js"

struct hx_sqs {
    char *dir;
    struct hx_proc *proc;
    int port;
    char endpoint[64];
    char env_endpoint[96];
    const char *env[8];
    struct hr_aws *aws;
    struct hr_sqs *sqs;
};

bool hx_sqs_available(void)
{
    FILE *f;

    if (!hx_on_path("node"))
        return false;
    f = fopen(HX_FAUXQS, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

static void print_log(const struct hx_sqs *q)
{
    char path[512];
    char *log;

    snprintf(path, sizeof(path), "%s/sqs.log", q->dir);
    log = hx_file_read(path, NULL);
    fprintf(stderr, "--- sqs server log ---\n%s\n---\n", log ? log : "(none)");
    free(log);
}

/* The port of a "listening <port>" line in @path, or 0. */
static int listening_port(const char *path)
{
    char *out = hx_file_read(path, NULL);
    char *line = out ? strstr(out, "listening ") : NULL;
    int port = line && strchr(line, '\n')
                   ? (int)strtol(line + strlen("listening "), NULL, 10)
                   : 0;

    free(out);
    return port;
}

/* Start @argv (fauxqs when @js is NULL) and wait until @health answers. */
static struct hx_sqs *start(const char *js)
{
    struct hx_sqs *q = calloc(1, sizeof(*q));
    char port_env[32], log[512], out[512], url[96], errstr[256];
    int64_t deadline;

    if (!q)
        return NULL;
    q->dir = hx_tmpdir_new("sqs");
    if (!q->dir)
        goto out_free;
    snprintf(log, sizeof(log), "%s/sqs.log", q->dir);
    snprintf(out, sizeof(out), "%s/sqs.out", q->dir);
    if (js) {
        q->proc = hx_proc_spawn(
            (const char *[]){"node", js, "--port", "0", NULL}, NULL, out, log);
    } else {
        q->port = hx_free_port();
        snprintf(port_env, sizeof(port_env), "FAUXQS_PORT=%d", q->port);
        q->proc = hx_proc_spawn(
            (const char *[]){"node", HX_FAUXQS, NULL},
            (const char *[]){port_env, "FAUXQS_HOST=localhost", NULL},
            /* its stdout is two JSON lines per request: tens of MB a test */
            "/dev/null", log);
    }
    if (!q->proc)
        goto out_free;
    deadline = hx_now_ms() + HX_SQS_START_MS;
    for (;;) {
        long status = 0;

        if (!hx_proc_is_running(q->proc)) {
            fprintf(stderr, "hx: the sqs server exited at start\n");
            print_log(q);
            goto out_free;
        }
        if (hx_now_ms() > deadline) {
            fprintf(stderr, "hx: the sqs server did not answer in %d ms\n",
                    HX_SQS_START_MS);
            print_log(q);
            goto out_free;
        }
        if (js && !q->port)
            q->port = listening_port(out);
        if (q->port) {
            snprintf(q->endpoint, sizeof(q->endpoint), "http://127.0.0.1:%d",
                     q->port);
            snprintf(url, sizeof(url), "%s/%s", q->endpoint,
                     js ? "_control/health" : "health");
            /* quiet probes: the port is not open yet at first */
            if (hx_http_probe(url, &status) == 0 && status == 200)
                break;
        }
        hx_sleep_ms(50);
    }
    q->aws = hr_aws_new_static("us-east-1", "herald-test", "herald-test", NULL);
    q->sqs = hr_sqs_new(q->aws, NULL, q->endpoint, errstr, sizeof(errstr));
    if (!q->sqs) {
        fprintf(stderr, "hx: %s\n", errstr);
        goto out_free;
    }
    snprintf(q->env_endpoint, sizeof(q->env_endpoint),
             "AWS_ENDPOINT_URL_SQS=%s", q->endpoint);
    q->env[0] = "HERALD_SOURCE=sqs";
    q->env[1] = q->env_endpoint;
    q->env[2] = "AWS_REGION=us-east-1";
    q->env[3] = "AWS_ACCESS_KEY_ID=herald-test";
    q->env[4] = "AWS_SECRET_ACCESS_KEY=herald-test";
    q->env[5] = NULL;
    return q;
out_free:
    hx_sqs_free(q);
    return NULL;
}

struct hx_sqs *hx_sqs_start(void)
{
    return start(NULL);
}

struct hx_sqs *hx_sqs_start_js(const char *js)
{
    return start(js);
}

const char *hx_sqs_endpoint(const struct hx_sqs *q)
{
    return q->endpoint;
}

const char *const *hx_sqs_env(const struct hx_sqs *q)
{
    return q->env;
}

struct sync_call {
    bool done;
    json_t *answer;
    char err[512];
};

static void sync_done(void *opaque, const struct hr_sqs_reply *reply)
{
    struct sync_call *c = opaque;

    c->done = true;
    if (reply->cls < 0)
        c->answer = json_incref(reply->body);
    else
        snprintf(c->err, sizeof(c->err), "status %ld %s: %s", reply->status,
                 reply->code, reply->message);
}

json_t *hx_sqs_call(struct hx_sqs *q, const char *action, json_t *request)
{
    struct sync_call c = {0};
    char errstr[256];
    int64_t deadline = hx_now_ms() + 20000;

    if (hr_sqs_call(q->sqs, action, request, 20000, sync_done, &c, errstr,
                    sizeof(errstr))) {
        fprintf(stderr, "hx: sqs %s: %s\n", action, errstr);
        return NULL;
    }
    while (!c.done && hx_now_ms() < deadline)
        hr_sqs_run(q->sqs, 100);
    if (!c.done) {
        hr_sqs_abort(q->sqs, action);
        fprintf(stderr, "hx: sqs %s: no answer\n", action);
        return NULL;
    }
    if (!c.answer)
        fprintf(stderr, "hx: sqs %s: %s\n", action, c.err);
    return c.answer;
}

char *hx_sqs_create(struct hx_sqs *q, const char *name, json_t *attrs)
{
    json_t *a = attrs ? json_deep_copy(attrs) : json_object();
    json_t *answer;
    char *url = NULL;
    size_t len = strlen(name);

    if (len > 5 && !strcmp(name + len - 5, ".fifo"))
        json_object_set_new(a, "FifoQueue", json_string("true"));
    answer = hx_sqs_call(
        q, "CreateQueue",
        json_pack("{s:s, s:o}", "QueueName", name, "Attributes", a));
    if (answer && json_string_value(json_object_get(answer, "QueueUrl")))
        url = strdup(json_string_value(json_object_get(answer, "QueueUrl")));
    json_decref(answer);
    return url;
}

struct send_call {
    int *in_flight;
    int *failed;
};

static void send_done(void *opaque, const struct hr_sqs_reply *reply)
{
    struct send_call *c = opaque;
    size_t failed = json_array_size(json_object_get(reply->body, "Failed"));

    (*c->in_flight)--;
    if (reply->cls >= 0 || failed) {
        fprintf(stderr, "hx: SendMessageBatch: %s %s (%zu entries failed)\n",
                reply->code, reply->message, failed);
        (*c->failed)++;
    }
    free(c);
}

int hx_sqs_send(struct hx_sqs *q,
                const char *url,
                const char *const *bodies,
                const char *const *groups,
                size_t n,
                size_t dedup_base,
                json_t *attrs)
{
    int in_flight = 0, failed = 0;
    int64_t deadline;

    for (size_t i = 0; i < n && !failed; i += 10) {
        json_t *entries = json_array();
        struct send_call *c = malloc(sizeof(*c));
        char id[32], errstr[256];

        for (size_t k = i; k < n && k < i + 10; k++) {
            json_t *e = json_pack("{s:s}", "MessageBody", bodies[k]);

            snprintf(id, sizeof(id), "m%zu", k - i);
            json_object_set_new(e, "Id", json_string(id));
            if (groups && groups[k]) {
                json_object_set_new(e, "MessageGroupId",
                                    json_string(groups[k]));
                snprintf(id, sizeof(id), "d%zu", dedup_base + k);
                json_object_set_new(e, "MessageDeduplicationId",
                                    json_string(id));
            }
            if (attrs)
                json_object_set(e, "MessageAttributes", attrs);
            json_array_append_new(entries, e);
        }
        /* in order for FIFO groups: one call at a time then */
        while (in_flight >= (groups ? 1 : 8))
            hr_sqs_run(q->sqs, 100);
        c->in_flight = &in_flight;
        c->failed = &failed;
        if (hr_sqs_call(
                q->sqs, "SendMessageBatch",
                json_pack("{s:s, s:o}", "QueueUrl", url, "Entries", entries),
                20000, send_done, c, errstr, sizeof(errstr))) {
            fprintf(stderr, "hx: SendMessageBatch: %s\n", errstr);
            free(c);
            return -1;
        }
        in_flight++;
    }
    deadline = hx_now_ms() + 30000;
    while (in_flight && hx_now_ms() < deadline)
        hr_sqs_run(q->sqs, 100);
    return failed || in_flight ? -1 : 0;
}

long hx_sqs_depth(struct hx_sqs *q, const char *url, long *visible)
{
    json_t *answer =
        hx_sqs_call(q, "GetQueueAttributes",
                    json_pack("{s:s, s:[s,s]}", "QueueUrl", url,
                              "AttributeNames", "ApproximateNumberOfMessages",
                              "ApproximateNumberOfMessagesNotVisible"));
    json_t *attrs = json_object_get(answer, "Attributes");
    const char *v, *nv;
    long depth = -1;

    v = json_string_value(
        json_object_get(attrs, "ApproximateNumberOfMessages"));
    nv = json_string_value(
        json_object_get(attrs, "ApproximateNumberOfMessagesNotVisible"));
    if (v && nv) {
        depth = strtol(v, NULL, 10) + strtol(nv, NULL, 10);
        if (visible)
            *visible = strtol(v, NULL, 10);
    }
    json_decref(answer);
    return depth;
}

int hx_sqs_drain(
    struct hx_sqs *q, const char *url, int max, int wait_ms, json_t *out)
{
    int64_t deadline = hx_now_ms() + wait_ms;
    int got = 0;

    while (got < max && hx_now_ms() < deadline) {
        json_t *answer =
            hx_sqs_call(q, "ReceiveMessage",
                        json_pack("{s:s, s:i, s:i, s:[s]}", "QueueUrl", url,
                                  "MaxNumberOfMessages", 10, "WaitTimeSeconds",
                                  1, "MessageAttributeNames", "All"));
        json_t *msgs = json_object_get(answer, "Messages"), *m;
        json_t *entries = json_array();
        size_t i;

        if (!answer) {
            json_decref(entries);
            return -1;
        }
        json_array_foreach(msgs, i, m)
        {
            json_t *attrs = json_object_get(m, "MessageAttributes");
            char id[24];

            json_array_append_new(
                out,
                json_pack("{s:O, s:o}", "body", json_object_get(m, "Body"),
                          "attrs", attrs ? json_incref(attrs) : json_object()));
            snprintf(id, sizeof(id), "m%zu", i);
            json_array_append_new(
                entries, json_pack("{s:s, s:O}", "Id", id, "ReceiptHandle",
                                   json_object_get(m, "ReceiptHandle")));
            got++;
        }
        if (json_array_size(entries))
            json_decref(hx_sqs_call(
                q, "DeleteMessageBatch",
                json_pack("{s:s, s:O}", "QueueUrl", url, "Entries", entries)));
        json_decref(entries);
        json_decref(answer);
    }
    return got;
}

json_t *hx_sqs_control(struct hx_sqs *q, const char *path)
{
    char url[256], *body = NULL;
    json_t *answer = NULL;
    long status = 0;

    snprintf(url, sizeof(url), "%s%s", q->endpoint, path);
    if (!hx_http_get(url, &status, &body) && status == 200)
        answer = json_loads(body, 0, NULL);
    if (!answer)
        fprintf(stderr, "hx: GET %s: %ld %s\n", url, status, body ? body : "");
    free(body);
    return answer;
}

void hx_sqs_free(struct hx_sqs *q)
{
    if (!q)
        return;
    hr_sqs_free(q->sqs);
    hr_aws_free(q->aws);
    hx_proc_free(q->proc);
    hx_tmpdir_remove(q->dir);
    free(q->dir);
    free(q);
}
