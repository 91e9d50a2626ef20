/*
 * A scripted chat workload and the exact model of its unread counts, shared
 * by the integration tests, the benchmark and the demo loader.
 *
 * Conversations have fixed members; each message goes from one member to
 * the others. Read receipts carry a read_at somewhat before the moment they
 * are generated, events are shuffled within a window (so receipts arrive
 * both before older messages and after newer ones), and a fraction of
 * events is sent again later with the same id.
 */
#ifndef CHAT_MODEL_H
#define CHAT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct chat_opts {
    uint64_t seed;
    int users;          /* u0 .. u<users-1> */
    int convs;          /* c0 .. c<convs-1> */
    int members;        /* per conversation (>= 2) */
    size_t messages;    /* message.created events (before duplicates) */
    double read_ratio;  /* conversation.read events per message */
    double dup_ratio;   /* share of events sent twice (same id) */
    int shuffle_window; /* events permuted within windows of this size */
    int64_t start_ms;   /* sent_at of the first message */
    int dynamodb;       /* events as DynamoDB Streams records of the app's
                           Messages and ReadReceipts tables (for
                           herald-fanout) instead of CloudEvents */
};

struct chat_event {
    char key[32]; /* conversation id (the partition key) */
    char *value;  /* CloudEvent JSON */
    size_t len;
};

struct chat_scenario;

/** Generate a scenario. Never NULL (aborts on OOM). */
struct chat_scenario *chat_generate(const struct chat_opts *opts);
void chat_free(struct chat_scenario *s);

/** Events in delivery order (duplicates included). */
size_t chat_count(const struct chat_scenario *s);
const struct chat_event *chat_event_at(const struct chat_scenario *s, size_t i);

/** The exact expected count for (user, conversation) and the user's total,
 *  with counts saturating at @max. */
int64_t chat_expected_count(const struct chat_scenario *s,
                            int user,
                            int conv,
                            int64_t max);
int64_t
chat_expected_total(const struct chat_scenario *s, int user, int64_t max);

/**
 * Compare Redis with the model: every user's herald:unread:{u} hash (exact
 * field set) and herald:unread_total:{u}. Returns the number of mismatches
 * (0 when exact); the first few are described in @err.
 */
int chat_verify_redis(const struct chat_scenario *s,
                      redisContext *redis,
                      const char *prefix,
                      int64_t max,
                      char *err,
                      size_t err_size);

/** The sum of all expected totals (a quick summary figure). */
int64_t chat_expected_sum(const struct chat_scenario *s, int64_t max);

#endif
