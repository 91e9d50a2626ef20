/* Shared circuit breaker and retry budget: batching in C, state in Lua. */
#include "hr_circuit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "hr_conf.h"
#include "hr_park.h"
#include "hr_redis.h"
#include "hr_retry.h"
#include "hr_strmap.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_hr_circuit[];
extern const unsigned long hr_lua_hr_circuit_len;

/* Arguments before the per-key ones (hr_circuit.lua's ARGV[1..12]). */
#define HEADER_ARGS 12
#define NUM_SIZE    32
#define PER_KEY     3 /* integers per key in a reply */
#define INDEX_KEY   "circuit:index"

static const struct hr_conf_spec circuit_conf_specs[] = {
    HR_CIRCUIT_CONF_SPECS,
    HR_CONF_END,
};

struct hr_circuit {
    struct hr_circuit_conf conf;
    struct hr_script script;
    struct hr_strmap map; /* destination -> key index, per call */
};

/* One batch call under construction. */
struct batch {
    size_t n;       /* entries */
    size_t nkeys;   /* distinct destinations */
    size_t *key_of; /* entry -> key index */
    int64_t *count; /* per key: outcomes, calls or retries wanted */
    char *keybuf;   /* all keys, back to back */
    char *argbuf;   /* per-key arguments, back to back */
    const char **argv;
    size_t *argvlen;
    char header[HEADER_ARGS - 1][NUM_SIZE];
    char index[256]; /* header[11]: the zset of destination keys */
};

const struct hr_conf_spec *hr_circuit_conf_specs(void)
{
    return circuit_conf_specs;
}

void hr_circuit_conf_init(struct hr_circuit_conf *conf)
{
    conf->failure_ratio = 0.5;
    conf->min_calls = 20;
    conf->open_ms = 30000;
    conf->auth_threshold = 3;
    conf->half_open_probes = 1;
    conf->budget_ratio = 0.2;
    conf->budget_floor_per_s = 10;
    conf->window_ms = 10000;
}

void hr_circuit_conf_load(struct hr_circuit_conf *conf,
                          const struct hr_conf *cfg)
{
    hr_circuit_conf_init(conf);
    if (hr_conf_is_set(cfg, "HERALD_GUARD_CIRCUIT_FAILURE_RATIO"))
        conf->failure_ratio =
            hr_conf_double(cfg, "HERALD_GUARD_CIRCUIT_FAILURE_RATIO");
    if (hr_conf_is_set(cfg, "HERALD_GUARD_CIRCUIT_MIN_CALLS"))
        conf->min_calls =
            (int)hr_conf_int(cfg, "HERALD_GUARD_CIRCUIT_MIN_CALLS");
    if (hr_conf_is_set(cfg, "HERALD_GUARD_CIRCUIT_OPEN_MS"))
        conf->open_ms = hr_conf_int(cfg, "HERALD_GUARD_CIRCUIT_OPEN_MS");
    if (hr_conf_is_set(cfg, "HERALD_GUARD_RETRY_BUDGET"))
        conf->budget_ratio = hr_conf_double(cfg, "HERALD_GUARD_RETRY_BUDGET");
    if (hr_conf_is_set(cfg, "HERALD_GUARD_RETRY_FLOOR_PER_S"))
        conf->budget_floor_per_s =
            hr_conf_double(cfg, "HERALD_GUARD_RETRY_FLOOR_PER_S");
}

int hr_circuit_conf_validate(const struct hr_circuit_conf *conf,
                             char *errstr,
                             size_t errstr_size)
{
    const char *bad = NULL;

    /* A ratio of 0 would open on min_calls successes. */
    if (!(conf->failure_ratio > 0 && conf->failure_ratio <= 1))
        bad = "failure_ratio (0 < ratio <= 1)";
    else if (conf->min_calls < 1)
        bad = "min_calls (>= 1)";
    else if (conf->open_ms < 1 || conf->open_ms > INT64_C(86400000))
        bad = "open_ms (1 ms to 1 day)";
    else if (conf->auth_threshold < 1)
        bad = "auth_threshold (>= 1)";
    else if (conf->half_open_probes < 1)
        bad = "half_open_probes (>= 1)";
    else if (!(conf->budget_ratio >= 0 && conf->budget_ratio <= 1000))
        bad = "budget_ratio (0 to 1000)";
    else if (!(conf->budget_floor_per_s >= 0 &&
               conf->budget_floor_per_s <= 1e6))
        bad = "budget_floor_per_s (0 to 1000000)";
    else if (conf->window_ms < 1000 || conf->window_ms > 60000 ||
             conf->window_ms % 1000)
        bad = "window_ms (whole seconds, 1 s to 60 s)";
    if (!bad)
        return 0;
    snprintf(errstr, errstr_size, "circuit setting '%s' out of range", bad);
    return -1;
}

const char *hr_circuit_state_name(enum hr_circuit_state state)
{
    switch (state) {
    case HR_CIRCUIT_CLOSED:
        return "closed";
    case HR_CIRCUIT_HALF_OPEN:
        return "half_open";
    case HR_CIRCUIT_OPEN:
        return "open";
    case HR_CIRCUIT_AUTH_BROKEN:
        return "auth_broken";
    case HR_CIRCUIT_THROTTLED:
        return "throttled";
    }
    return "unknown";
}

int hr_circuit_state_gauge(enum hr_circuit_state state)
{
    return state >= HR_CIRCUIT_OPEN ? 2 : (int)state;
}

bool hr_circuit_reason_spent_no_attempt(const char *reason, size_t len)
{
    static const char *const reasons[] = {
        HR_CIRCUIT_OPEN_REASON, HR_CIRCUIT_THROTTLED_REASON, HR_PARK_REASON};

    for (size_t i = 0; reason && i < sizeof(reasons) / sizeof(reasons[0]);
         i++) {
        if (len == strlen(reasons[i]) && !memcmp(reason, reasons[i], len))
            return true;
    }
    return false;
}

struct hr_circuit *hr_circuit_new(const struct hr_circuit_conf *conf)
{
    struct hr_circuit *circuit = calloc(1, sizeof(*circuit));

    if (!circuit)
        return NULL;
    circuit->conf = *conf;
    circuit->script.name = "hr_circuit";
    circuit->script.src = hr_lua_hr_circuit;
    circuit->script.len = hr_lua_hr_circuit_len;
    hr_strmap_init(&circuit->map);
    return circuit;
}

void hr_circuit_free(struct hr_circuit *circuit)
{
    if (!circuit)
        return;
    hr_strmap_release(&circuit->map);
    free(circuit);
}

static void batch_release(struct batch *b)
{
    free(b->key_of);
    free(b->count);
    free(b->keybuf);
    free(b->argbuf);
    free(b->argv);
    free(b->argvlen);
}

/*
 * Group @n destinations into distinct keys and build the key vector and
 * the header; the caller fills the per-key arguments (argbuf, argv[nkeys +
 * HEADER_ARGS + k]). Returns 0, or -1 with @errstr.
 */
static int batch_start(struct hr_circuit *circuit,
                       struct hr_redis *redis,
                       struct batch *b,
                       const char *op,
                       const char *const *destinations,
                       size_t n,
                       int64_t now_ms,
                       char *errstr,
                       size_t errstr_size)
{
    const struct hr_circuit_conf *conf = &circuit->conf;
    const char *prefix = hr_redis_prefix(redis);
    size_t plen = strlen(prefix), total = 0, off = 0;
    const char *dest;

    /* b was zeroed by the caller, so that batch_release() works on it. */
    b->n = n;
    b->key_of = calloc(n, sizeof(*b->key_of));
    if (!b->key_of)
        goto out_oom;
    hr_strmap_clear(&circuit->map);
    for (size_t i = 0; i < n; i++) {
        dest = destinations[i];
        if (!dest || !dest[0]) {
            snprintf(errstr, errstr_size, "circuit entry %zu: no destination",
                     i);
            return -1;
        }
        b->key_of[i] = hr_strmap_put(&circuit->map, dest, strlen(dest), NULL);
    }
    b->nkeys = circuit->map.n;
    for (size_t k = 0; k < b->nkeys; k++)
        total += plen + sizeof("circuit:{}") - 1 + circuit->map.key_lens[k];
    b->count = calloc(b->nkeys, sizeof(*b->count));
    b->keybuf = malloc(total + 1);
    b->argv = calloc(b->nkeys * 2 + HEADER_ARGS + 1, sizeof(*b->argv));
    b->argvlen = calloc(b->nkeys * 2 + HEADER_ARGS + 1, sizeof(*b->argvlen));
    if (!b->count || !b->keybuf || !b->argv || !b->argvlen)
        goto out_oom;
    for (size_t k = 0; k < b->nkeys; k++) {
        size_t dlen = circuit->map.key_lens[k];
        char *key = b->keybuf + off;

        memcpy(key, prefix, plen);
        memcpy(key + plen, "circuit:{", 9);
        memcpy(key + plen + 9, hr_strmap_key(&circuit->map, k), dlen);
        key[plen + 9 + dlen] = '}';
        b->argv[k] = key;
        b->argvlen[k] = plen + 10 + dlen;
        off += b->argvlen[k];
    }
    snprintf(b->header[0], NUM_SIZE, "%s", op);
    snprintf(b->header[1], NUM_SIZE, "%lld", (long long)now_ms);
    snprintf(b->header[2], NUM_SIZE, "%lld", (long long)conf->window_ms / 1000);
    snprintf(b->header[3], NUM_SIZE, "%lld", (long long)conf->open_ms);
    snprintf(b->header[4], NUM_SIZE, "%lld",
             (long long)(2 * (conf->window_ms + conf->open_ms)));
    snprintf(b->header[5], NUM_SIZE, "%d", conf->min_calls);
    snprintf(b->header[6], NUM_SIZE, "%.17g", conf->failure_ratio);
    snprintf(b->header[7], NUM_SIZE, "%d", conf->auth_threshold);
    snprintf(b->header[8], NUM_SIZE, "%d", conf->half_open_probes);
    snprintf(b->header[9], NUM_SIZE, "%.17g", conf->budget_ratio);
    snprintf(b->header[10], NUM_SIZE, "%.17g", conf->budget_floor_per_s);
    snprintf(b->index, sizeof(b->index), "%s%s", prefix, INDEX_KEY);
    for (size_t h = 0; h < HEADER_ARGS; h++) {
        b->argv[b->nkeys + h] = h < HEADER_ARGS - 1 ? b->header[h] : b->index;
        b->argvlen[b->nkeys + h] = strlen(b->argv[b->nkeys + h]);
    }
    return 0;
out_oom:
    snprintf(errstr, errstr_size, "circuit batch of %zu: out of memory", n);
    return -1;
}

/* Per-key decimal arguments from b->count. */
static int batch_counts(struct batch *b, char *errstr, size_t errstr_size)
{
    size_t off = 0;

    b->argbuf = malloc(b->nkeys * NUM_SIZE);
    if (!b->argbuf) {
        snprintf(errstr, errstr_size, "circuit batch: out of memory");
        return -1;
    }
    for (size_t k = 0; k < b->nkeys; k++) {
        int len =
            snprintf(b->argbuf + off, NUM_SIZE, "%lld", (long long)b->count[k]);

        b->argv[b->nkeys + HEADER_ARGS + k] = b->argbuf + off;
        b->argvlen[b->nkeys + HEADER_ARGS + k] = (size_t)len;
        off += NUM_SIZE;
    }
    return 0;
}

/*
 * Run the script over the batch and check that the reply holds PER_KEY
 * integers per key; returns it (caller frees) or NULL with @errstr.
 */
static redisReply *batch_run(struct hr_circuit *circuit,
                             struct hr_redis *redis,
                             struct batch *b,
                             char *errstr,
                             size_t errstr_size)
{
    redisReply *reply;

    reply = hr_redis_eval(redis, &circuit->script, (int)b->nkeys,
                          (int)(b->nkeys * 2 + HEADER_ARGS), b->argv,
                          b->argvlen, errstr, errstr_size);
    if (!reply)
        return NULL;
    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != b->nkeys * PER_KEY) {
        snprintf(errstr, errstr_size, "circuit script '%s': %s",
                 circuit->script.name,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        freeReplyObject(reply);
        return NULL;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            snprintf(errstr, errstr_size, "circuit script '%s': bad reply",
                     circuit->script.name);
            freeReplyObject(reply);
            return NULL;
        }
    }
    return reply;
}

static enum hr_circuit_state state_of(const redisReply *reply, size_t k)
{
    long long v = reply->element[PER_KEY * k]->integer;

    return v >= HR_CIRCUIT_CLOSED && v <= HR_CIRCUIT_THROTTLED
               ? (enum hr_circuit_state)v
               : HR_CIRCUIT_OPEN;
}

/* The code of an outcome in hr_circuit.lua, 0 for none (poison), -1 for a
 * result that is not one. */
static int outcome_code(int result)
{
    switch (result) {
    case HR_CIRCUIT_SUCCESS:
        return 'S';
    case HR_ERR_TRANSIENT:
    case HR_ERR_THROTTLED:
        return 'T';
    case HR_ERR_AUTH:
        return 'A';
    case HR_ERR_PERMANENT:
        return 'P';
    case HR_ERR_POISON:
        return 0;
    default:
        return -1;
    }
}

int hr_circuit_report(struct hr_circuit *circuit,
                      struct hr_redis *redis,
                      const struct hr_circuit_outcome *outs,
                      size_t n,
                      int64_t now_ms,
                      enum hr_circuit_state *states,
                      char *errstr,
                      size_t errstr_size)
{
    struct batch b = {0};
    redisReply *reply;
    const char **dests = NULL;
    size_t *pos = NULL;
    int64_t *until = NULL;
    size_t off = 0;
    int rc = -1;

    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (outcome_code(outs[i].result) < 0) {
            snprintf(errstr, errstr_size, "circuit outcome %zu: bad result %d",
                     i, outs[i].result);
            return -1;
        }
    }
    dests = malloc(n * sizeof(*dests));
    if (!dests) {
        snprintf(errstr, errstr_size, "circuit batch of %zu: out of memory", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        dests[i] = outs[i].destination;
    if (batch_start(circuit, redis, &b, "report", dests, n, now_ms, errstr,
                    errstr_size))
        goto out_release;
    /* Each key's "<wait until>:" and codes, in the order of the
     * outcomes. */
    for (size_t i = 0; i < n; i++)
        b.count[b.key_of[i]] += outcome_code(outs[i].result) > 0;
    pos = calloc(b.nkeys, sizeof(*pos));
    until = calloc(b.nkeys, sizeof(*until));
    b.argbuf = malloc(n + b.nkeys * NUM_SIZE + 1);
    if (!pos || !until || !b.argbuf) {
        snprintf(errstr, errstr_size, "circuit batch of %zu: out of memory", n);
        goto out_release;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t wait = outs[i].retry_after_ms;
        size_t k = b.key_of[i];

        if (outcome_code(outs[i].result) != 'T' || wait <= 0)
            continue;
        if (wait > HR_CIRCUIT_THROTTLE_MAX_MS)
            wait = HR_CIRCUIT_THROTTLE_MAX_MS;
        if (now_ms + wait > until[k])
            until[k] = now_ms + wait;
    }
    for (size_t k = 0; k < b.nkeys; k++) {
        int len =
            snprintf(b.argbuf + off, NUM_SIZE, "%lld:", (long long)until[k]);

        b.argv[b.nkeys + HEADER_ARGS + k] = b.argbuf + off;
        b.argvlen[b.nkeys + HEADER_ARGS + k] = (size_t)len + (size_t)b.count[k];
        pos[k] = off + (size_t)len;
        off += (size_t)len + (size_t)b.count[k];
    }
    for (size_t i = 0; i < n; i++) {
        int code = outcome_code(outs[i].result);

        if (code > 0)
            b.argbuf[pos[b.key_of[i]]++] = (char)code;
    }
    reply = batch_run(circuit, redis, &b, errstr, errstr_size);
    if (!reply)
        goto out_release;
    for (size_t i = 0; states && i < n; i++)
        states[i] = state_of(reply, b.key_of[i]);
    freeReplyObject(reply);
    rc = 0;
out_release:
    free(dests);
    free(pos);
    free(until);
    batch_release(&b);
    return rc;
}

int hr_circuit_check(struct hr_circuit *circuit,
                     struct hr_redis *redis,
                     const char *const *destinations,
                     size_t n,
                     int64_t now_ms,
                     enum hr_circuit_state *states,
                     bool *allowed,
                     int64_t *wait_ms,
                     char *errstr,
                     size_t errstr_size)
{
    struct batch b = {0};
    redisReply *reply;
    int rc = -1;

    if (!n)
        return 0;
    if (batch_start(circuit, redis, &b, "check", destinations, n, now_ms,
                    errstr, errstr_size))
        goto out_release;
    for (size_t i = 0; i < n; i++)
        b.count[b.key_of[i]]++;
    if (batch_counts(&b, errstr, errstr_size))
        goto out_release;
    reply = batch_run(circuit, redis, &b, errstr, errstr_size);
    if (!reply)
        goto out_release;
    /* Reuse count as the calls still allowed per key. */
    for (size_t k = 0; k < b.nkeys; k++)
        b.count[k] = reply->element[PER_KEY * k + 1]->integer;
    for (size_t i = 0; i < n; i++) {
        size_t k = b.key_of[i];

        allowed[i] = b.count[k] > 0;
        if (allowed[i])
            b.count[k]--;
        if (states)
            states[i] = state_of(reply, k);
        if (wait_ms)
            wait_ms[i] = reply->element[PER_KEY * k + 2]->integer;
    }
    freeReplyObject(reply);
    rc = 0;
out_release:
    batch_release(&b);
    return rc;
}

int hr_circuit_budget_take(struct hr_circuit *circuit,
                           struct hr_redis *redis,
                           const char *const *destinations,
                           const int *want,
                           size_t n,
                           int64_t now_ms,
                           int *granted,
                           char *errstr,
                           size_t errstr_size)
{
    struct batch b = {0};
    redisReply *reply;
    int rc = -1;

    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (want[i] < 0) {
            snprintf(errstr, errstr_size,
                     "circuit budget entry %zu: negative want %d", i, want[i]);
            return -1;
        }
    }
    if (batch_start(circuit, redis, &b, "budget", destinations, n, now_ms,
                    errstr, errstr_size))
        goto out_release;
    for (size_t i = 0; i < n; i++)
        b.count[b.key_of[i]] += want[i];
    if (batch_counts(&b, errstr, errstr_size))
        goto out_release;
    reply = batch_run(circuit, redis, &b, errstr, errstr_size);
    if (!reply)
        goto out_release;
    for (size_t k = 0; k < b.nkeys; k++)
        b.count[k] = reply->element[PER_KEY * k]->integer;
    for (size_t i = 0; i < n; i++) {
        int64_t left = b.count[b.key_of[i]];

        granted[i] = left < want[i] ? (int)left : want[i];
        b.count[b.key_of[i]] -= granted[i];
    }
    freeReplyObject(reply);
    rc = 0;
out_release:
    batch_release(&b);
    return rc;
}

int hr_circuit_peek(struct hr_circuit *circuit,
                    struct hr_redis *redis,
                    int64_t now_ms,
                    size_t max,
                    struct hr_circuit_view **views,
                    size_t *n,
                    char *errstr,
                    size_t errstr_size)
{
    const char *prefix = hr_redis_prefix(redis);
    size_t plen = strlen(prefix) + sizeof("circuit:{") - 1;
    const char *argv[HEADER_ARGS + 1];
    char header[HEADER_ARGS + 1][256];
    struct hr_circuit_view *out;
    redisReply *reply;
    size_t k = 0;

    *views = NULL;
    *n = 0;
    /* Only now, the index and how long to keep are read. */
    for (size_t h = 0; h < HEADER_ARGS + 1; h++) {
        snprintf(header[h], sizeof(header[h]), "0");
        argv[h] = header[h];
    }
    snprintf(header[0], sizeof(header[0]), "peek");
    snprintf(header[1], sizeof(header[1]), "%lld", (long long)now_ms);
    snprintf(header[2], sizeof(header[2]), "%lld",
             (long long)circuit->conf.window_ms / 1000);
    snprintf(header[3], sizeof(header[3]), "%lld",
             (long long)circuit->conf.open_ms);
    snprintf(header[11], sizeof(header[11]), "%s%s", prefix, INDEX_KEY);
    snprintf(header[12], sizeof(header[12]), "%lld",
             (long long)HR_CIRCUIT_PEEK_KEEP_MS);
    reply = hr_redis_eval(redis, &circuit->script, 0, HEADER_ARGS + 1, argv,
                          NULL, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 3) {
        snprintf(errstr, errstr_size, "circuit peek: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        freeReplyObject(reply);
        return -1;
    }
    out = calloc(reply->elements / 3 + 1, sizeof(*out));
    if (!out) {
        snprintf(errstr, errstr_size, "circuit peek: out of memory");
        freeReplyObject(reply);
        return -1;
    }
    for (size_t i = 0; i + 2 < reply->elements && k < max; i += 3) {
        const redisReply *key = reply->element[i];
        const redisReply *st = reply->element[i + 1];
        const redisReply *ac = reply->element[i + 2];

        /* "<prefix>circuit:{<destination>}" */
        if (key->type != REDIS_REPLY_STRING ||
            st->type != REDIS_REPLY_INTEGER ||
            ac->type != REDIS_REPLY_INTEGER || key->len <= plen ||
            key->len - plen > sizeof(out[k].destination) ||
            key->str[key->len - 1] != '}')
            continue;
        memcpy(out[k].destination, key->str + plen, key->len - plen - 1);
        out[k].destination[key->len - plen - 1] = '\0';
        out[k].state = st->integer >= HR_CIRCUIT_CLOSED &&
                               st->integer <= HR_CIRCUIT_THROTTLED
                           ? (enum hr_circuit_state)st->integer
                           : HR_CIRCUIT_OPEN;
        out[k].auth_failures = ac->integer;
        k++;
    }
    freeReplyObject(reply);
    *views = out;
    *n = k;
    return 0;
}
