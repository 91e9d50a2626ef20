/*
 * Windows in Redis (workers/email/README.md, "Windows"): a batch's
 * notification.email events join their windows (email_ingest.lua), and
 * the timer claims due windows (email_claim.lua), renders each into an
 * email.send record and completes it once the record is durable
 * (email_done.lua).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_mime.h"
#include "email_state.h"
#include "hr_arena.h"
#include "hr_event.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_producer.h"
#include "hr_time.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define INGEST_VALUES 10 /* ARGV per event, email_ingest.lua */
#define CLAIM_FIXED   17 /* values per window before its items */
#define SETTLE_MS     10000

/* The metric label of a category: its name when the catalog names it (a
 * bounded set), else "other". */
const char *email_category_label(const struct email_state *st,
                                 const char *category)
{
    const struct email_category *c = email_catalog_find(st->catalog, category);

    return c == email_catalog_find(st->catalog, "*") ? "other" : category;
}

/* The item stored for @item: its structured CloudEvent as received
 * (borrowed: *@owned NULL), else (binary mode) {"id", "time", "data"}
 * written here (*@owned, to free). */
static const char *
item_json(const struct hr_item *item, size_t *len, char **owned)
{
    json_t *wrap;

    *owned = NULL;
    if (json_object_get(item->ev.root, "specversion")) {
        *len = item->value_len;
        return item->value;
    }
    wrap = json_pack("{s:s, s:s?, s:O}", "id", item->ev.id, "time",
                     item->ev.time, "data", item->ev.data);
    *owned = wrap ? hr_arena_json_dumps(wrap, JSON_COMPACT) : NULL;
    json_decref(wrap);
    HR_ASSERT(*owned);
    *len = strlen(*owned);
    return *owned;
}

/* Append "%s" pieces to @buf at *@at (sized by the caller) and return the
 * start; NUL-terminated. */
static const char *put(char *buf,
                       size_t *at,
                       const char *a,
                       const char *b,
                       const char *c,
                       const char *d)
{
    char *start = buf + *at;
    const char *parts[] = {a, b, c, d};

    for (size_t k = 0; k < 4; k++) {
        size_t n = parts[k] ? strlen(parts[k]) : 0;

        memcpy(buf + *at, parts[k] ? parts[k] : "", n);
        *at += n;
    }
    buf[(*at)++] = '\0';
    return start;
}

struct email_ingest {
    size_t n; /* events */
    const char **argv;
    size_t *argvlen;
    size_t nkeys, nargs;
    char *buf;
    char **owned;
    size_t nowned;
    char now[24], keep[24];
};

void email_ingest_free(struct email_ingest *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->nowned; i++)
        free(in->owned[i]);
    free(in->owned);
    free(in->buf);
    free(in->argv);
    free(in->argvlen);
    free(in);
}

static bool ingests(const struct email_work *wk, size_t i)
{
    return wk->parsed[i] && wk->events[i].kind == EMAIL_NOTIFICATION &&
           wk->batch->items[i].outcome == HR_OUT_PENDING;
}

struct email_ingest *email_ingest_prepare(struct email_state *st,
                                          struct email_work *wk)
{
    struct hr_batch *batch = wk->batch;
    struct email_ingest *in;
    size_t n = 0, need = 0, at = 0;

    for (size_t i = 0; i < batch->n; i++) {
        const struct email_event *ev = &wk->events[i];

        if (!ingests(wk, i))
            continue;
        n++;
        /* three keys, two numbers and a position */
        need += 3 * strlen(st->prefix) + 3 * strlen(ev->user_id) +
                2 * strlen(ev->category) + 64 + 48 +
                strlen(batch->items[i].topic) + 48;
    }
    if (!n)
        return NULL;
    in = calloc(1, sizeof(*in));
    HR_ASSERT(in);
    in->n = n;
    in->argv = calloc(2 + 3 * n + 2 + INGEST_VALUES * n, sizeof(*in->argv));
    in->argvlen =
        calloc(2 + 3 * n + 2 + INGEST_VALUES * n, sizeof(*in->argvlen));
    in->owned = calloc(n, sizeof(*in->owned));
    in->buf = malloc(need);
    HR_ASSERT(in->argv && in->argvlen && in->owned && in->buf);
    in->argv[0] = st->keys.due;
    in->argv[1] = st->keys.offsets;
    in->nkeys = 2;
    for (size_t i = 0; i < batch->n; i++) {
        const struct email_event *ev = &wk->events[i];

        if (!ingests(wk, i))
            continue;
        in->argv[in->nkeys++] =
            put(in->buf, &at, st->prefix, "email:win:{", ev->user_id, "}:");
        at--; /* append the category to the same key */
        put(in->buf, &at, ev->category, NULL, NULL, NULL);
        in->argv[in->nkeys++] =
            put(in->buf, &at, st->prefix, "email:items:{", ev->user_id, "}:");
        at--;
        put(in->buf, &at, ev->category, NULL, NULL, NULL);
        in->argv[in->nkeys++] =
            put(in->buf, &at, st->prefix, "email:seen:{", ev->user_id, "}");
    }
    snprintf(in->now, sizeof(in->now), "%lld", (long long)hr_time_now_ms());
    snprintf(in->keep, sizeof(in->keep), "%lld", (long long)st->set.seen_ms);
    in->nargs = in->nkeys;
    in->argv[in->nargs++] = in->now;
    in->argv[in->nargs++] = in->keep;
    for (size_t i = 0; i < batch->n; i++) {
        const struct email_event *ev = &wk->events[i];
        const struct hr_item *item = &batch->items[i];
        const struct email_category *c;
        char num[48];

        if (!ingests(wk, i))
            continue;
        c = email_catalog_find(st->catalog, ev->category);
        in->argv[in->nargs++] = ev->id;
        in->argv[in->nargs++] = ev->user_id;
        in->argv[in->nargs++] = ev->category;
        in->argv[in->nargs++] = email_category_leading(c) ? "l" : "d";
        snprintf(num, sizeof(num), "%lld",
                 (long long)email_category_window_ms(c));
        in->argv[in->nargs++] = put(in->buf, &at, num, NULL, NULL, NULL);
        snprintf(num, sizeof(num), "%d", email_category_max_items(c));
        in->argv[in->nargs++] = put(in->buf, &at, num, NULL, NULL, NULL);
        in->argv[in->nargs++] = ev->to ? ev->to : "";
        in->argv[in->nargs++] = ev->locale ? ev->locale : "";
        in->argv[in->nargs] =
            item_json(item, &in->argvlen[in->nargs], &in->owned[in->nowned]);
        in->nargs++;
        in->nowned += in->owned[in->nowned] != NULL;
        if (item->offset >= 0) {
            snprintf(num, sizeof(num), ":%d:%lld", (int)item->partition,
                     (long long)item->offset);
            in->argv[in->nargs++] =
                put(in->buf, &at, item->topic, num, NULL, NULL);
        } else {
            in->argv[in->nargs++] = "";
        }
    }
    HR_ASSERT(at <= need);
    for (size_t i = 0; i < in->nargs; i++) {
        if (!in->argvlen[i])
            in->argvlen[i] = strlen(in->argv[i]);
    }
    return in;
}

int email_ingest_send(struct email_state *st, struct email_ingest *in)
{
    char errstr[256];

    if (hr_redis_eval_send(st->ingest_redis, &st->ingest_script, (int)in->nkeys,
                           (int)in->nargs, in->argv, in->argvlen, errstr,
                           sizeof(errstr))) {
        hr_log_debug("ingest not sent ahead", HR_LOG_STR("err", errstr));
        return -1;
    }
    return 0;
}

int email_ingest_finish(struct email_state *st,
                        struct email_work *wk,
                        struct email_ingest *in,
                        bool sent,
                        char *errstr,
                        size_t errstr_size)
{
    static const char *const results[] = {"duplicate", "opened", "added",
                                          "suppressed", "over_cap"};
    struct hr_batch *batch = wk->batch;
    redisReply *reply;
    size_t k = 0;
    int rc = -1;

    reply = sent ? hr_redis_reply(st->ingest_redis, &st->ingest_script, errstr,
                                  errstr_size)
                 : hr_redis_eval(st->ingest_redis, &st->ingest_script,
                                 (int)in->nkeys, (int)in->nargs, in->argv,
                                 in->argvlen, errstr, errstr_size);
    if (!reply)
        return -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != in->n) {
        snprintf(errstr, errstr_size, "ingest script: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        goto out;
    }
    for (size_t i = 0; i < batch->n; i++) {
        const struct email_event *ev = &wk->events[i];
        const char *label;
        long long r;

        if (!ingests(wk, i))
            continue;
        r = reply->element[k++]->integer;
        if (r < 0 || r > 4)
            r = 0;
        label = email_category_label(st, ev->category);
        hr_metric_add(st->ingested, (const char *[]){label, results[r]}, 1);
        if (r == 3)
            hr_metric_add(st->suppressed, (const char *[]){label}, 1);
        if (r == 0)
            hr_item_duplicate(&batch->items[i]);
        else
            hr_item_ok(&batch->items[i]);
    }
    rc = 0;
out:
    freeReplyObject(reply);
    return rc;
}

/* ---- the timer ----------------------------------------------------------- */

/* One claimed window, as email_claim.lua returns it. */
struct claimed {
    const char *cat, *user, *mode, *first, *to, *locale;
    const char *p_email, *p_name, *p_locale, *p_optout;
    long long fence, attempts, opened, due, n, sup;
    size_t nitems;
    redisReply **items;
};

static const char *rstr(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? r->str : "";
}

static long long rnum(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

/* Parse the claim reply's windows into @out (at most @max). */
static size_t
claimed_parse(const redisReply *reply, struct claimed *out, size_t max)
{
    size_t n = 0, i = 0;

    while (i + CLAIM_FIXED <= reply->elements && n < max) {
        redisReply **e = &reply->element[i];
        struct claimed *c = &out[n];

        c->cat = rstr(e[0]);
        c->user = rstr(e[1]);
        c->fence = rnum(e[2]);
        c->attempts = rnum(e[3]);
        c->mode = rstr(e[4]);
        c->opened = rnum(e[5]);
        c->due = rnum(e[6]);
        c->n = rnum(e[7]);
        c->sup = rnum(e[8]);
        c->first = rstr(e[9]);
        c->to = rstr(e[10]);
        c->locale = rstr(e[11]);
        c->p_email = rstr(e[12]);
        c->p_name = rstr(e[13]);
        c->p_locale = rstr(e[14]);
        c->p_optout = rstr(e[15]);
        c->nitems = (size_t)rnum(e[16]);
        c->items = &e[CLAIM_FIXED];
        i += CLAIM_FIXED + c->nitems;
        if (i > reply->elements)
            break;
        n++;
    }
    return n;
}

/* A stored item as a template sees it: the event's data, plus its id and
 * time. NULL when it does not parse (it is left out). */
static json_t *item_context(const redisReply *r)
{
    json_t *root = json_loadb(r->str, r->len, 0, NULL);
    json_t *data;

    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data)) {
        json_decref(root);
        return NULL;
    }
    json_incref(data);
    if (!json_object_get(data, "id"))
        json_object_set(data, "id", json_object_get(root, "id"));
    if (!json_object_get(data, "time") && json_object_get(root, "time"))
        json_object_set(data, "time", json_object_get(root, "time"));
    json_decref(root);
    return data;
}

static json_t *window_context(const struct claimed *c)
{
    json_t *items = json_array();
    json_t *first;
    size_t shown;
    /* a leading window's email is its first event (its count went on
     * with what it suppressed until the claim) */
    long long n = *c->mode == 'l' ? 1 : c->n;

    for (size_t i = 0; i < c->nitems; i++) {
        json_t *it = item_context(c->items[i]);

        if (it)
            json_array_append_new(items, it);
    }
    shown = json_array_size(items);
    first = json_array_get(items, 0);
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:o, s:O?}", "user_id", c->user,
        "user_name", c->p_name, "category", c->cat, "count", (json_int_t)n,
        "shown", (json_int_t)shown, "more",
        (json_int_t)(n > (long long)shown ? n - (long long)shown : 0), "digest",
        n > 1, "items", items, "first", first);
}

/*
 * Render @c into an email.send record in st->record. Returns 1 when a
 * record was written, 0 when the window is not to be sent (opted out),
 * -1 when it cannot be rendered (logged; the record says why).
 */
static int window_record(struct email_state *st,
                         const struct claimed *c,
                         char window_id[37])
{
    const struct email_category *cat = email_catalog_find(st->catalog, c->cat);
    struct email_rendered r = {&st->subject, &st->text, &st->html, &st->unsub};
    char opened[24], message_id[600], errstr[512], hdr_cat[100], hdr_win[80];
    const char *parts[] = {c->user, c->cat, opened};
    const char *to = *c->to ? c->to : (*c->p_email ? c->p_email : NULL);
    const char *undeliverable = NULL;
    const char *extra[3];
    json_t *ctx;

    snprintf(opened, sizeof(opened), "%lld", c->opened);
    hr_event_derive_id(window_id, parts, 3);
    if (!strcmp(c->p_optout, "1"))
        return 0;
    if (!to)
        undeliverable = "no address: the event has no 'to' and the "
                        "profile has no email";
    else if (!email_address_ok(to))
        undeliverable = "the profile's email is not an address";
    snprintf(message_id, sizeof(message_id), "%s@%s", window_id,
             st->set.domain);
    ctx = window_context(c);
    if (email_catalog_render(st->catalog, cat,
                             *c->locale ? c->locale : c->p_locale, ctx, &r,
                             errstr, sizeof(errstr))) {
        json_decref(ctx);
        hr_log_error("cannot render an email", HR_LOG_STR("category", c->cat),
                     HR_LOG_STR("err", errstr));
        return -1;
    }
    json_decref(ctx);
    snprintf(hdr_cat, sizeof(hdr_cat), "X-Herald-Category: %s", c->cat);
    snprintf(hdr_win, sizeof(hdr_win), "X-Herald-Window: %s", window_id);
    extra[0] = hdr_cat;
    extra[1] = hdr_win;
    extra[2] = NULL;
    struct email_message m = {
        .from = st->set.from,
        .from_name = email_catalog_from_name(st->catalog),
        .to = undeliverable ? "undisclosed-recipients@invalid" : to,
        .to_name = *c->p_name ? c->p_name : NULL,
        .subject = st->subject.p ? st->subject.p : "",
        .message_id = message_id,
        .date_ms = c->due,
        .text = st->text.p ? st->text.p : "",
        .html = st->html.len ? st->html.p : NULL,
        .unsubscribe_url = st->unsub.len ? st->unsub.p : NULL,
        .extra_headers = extra,
    };
    if (email_mime_build(&m, &st->mime, 16 * 1024 * 1024, errstr,
                         sizeof(errstr))) {
        hr_log_error("cannot build an email", HR_LOG_STR("category", c->cat),
                     HR_LOG_STR("err", errstr));
        return -1;
    }
    hr_event_write(&st->jw, window_id, EMAIL_SOURCE, "email.send", NULL);
    hr_jsonw_str(&st->jw, "user_id", c->user);
    hr_jsonw_str(&st->jw, "category", c->cat);
    hr_jsonw_str(&st->jw, "window_id", window_id);
    hr_jsonw_str(&st->jw, "message_id", message_id);
    hr_jsonw_str(&st->jw, "mode", *c->mode == 'l' ? "leading" : "digest");
    hr_jsonw_int(&st->jw, "items", *c->mode == 'l' ? 1 : c->n);
    hr_jsonw_int(&st->jw, "opened_ms", c->opened);
    hr_jsonw_int(&st->jw, "due_ms", c->due);
    hr_jsonw_str(&st->jw, "from", st->set.from);
    hr_jsonw_str(&st->jw, "to", undeliverable ? NULL : to);
    if (undeliverable)
        hr_jsonw_str(&st->jw, "undeliverable", undeliverable);
    hr_jsonw_str(&st->jw, "raw", st->mime.p);
    hr_jsonw_finish(&st->jw);
    return 1;
}

/* Complete @n windows (email_done.lua); returns how many were still ours. */
static size_t
windows_done(struct email_state *st, const struct claimed *cs, size_t n)
{
    const char **argv = calloc(1 + 4 * n, sizeof(*argv));
    char **owned = calloc(4 * n + 1, sizeof(*owned));
    size_t nkeys = 1, nargs, nowned = 0, done = 0;
    char errstr[256];
    redisReply *reply;

    HR_ASSERT(argv && owned);
    owned[nowned] = malloc(strlen(st->prefix) + 16);
    HR_ASSERT(owned[nowned]);
    snprintf(owned[nowned], strlen(st->prefix) + 16, "%semail:leases",
             st->prefix);
    argv[0] = owned[nowned++];
    for (size_t i = 0; i < n; i++) {
        size_t len =
            strlen(st->prefix) + strlen(cs[i].user) + strlen(cs[i].cat) + 32;

        owned[nowned] = malloc(len);
        HR_ASSERT(owned[nowned]);
        snprintf(owned[nowned], len, "%semail:out:{%s}:%s", st->prefix,
                 cs[i].user, cs[i].cat);
        argv[nkeys++] = owned[nowned++];
        owned[nowned] = malloc(len);
        HR_ASSERT(owned[nowned]);
        snprintf(owned[nowned], len, "%semail:outitems:{%s}:%s", st->prefix,
                 cs[i].user, cs[i].cat);
        argv[nkeys++] = owned[nowned++];
    }
    nargs = nkeys;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cs[i].user) + strlen(cs[i].cat) + 2;

        owned[nowned] = malloc(len + 24);
        HR_ASSERT(owned[nowned]);
        snprintf(owned[nowned], len, "%s:%s", cs[i].cat, cs[i].user);
        snprintf(owned[nowned] + len, 24, "%lld", cs[i].fence);
        argv[nargs++] = owned[nowned];
        argv[nargs++] = owned[nowned] + len;
        nowned++;
    }
    reply = hr_redis_eval(st->redis, &st->done_script, (int)nkeys, (int)nargs,
                          argv, NULL, errstr, sizeof(errstr));
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        hr_log_warn("cannot complete windows (their leases hand them out "
                    "again; their sends are not repeated)",
                    HR_LOG_STR("err", reply && reply->type == REDIS_REPLY_ERROR
                                          ? reply->str
                                          : errstr));
    } else {
        for (size_t i = 0; i < reply->elements && i < n; i++)
            done += reply->element[i]->integer == 1;
    }
    if (reply)
        freeReplyObject(reply);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return done;
}

/* One claim: returns how many windows it claimed (-1: Redis failed). */
static int flush_once(struct email_state *st)
{
    struct hr_producer *p = hr_worker_producer(st->w);
    char now[24], lease[24], limit[24], errstr[512], window_id[37];
    const char *argv[7];
    struct claimed *cs;
    redisReply *reply;
    size_t n, sent = 0, lost;
    uint64_t epoch;
    int bad;

    snprintf(now, sizeof(now), "%lld", (long long)hr_time_now_ms());
    snprintf(lease, sizeof(lease), "%lld", (long long)st->set.lease_ms);
    snprintf(limit, sizeof(limit), "%d", st->set.claim_max);
    argv[0] = st->keys.due;
    argv[1] = st->keys.leases;
    argv[2] = st->keys.fence;
    argv[3] = now;
    argv[4] = lease;
    argv[5] = limit;
    argv[6] = st->prefix;
    reply = hr_redis_eval(st->redis, &st->claim_script, 3, 7, argv, NULL,
                          errstr, sizeof(errstr));
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        hr_log_warn("cannot claim windows",
                    HR_LOG_STR("err", reply && reply->type == REDIS_REPLY_ERROR
                                          ? reply->str
                                          : errstr));
        if (reply)
            freeReplyObject(reply);
        return -1;
    }
    cs = calloc((size_t)st->set.claim_max, sizeof(*cs));
    HR_ASSERT(cs);
    n = claimed_parse(reply, cs, (size_t)st->set.claim_max);
    if (n)
        hr_log_debug("windows claimed", HR_LOG_I64("windows", (int64_t)n),
                     HR_LOG_I64("late_ms", hr_time_now_ms() - cs[0].due));
    for (size_t i = 0; i < n; i++) {
        const char *label = email_category_label(st, cs[i].cat);
        int r;

        hr_metric_add(
            st->windows,
            (const char *[]){cs[i].attempts > 1 ? "reclaimed" : "claimed"}, 1);
        r = window_record(st, &cs[i], window_id);
        if (r == 0) {
            hr_metric_add(st->skipped, (const char *[]){label, "opt_out"}, 1);
            continue;
        }
        if (r < 0) {
            hr_metric_add(st->skipped, (const char *[]){label, "render"}, 1);
            continue;
        }
        if (hr_producer_send(p, st->set.send_topic, cs[i].user,
                             strlen(cs[i].user), st->jw.buf, st->jw.len, NULL,
                             errstr, sizeof(errstr)) < 0) {
            hr_log_warn("cannot queue an email.send (the window's lease "
                        "hands it out again)",
                        HR_LOG_STR("err", errstr));
            cs[i].fence = -1; /* not completed: it goes again */
        }
        sent++;
    }
    epoch = hr_producer_seal(p);
    bad = hr_producer_settle(p, epoch, SETTLE_MS, errstr, sizeof(errstr));
    if (bad < 0) {
        hr_producer_forget(p, epoch);
        snprintf(errstr, sizeof(errstr), "not acknowledged in time");
    }
    if (bad) {
        hr_log_warn("email.send records not durable (their windows' leases "
                    "hand them out again)",
                    HR_LOG_STR("err", errstr));
    } else if (n) {
        size_t keep = 0;

        for (size_t i = 0; i < n; i++) {
            if (cs[i].fence >= 0)
                cs[keep++] = cs[i];
        }
        lost = keep - windows_done(st, cs, keep);
        hr_metric_add(st->windows, (const char *[]){"completed"},
                      (double)(keep - lost));
        if (lost) {
            hr_metric_add(st->windows, (const char *[]){"lost"}, (double)lost);
            hr_log_warn("windows claimed again by another replica before "
                        "this one completed them",
                        HR_LOG_I64("windows", (int64_t)lost));
        }
    }
    (void)sent;
    free(cs);
    freeReplyObject(reply);
    return (int)n;
}

void email_window_flush(struct email_state *st)
{
    int64_t until = hr_time_mono_ms() + 250;

    while (flush_once(st) == st->set.claim_max && hr_time_mono_ms() < until)
        ;
}
