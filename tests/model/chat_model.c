#include "chat_model.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_compat.h"
#include "hr_time.h"

/* One message to one recipient, for the model. */
struct chat_unread {
    int64_t ts;
};

struct chat_pair {
    int64_t read_ms; /* latest read_at, -1 none */
    int64_t *ts;     /* sent_at of the distinct messages to this user */
    size_t n, cap;
};

struct chat_scenario {
    struct chat_opts opts;
    struct chat_event *events;
    size_t n, cap;
    int *members;            /* convs * members user ids */
    struct chat_pair *pairs; /* convs * members */
};

static uint64_t next_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    HR_ASSERT(p);
    return p;
}

static void
push_event(struct chat_scenario *s, int conv, char *value, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->events = realloc(s->events, s->cap * sizeof(*s->events));
        HR_ASSERT(s->events);
    }
    snprintf(s->events[s->n].key, sizeof(s->events[s->n].key), "c%d", conv);
    s->events[s->n].value = value;
    s->events[s->n].len = len;
    s->n++;
}

static char *format_event(size_t *len, const char *fmt, ...) HR_PRINTF(2, 3);

static char *format_event(size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    HR_ASSERT(n > 0);
    out = malloc((size_t)n + 1);
    HR_ASSERT(out);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len = (size_t)n;
    return out;
}

static void
model_message(struct chat_scenario *s, int conv, int sender, int64_t ts)
{
    for (int m = 0; m < s->opts.members; m++) {
        struct chat_pair *pair;

        if (m == sender)
            continue;
        pair = &s->pairs[conv * s->opts.members + m];
        if (pair->n == pair->cap) {
            pair->cap = pair->cap ? pair->cap * 2 : 8;
            pair->ts = realloc(pair->ts, pair->cap * sizeof(*pair->ts));
            HR_ASSERT(pair->ts);
        }
        pair->ts[pair->n++] = ts;
    }
}

struct chat_scenario *chat_generate(const struct chat_opts *opts)
{
    struct chat_scenario *s = xcalloc(1, sizeof(*s));
    uint64_t rnd = opts->seed * 7919 + 17;
    int64_t now = opts->start_ms;
    char when[40];
    size_t unique;
    /* "u<int>", per recipient: at most 16 bytes each */
    size_t recips_size = (size_t)opts->members * 16 + 1;
    char *recips = xcalloc(recips_size, 1);

    s->opts = *opts;
    s->members = xcalloc((size_t)opts->convs * (size_t)opts->members,
                         sizeof(*s->members));
    s->pairs =
        xcalloc((size_t)opts->convs * (size_t)opts->members, sizeof(*s->pairs));
    for (int c = 0; c < opts->convs; c++) {
        /* distinct members: consecutive users from a random start */
        {
            int base = (int)(next_rand(&rnd) % (uint64_t)opts->users);

            for (int m = 0; m < opts->members; m++)
                s->members[c * opts->members + m] = (base + m) % opts->users;
        }
        for (int m = 0; m < opts->members; m++)
            s->pairs[c * opts->members + m].read_ms = -1;
    }

    for (size_t i = 0; i < opts->messages; i++) {
        int conv = (int)(next_rand(&rnd) % (uint64_t)opts->convs);
        int sender = (int)(next_rand(&rnd) % (uint64_t)opts->members);
        int *mem = &s->members[conv * opts->members];
        size_t used = 0, len;
        char *v;

        now += 1 + (int64_t)(next_rand(&rnd) % 1000);
        for (int m = 0; m < opts->members; m++) {
            if (m == sender)
                continue;
            used += (size_t)snprintf(recips + used, recips_size - used,
                                     "%s\"u%d\"", used ? "," : "", mem[m]);
        }
        hr_time_format_rfc3339(now, when, sizeof(when));
        if (opts->dynamodb) {
            /* recipient_ids as a DynamoDB string set: the same strings */
            v = format_event(
                &len,
                "{\"eventID\":\"msg-%zu\",\"eventName\":\"INSERT\","
                "\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\","
                "\"awsRegion\":\"eu-west-1\",\"eventSourceARN\":"
                "\"arn:aws:dynamodb:eu-west-1:123456789012:table/Messages/"
                "stream/2026-11-22T00:00:00.000\",\"dynamodb\":{"
                "\"ApproximateCreationDateTime\":%" PRId64 ",\"Keys\":{"
                "\"conversation_id\":{\"S\":\"c%d\"},\"message_id\":{\"S\":"
                "\"m%zu\"}},\"NewImage\":{\"conversation_id\":{\"S\":\"c%d\"},"
                "\"message_id\":{\"S\":\"m%zu\"},\"sender_id\":{\"S\":\"u%d\"},"
                "\"recipient_ids\":{\"SS\":[%s]},\"created_at\":{\"S\":"
                "\"%s\"},\"kind\":{\"S\":\"text\"},\"sender_name\":{\"S\":"
                "\"User %d\"},\"text\":{\"S\":\"message number %zu in c%d\"}},"
                "\"SequenceNumber\":\"%zu\",\"SizeBytes\":256,"
                "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}",
                i, now / 1000, conv, i, conv, i, mem[sender], recips, when,
                mem[sender], i, conv, 100000000 + i);
        } else {
            v = format_event(
                &len,
                "{\"specversion\":\"1.0\",\"id\":\"msg-%zu\",\"source\":\"/"
                "chat\","
                "\"type\":\"message.created\",\"data\":{\"conversation_id\":"
                "\"c%d\",\"message_id\":\"m%zu\",\"sender_id\":\"u%d\","
                "\"recipient_ids\":[%s],\"sent_at\":\"%s\",\"sender_name\":"
                "\"User %d\",\"preview\":\"message number %zu in c%d\"}}",
                i, conv, i, mem[sender], recips, when, mem[sender], i, conv);
        }
        push_event(s, conv, v, len);
        model_message(s, conv, sender, now);

        /* Read receipts: a member read up to a moment in the recent past. */
        if ((double)(next_rand(&rnd) % 10000) < opts->read_ratio * 10000) {
            int rconv = (int)(next_rand(&rnd) % (uint64_t)opts->convs);
            int rm = (int)(next_rand(&rnd) % (uint64_t)opts->members);
            int64_t read_at = now - (int64_t)(next_rand(&rnd) % 20000);
            struct chat_pair *pair = &s->pairs[rconv * opts->members + rm];

            hr_time_format_rfc3339(read_at, when, sizeof(when));
            if (opts->dynamodb)
                v = format_event(
                    &len,
                    "{\"eventID\":\"read-%zu\",\"eventName\":\"MODIFY\","
                    "\"eventVersion\":\"1.1\",\"eventSource\":"
                    "\"aws:dynamodb\",\"awsRegion\":\"eu-west-1\","
                    "\"eventSourceARN\":\"arn:aws:dynamodb:eu-west-1:"
                    "123456789012:table/ReadReceipts/stream/"
                    "2026-11-22T00:00:00.000\",\"dynamodb\":{"
                    "\"ApproximateCreationDateTime\":%" PRId64 ",\"Keys\":{"
                    "\"conversation_id\":{\"S\":\"c%d\"},\"user_id\":{\"S\":"
                    "\"u%d\"}},\"NewImage\":{\"conversation_id\":{\"S\":"
                    "\"c%d\"},\"user_id\":{\"S\":\"u%d\"},\"read_at\":{\"S\":"
                    "\"%s\"}},\"SequenceNumber\":\"%zu\",\"SizeBytes\":128,"
                    "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}",
                    i, now / 1000, rconv,
                    s->members[rconv * opts->members + rm], rconv,
                    s->members[rconv * opts->members + rm], when,
                    200000000 + i);
            else
                v = format_event(
                    &len,
                    "{\"specversion\":\"1.0\",\"id\":\"read-%zu\",\"source\":"
                    "\"/chat\",\"type\":\"conversation.read\",\"data\":{"
                    "\"conversation_id\":\"c%d\",\"user_id\":\"u%d\","
                    "\"read_at\":\"%s\"}}",
                    i, rconv, s->members[rconv * opts->members + rm], when);
            push_event(s, rconv, v, len);
            if (read_at > pair->read_ms)
                pair->read_ms = read_at;
        }
    }

    /* Out of order: permute within windows. */
    for (size_t w = 0; opts->shuffle_window > 1 && w < s->n;
         w += (size_t)opts->shuffle_window) {
        size_t end = w + (size_t)opts->shuffle_window;

        if (end > s->n)
            end = s->n;
        for (size_t i = end - 1; i > w; i--) {
            size_t j = w + next_rand(&rnd) % (i - w + 1);
            struct chat_event t = s->events[i];

            s->events[i] = s->events[j];
            s->events[j] = t;
        }
    }

    /* Duplicates: the same event (same id) again, a little later. */
    unique = s->n;
    for (size_t i = 0; i < unique; i++) {
        if ((double)(next_rand(&rnd) % 10000) < opts->dup_ratio * 10000) {
            char *copy = malloc(s->events[i].len + 1);

            HR_ASSERT(copy);
            memcpy(copy, s->events[i].value, s->events[i].len + 1);
            push_event(s, 0, copy, s->events[i].len);
            memcpy(s->events[s->n - 1].key, s->events[i].key,
                   sizeof(s->events[i].key));
        }
    }
    /* spread the duplicates: interleave them into the second half */
    for (size_t i = unique; i < s->n; i++) {
        size_t j = unique / 2 + next_rand(&rnd) % (i - unique / 2 + 1);
        struct chat_event t = s->events[i];

        s->events[i] = s->events[j];
        s->events[j] = t;
    }
    free(recips);
    return s;
}

void chat_free(struct chat_scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->events[i].value);
    for (int p = 0; p < s->opts.convs * s->opts.members; p++)
        free(s->pairs[p].ts);
    free(s->pairs);
    free(s->members);
    free(s->events);
    free(s);
}

size_t chat_count(const struct chat_scenario *s)
{
    return s->n;
}

const struct chat_event *chat_event_at(const struct chat_scenario *s, size_t i)
{
    return &s->events[i];
}

static int64_t pair_count(const struct chat_pair *pair, int64_t max)
{
    int64_t n = 0;

    for (size_t i = 0; i < pair->n; i++)
        n += pair->ts[i] > pair->read_ms;
    return n > max ? max : n;
}

int64_t chat_expected_count(const struct chat_scenario *s,
                            int user,
                            int conv,
                            int64_t max)
{
    for (int m = 0; m < s->opts.members; m++) {
        if (s->members[conv * s->opts.members + m] == user)
            return pair_count(&s->pairs[conv * s->opts.members + m], max);
    }
    return 0;
}

/* Per-user totals, computed in one pass. */
static int64_t *all_totals(const struct chat_scenario *s, int64_t max)
{
    int64_t *totals = xcalloc((size_t)s->opts.users, sizeof(*totals));

    for (int p = 0; p < s->opts.convs * s->opts.members; p++)
        totals[s->members[p]] += pair_count(&s->pairs[p], max);
    return totals;
}

int64_t
chat_expected_total(const struct chat_scenario *s, int user, int64_t max)
{
    int64_t *totals = all_totals(s, max), t = totals[user];

    free(totals);
    return t;
}

int64_t chat_expected_sum(const struct chat_scenario *s, int64_t max)
{
    int64_t *totals = all_totals(s, max), sum = 0;

    for (int u = 0; u < s->opts.users; u++)
        sum += totals[u];
    free(totals);
    return sum;
}

int chat_verify_redis(const struct chat_scenario *s,
                      redisContext *redis,
                      const char *prefix,
                      int64_t max,
                      char *err,
                      size_t err_size)
{
    int users = s->opts.users, bad = 0;
    int64_t *totals = all_totals(s, max);
    int64_t *fields = xcalloc((size_t)users, sizeof(*fields));
    size_t used = 0;

    for (int p = 0; p < s->opts.convs * s->opts.members; p++)
        fields[s->members[p]] += pair_count(&s->pairs[p], max) > 0;

    err[0] = '\0';
#define CHAT_MISMATCH(...)                                                  \
    do {                                                                    \
        if (bad++ < 5 && used < err_size)                                   \
            used +=                                                         \
                (size_t)snprintf(err + used, err_size - used, __VA_ARGS__); \
    } while (0)

    for (int u = 0; u < users; u++) {
        redisAppendCommand(redis, "HGETALL %sunread:{u%d}", prefix, u);
        redisAppendCommand(redis, "GET %sunread_total:{u%d}", prefix, u);
    }
    for (int u = 0; u < users; u++) {
        redisReply *hash = NULL, *total = NULL;
        int64_t got_total, expect_fields = fields[u];

        if (redisGetReply(redis, (void **)&hash) != REDIS_OK ||
            redisGetReply(redis, (void **)&total) != REDIS_OK) {
            CHAT_MISMATCH("redis error: %s; ", redis->errstr);
            freeReplyObject(hash);
            break;
        }
        for (size_t i = 0; i + 1 < hash->elements; i += 2) {
            int conv = (int)strtol(hash->element[i]->str + 1, NULL, 10);
            int64_t got = strtoll(hash->element[i + 1]->str, NULL, 10);
            int64_t want = chat_expected_count(s, u, conv, max);

            if (got != want)
                CHAT_MISMATCH("u%d/c%d: %" PRId64 " != %" PRId64 "; ", u, conv,
                              got, want);
        }
        /* fields with 0 must be absent */
        if ((int64_t)hash->elements / 2 != expect_fields)
            CHAT_MISMATCH("u%d: %zu fields != %" PRId64 "; ", u,
                          hash->elements / 2, expect_fields);
        got_total = total->type == REDIS_REPLY_STRING
                        ? strtoll(total->str, NULL, 10)
                        : 0;
        if (got_total != totals[u])
            CHAT_MISMATCH("u%d total: %" PRId64 " != %" PRId64 "; ", u,
                          got_total, totals[u]);
        freeReplyObject(hash);
        freeReplyObject(total);
    }
#undef CHAT_MISMATCH
    free(fields);
    free(totals);
    return bad;
}
