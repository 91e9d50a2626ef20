/* Per-key ordering under retry: the workers' side (hr_park.h). */
#include "hr_park.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "hr_msg.h"
#include "hr_redis.h"
#include "hr_strmap.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

extern const char hr_lua_hr_park_lib[];
extern const unsigned long hr_lua_hr_park_lib_len;
extern const char hr_lua_hr_park[];
extern const unsigned long hr_lua_hr_park_len;

#define FIXED_KEYS  5   /* due, wait, waitev, qof, seq */
#define MEMBERS_MAX 256 /* queue members read per (D, K) and batch */
#define NUM_SIZE    24

enum entry_state {
    E_PENDING = 0,
    E_GOING,
    E_DONE,
    E_RETRY,
    E_PARKED,
    E_RELEASED,
};

struct park_entry {
    size_t group;
    size_t eid_off, eid_len; /* in park->buf */
    enum entry_state state;
    bool head; /* it went as the head of its queue */
};

/* One (D, K) of the batch. */
struct park_group {
    int64_t size;          /* members of its queue at the check */
    size_t mfirst, mcount; /* the members read, in park->members */
    size_t pos;            /* queue position of the next head */
    size_t nentries;
    bool stopped; /* something of it went to the guard: the rest parks */
    bool busy;    /* one of its entries is being called */
};

struct park_op {
    char op; /* 'A' append, 'D' finished */
    size_t entry;
};

struct hr_park {
    struct hr_script script;
    char *src;
    struct hr_strmap groups; /* "<len>:<D>:<K>" -> group index */
    struct park_entry *entries;
    size_t n, cap;
    struct park_group *grp;
    size_t grp_cap;
    char *buf; /* event ids, back to back */
    size_t buf_used, buf_cap;
    redisReply *reply; /* the check's; members point into it */
    const redisReply **members;
    size_t nmembers, members_cap;
    struct park_op *ops;
    size_t nops, ops_cap;
};

/* A decimal header value (not NUL-terminated); -1 when it is not one. */
static int parse_i64(const char *v, size_t len, int64_t *out)
{
    char num[32];
    char *end;

    if (!v || !len || len >= sizeof(num))
        return -1;
    memcpy(num, v, len);
    num[len] = '\0';
    *out = strtoll(num, &end, 10);
    return *end ? -1 : 0;
}

int hr_park_event_id_from(char *buf,
                          size_t size,
                          const char *worker,
                          const char *topic,
                          size_t topic_len,
                          int64_t partition,
                          int64_t offset)
{
    int n = snprintf(buf, size, "%s/%.*s/%" PRId64 "/%" PRId64, worker,
                     (int)topic_len, topic, partition, offset);

    return n < 0 || (size_t)n >= size ? -1 : n;
}

int hr_park_event_id(char *buf,
                     size_t size,
                     const char *worker,
                     const struct hr_msg *msg)
{
    size_t tlen = 0, plen = 0, olen = 0;
    const char *t = hr_msg_header(msg, "herald-origin-topic", &tlen);
    const char *p = hr_msg_header(msg, "herald-origin-partition", &plen);
    const char *o = hr_msg_header(msg, "herald-origin-offset", &olen);
    int64_t part, off;

    if (t && tlen && !parse_i64(p, plen, &part) && !parse_i64(o, olen, &off))
        return hr_park_event_id_from(buf, size, worker, t, tlen, part, off);
    if (msg->offset < 0)
        return -1; /* no log position (SQS): not parked */
    return hr_park_event_id_from(buf, size, worker, msg->topic,
                                 strlen(msg->topic), msg->partition,
                                 msg->offset);
}

/* "<strlen(destination)>:<destination>:" (the key follows). */
static int suffix_head(char *buf, size_t size, const char *destination)
{
    return snprintf(buf, size, "%zu:%s:", strlen(destination), destination);
}

char *hr_park_queue_key(const char *prefix,
                        const char *destination,
                        const void *key,
                        size_t key_len,
                        size_t *len)
{
    size_t plen = strlen(prefix), qlen = strlen(HR_PARK_KEY_QUEUE);
    size_t hlen = strlen(destination) + 24;
    char *out = malloc(plen + qlen + hlen + key_len + 1);
    int h;

    if (!out)
        return NULL;
    memcpy(out, prefix, plen);
    memcpy(out + plen, HR_PARK_KEY_QUEUE, qlen);
    h = suffix_head(out + plen + qlen, hlen, destination);
    memcpy(out + plen + qlen + (size_t)h, key, key_len);
    *len = plen + qlen + (size_t)h + key_len;
    out[*len] = '\0';
    return out;
}

char *hr_park_script_init(struct hr_script *script,
                          const char *name,
                          const char *body,
                          size_t body_len)
{
    size_t lib = hr_lua_hr_park_lib_len, len = lib + 1 + body_len;
    char *src = malloc(len + 1);

    if (!src)
        return NULL;
    memcpy(src, hr_lua_hr_park_lib, lib);
    src[lib] = '\n';
    memcpy(src + lib + 1, body, body_len);
    src[len] = '\0';
    memset(script, 0, sizeof(*script));
    script->name = name;
    script->src = src;
    script->len = len;
    return src;
}

struct hr_park *hr_park_new(void)
{
    struct hr_park *park = calloc(1, sizeof(*park));

    if (!park)
        return NULL;
    park->src = hr_park_script_init(&park->script, "hr_park", hr_lua_hr_park,
                                    hr_lua_hr_park_len);
    if (!park->src) {
        free(park);
        return NULL;
    }
    hr_strmap_init(&park->groups);
    return park;
}

void hr_park_free(struct hr_park *park)
{
    if (!park)
        return;
    if (park->reply)
        freeReplyObject(park->reply);
    hr_strmap_release(&park->groups);
    free(park->entries);
    free(park->grp);
    free(park->buf);
    free(park->members);
    free(park->ops);
    free(park->src);
    free(park);
}

void hr_park_reset(struct hr_park *park)
{
    if (park->reply)
        freeReplyObject(park->reply);
    park->reply = NULL;
    hr_strmap_clear(&park->groups);
    park->n = 0;
    park->buf_used = 0;
    park->nmembers = 0;
    park->nops = 0;
}

size_t hr_park_add(struct hr_park *park,
                   const char *destination,
                   const void *key,
                   size_t key_len,
                   const char *event_id)
{
    char head[256], *suffix;
    size_t hlen, elen = strlen(event_id), g;
    struct park_entry *e;
    int added = 0;

    hlen = (size_t)suffix_head(head, sizeof(head), destination);
    if (hlen >= sizeof(head))
        hlen = sizeof(head) - 1; /* destinations are short names */
    suffix = malloc(hlen + key_len);
    HR_ASSERT(suffix);
    memcpy(suffix, head, hlen);
    memcpy(suffix + hlen, key, key_len);
    g = hr_strmap_put(&park->groups, suffix, hlen + key_len, &added);
    free(suffix);
    park->grp = hr_grow(park->grp, &park->grp_cap, park->groups.n,
                        sizeof(*park->grp), 16);
    if (added)
        memset(&park->grp[g], 0, sizeof(park->grp[g]));
    park->grp[g].nentries++;
    park->entries = hr_grow(park->entries, &park->cap, park->n + 1,
                            sizeof(*park->entries), 16);
    park->buf =
        hr_grow(park->buf, &park->buf_cap, park->buf_used + elen, 1, 16);
    e = &park->entries[park->n];
    memset(e, 0, sizeof(*e));
    e->group = g;
    e->eid_off = park->buf_used;
    e->eid_len = elen;
    memcpy(park->buf + park->buf_used, event_id, elen);
    park->buf_used += elen;
    return park->n++;
}

static void log_op(struct hr_park *park, char op, size_t entry)
{
    park->ops = hr_grow(park->ops, &park->ops_cap, park->nops + 1,
                        sizeof(*park->ops), 16);
    park->ops[park->nops].op = op;
    park->ops[park->nops++].entry = entry;
}

void hr_park_release(struct hr_park *park, size_t entry)
{
    park->entries[entry].state = E_RELEASED;
    log_op(park, 'D', entry);
}

/* The keys of every group (@all) or of the groups the ops name, after the
 * fixed ones, into @argv; @slot[g] gets the 0-based index of group g's key
 * among them (SIZE_MAX when absent). Returns the buffer holding them
 * (caller frees) and their count in *@nq; NULL on out-of-memory. */
static char *queue_keys(struct hr_park *park,
                        const char *prefix,
                        bool all,
                        const char **argv,
                        size_t *argvlen,
                        size_t *slot,
                        size_t *nq)
{
    size_t plen = strlen(prefix), qlen = strlen(HR_PARK_KEY_QUEUE);
    size_t ng = park->groups.n, total = 0, off = 0;
    char *buf;

    *nq = 0;
    for (size_t g = 0; g < ng; g++)
        slot[g] = all ? g : SIZE_MAX;
    for (size_t i = 0; !all && i < park->nops; i++) {
        size_t g = park->entries[park->ops[i].entry].group;

        if (slot[g] == SIZE_MAX)
            slot[g] = (*nq)++;
    }
    if (all)
        *nq = ng;
    for (size_t g = 0; g < ng; g++) {
        if (slot[g] != SIZE_MAX)
            total += plen + qlen + park->groups.key_lens[g];
    }
    buf = malloc(total + 1);
    if (!buf)
        return NULL;
    for (size_t g = 0; g < ng; g++) {
        size_t klen = park->groups.key_lens[g];

        if (slot[g] == SIZE_MAX)
            continue;
        memcpy(buf + off, prefix, plen);
        memcpy(buf + off + plen, HR_PARK_KEY_QUEUE, qlen);
        memcpy(buf + off + plen + qlen, hr_strmap_key(&park->groups, g), klen);
        argv[FIXED_KEYS + slot[g]] = buf + off;
        argvlen[FIXED_KEYS + slot[g]] = plen + qlen + klen;
        off += plen + qlen + klen;
    }
    return buf;
}

/* The fixed keys into @argv[0..4], built in @names. */
static void fixed_keys(const char *prefix,
                       char names[FIXED_KEYS][256],
                       const char **argv,
                       size_t *argvlen)
{
    static const char *const suffixes[FIXED_KEYS] = {
        HR_PARK_KEY_DUE, HR_PARK_KEY_WAIT, HR_PARK_KEY_WAITEV, HR_PARK_KEY_QOF,
        HR_PARK_KEY_SEQ};

    for (int i = 0; i < FIXED_KEYS; i++) {
        snprintf(names[i], 256, "%s%s", prefix, suffixes[i]);
        argv[i] = names[i];
        argvlen[i] = strlen(names[i]);
    }
}

static bool reply_is_check(const redisReply *r, size_t ng)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != ng)
        return false;
    for (size_t g = 0; g < ng; g++) {
        const redisReply *e = r->element[g];

        if (e->type != REDIS_REPLY_ARRAY || !e->elements ||
            e->element[0]->type != REDIS_REPLY_INTEGER)
            return false;
        for (size_t j = 1; j < e->elements; j++) {
            if (e->element[j]->type != REDIS_REPLY_STRING)
                return false;
        }
    }
    return true;
}

int hr_park_check(struct hr_park *park,
                  struct hr_redis *redis,
                  char *errstr,
                  size_t errstr_size)
{
    size_t ng = park->groups.n, argc = FIXED_KEYS + 2 * ng + 1, nq;
    const char *prefix = hr_redis_prefix(redis);
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *argvlen = calloc(argc, sizeof(*argvlen));
    size_t *slot = calloc(ng + 1, sizeof(*slot));
    char(*wants)[NUM_SIZE] = calloc(ng + 1, sizeof(*wants));
    char names[FIXED_KEYS][256];
    char *keybuf = NULL;
    redisReply *reply = NULL;
    int rc = -1;

    if (park->reply)
        freeReplyObject(park->reply);
    park->reply = NULL;
    park->nmembers = 0;
    if (!ng) {
        rc = 0;
        goto out_free;
    }
    if (!argv || !argvlen || !slot || !wants)
        goto out_oom;
    fixed_keys(prefix, names, argv, argvlen);
    keybuf = queue_keys(park, prefix, true, argv, argvlen, slot, &nq);
    if (!keybuf)
        goto out_oom;
    argv[FIXED_KEYS + ng] = "check";
    argvlen[FIXED_KEYS + ng] = 5;
    for (size_t g = 0; g < ng; g++) {
        size_t want = park->grp[g].nentries + 1;

        snprintf(wants[g], NUM_SIZE, "%zu",
                 want < MEMBERS_MAX ? want : MEMBERS_MAX);
        argv[FIXED_KEYS + ng + 1 + g] = wants[g];
        argvlen[FIXED_KEYS + ng + 1 + g] = strlen(wants[g]);
    }
    reply = hr_redis_eval(redis, &park->script, (int)(FIXED_KEYS + ng),
                          (int)argc, argv, argvlen, errstr, errstr_size);
    if (!reply)
        goto out_free;
    if (!reply_is_check(reply, ng)) {
        snprintf(errstr, errstr_size, "park check: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        freeReplyObject(reply);
        goto out_free;
    }
    for (size_t g = 0; g < ng; g++) {
        const redisReply *e = reply->element[g];
        struct park_group *grp = &park->grp[g];

        park->members =
            hr_grow(park->members, &park->members_cap,
                    park->nmembers + e->elements, sizeof(*park->members), 16);
        grp->size = e->element[0]->integer;
        grp->mfirst = park->nmembers;
        grp->mcount = e->elements - 1;
        for (size_t j = 1; j < e->elements; j++)
            park->members[park->nmembers++] = e->element[j];
    }
    park->reply = reply;
    rc = 0;
    goto out_free;
out_oom:
    snprintf(errstr, errstr_size, "park check of %zu keys: out of memory", ng);
out_free:
    free(argv);
    free(argvlen);
    free(slot);
    free(wants);
    free(keybuf);
    return rc;
}

enum hr_park_verdict hr_park_next(struct hr_park *park, size_t entry)
{
    struct park_entry *e = &park->entries[entry];
    struct park_group *g = &park->grp[e->group];

    if (e->state == E_PARKED)
        return HR_PARK_PARK;
    if (e->state != E_PENDING || g->busy)
        return HR_PARK_WAIT;
    if (!g->stopped) {
        if (g->pos < g->mcount) {
            const redisReply *m = park->members[g->mfirst + g->pos];

            if (m->len == e->eid_len &&
                !memcmp(m->str, park->buf + e->eid_off, e->eid_len)) {
                e->head = true;
                goto out_go;
            }
        } else if ((int64_t)g->pos >= g->size) {
            goto out_go; /* nothing (left) in its queue */
        }
    }
    /* Another event is at the head (or further than we read): behind it. */
    g->stopped = true;
    e->state = E_PARKED;
    log_op(park, 'A', entry);
    return HR_PARK_PARK;
out_go:
    e->state = E_GOING;
    g->busy = true;
    return HR_PARK_GO;
}

void hr_park_finish(struct hr_park *park,
                    size_t entry,
                    enum hr_park_result result)
{
    struct park_entry *e = &park->entries[entry];
    struct park_group *g = &park->grp[e->group];

    g->busy = false;
    if (result == HR_PARK_RETRY) {
        e->state = E_RETRY;
        g->stopped = true;
        log_op(park, 'A', entry);
        return;
    }
    e->state = E_DONE;
    if (e->head) {
        g->pos++;
        log_op(park, 'D', entry);
    }
}

int hr_park_settle(struct hr_park *park,
                   struct hr_redis *redis,
                   int64_t now_ms,
                   char *errstr,
                   size_t errstr_size)
{
    size_t ng = park->groups.n, nq, k;
    size_t argc = FIXED_KEYS + ng + 3 + 3 * park->nops;
    const char *prefix = hr_redis_prefix(redis);
    const char **argv = NULL;
    size_t *argvlen = NULL, *slot = NULL;
    char(*idx)[NUM_SIZE] = NULL;
    char names[FIXED_KEYS][256], now[NUM_SIZE], ttl[NUM_SIZE];
    char *keybuf = NULL;
    redisReply *reply;
    int rc = -1;

    if (!park->nops)
        return 0;
    argv = calloc(argc, sizeof(*argv));
    argvlen = calloc(argc, sizeof(*argvlen));
    slot = calloc(ng + 1, sizeof(*slot));
    idx = calloc(park->nops, sizeof(*idx));
    if (!argv || !argvlen || !slot || !idx)
        goto out_oom;
    fixed_keys(prefix, names, argv, argvlen);
    keybuf = queue_keys(park, prefix, false, argv, argvlen, slot, &nq);
    if (!keybuf)
        goto out_oom;
    k = FIXED_KEYS + nq;
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(ttl, sizeof(ttl), "%" PRId64, HR_PARK_QUEUE_TTL_MS);
    argv[k] = "settle";
    argvlen[k++] = 6;
    argv[k] = now;
    argvlen[k++] = strlen(now);
    argv[k] = ttl;
    argvlen[k++] = strlen(ttl);
    for (size_t i = 0; i < park->nops; i++) {
        const struct park_entry *e = &park->entries[park->ops[i].entry];

        snprintf(idx[i], NUM_SIZE, "%zu", slot[e->group] + 1);
        argv[k] = park->ops[i].op == 'A' ? "A" : "D";
        argvlen[k++] = 1;
        argv[k] = idx[i];
        argvlen[k++] = strlen(idx[i]);
        argv[k] = park->buf + e->eid_off;
        argvlen[k++] = e->eid_len;
    }
    reply = hr_redis_eval(redis, &park->script, (int)(FIXED_KEYS + nq), (int)k,
                          argv, argvlen, errstr, errstr_size);
    if (!reply)
        goto out_free;
    if (reply->type != REDIS_REPLY_INTEGER) {
        snprintf(errstr, errstr_size, "park settle: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        freeReplyObject(reply);
        goto out_free;
    }
    freeReplyObject(reply);
    rc = 0;
    goto out_free;
out_oom:
    snprintf(errstr, errstr_size, "park settle of %zu changes: out of memory",
             park->nops);
out_free:
    free(argv);
    free(argvlen);
    free(slot);
    free(idx);
    free(keybuf);
    return rc;
}
