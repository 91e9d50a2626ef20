#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devbroker.h"
#include "hr_banned.h"

/* SPEC.md section 3: the fixed default topics, one redeliver topic per
 * worker. */
static const char *const default_topics[] = {
    "herald.changes",
    "herald.messages",
    "herald.unread",
    "herald.push",
    "herald.devices",
    "herald.email",
    "herald.subscriptions",
    "herald.entitlements",
    "herald.retry",
    "herald.dlq",
    "herald.redeliver.fanout",
    "herald.redeliver.unread",
    "herald.redeliver.push",
    "herald.redeliver.email",
    "herald.redeliver.subs",
    "herald.redeliver.guard",
};

static struct devbroker_topic *
topics_find(struct devbroker_topics *topics, const char *name, size_t name_len)
{
    for (size_t i = 0; i < topics->cnt; i++) {
        if (strlen(topics->v[i].name) == name_len &&
            !memcmp(topics->v[i].name, name, name_len))
            return &topics->v[i];
    }
    return NULL;
}

/* Add @name (not NUL-terminated, @name_len bytes) or update its partition
 * count when it is already listed. */
static int topics_set(struct devbroker_topics *topics,
                      const char *name,
                      size_t name_len,
                      int partitions)
{
    struct devbroker_topic *topic;

    topic = topics_find(topics, name, name_len);
    if (topic) {
        topic->partitions = partitions;
        return 0;
    }
    if (topics->cnt == topics->cap) {
        size_t cap = topics->cap ? topics->cap * 2 : 32;
        struct devbroker_topic *v = realloc(topics->v, cap * sizeof(*v));

        if (!v)
            return -1;
        topics->v = v;
        topics->cap = cap;
    }
    topic = &topics->v[topics->cnt];
    topic->name = malloc(name_len + 1);
    if (!topic->name)
        return -1;
    memcpy(topic->name, name, name_len);
    topic->name[name_len] = '\0';
    topic->partitions = partitions;
    topics->cnt++;
    return 0;
}

int devbroker_topics_add_defaults(struct devbroker_topics *topics,
                                  int partitions)
{
    for (size_t i = 0; i < HR_ARRAY_SIZE(default_topics); i++) {
        if (topics_set(topics, default_topics[i], strlen(default_topics[i]),
                       partitions))
            return -1;
    }
    return 0;
}

/* Kafka's legal topic names: [a-zA-Z0-9._-]{1,249}. */
static bool topic_name_is_valid(const char *name, size_t len)
{
    if (len == 0 || len > 249)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int devbroker_topics_parse(struct devbroker_topics *topics,
                           const char *spec,
                           int default_partitions,
                           char *errstr,
                           size_t errstr_size)
{
    const char *p = spec;

    while (*p) {
        const char *end = strchr(p, ',');
        const char *colon;
        size_t entry_len, name_len;
        int partitions = default_partitions;

        entry_len = end ? (size_t)(end - p) : strlen(p);
        colon = memchr(p, ':', entry_len);
        name_len = colon ? (size_t)(colon - p) : entry_len;
        if (!topic_name_is_valid(p, name_len)) {
            snprintf(errstr, errstr_size,
                     "invalid topic name '%.*s' in --topics (use "
                     "[a-zA-Z0-9._-], 1 to 249 characters)",
                     (int)name_len, p);
            return -1;
        }
        if (colon) {
            char num[16];
            size_t num_len = entry_len - name_len - 1;
            char *num_end;
            long val;

            if (num_len == 0 || num_len >= sizeof(num)) {
                snprintf(errstr, errstr_size,
                         "invalid partition count for topic '%.*s' in "
                         "--topics",
                         (int)name_len, p);
                return -1;
            }
            memcpy(num, colon + 1, num_len);
            num[num_len] = '\0';
            errno = 0;
            val = strtol(num, &num_end, 10);
            if (errno || *num_end || val < 1 ||
                val > DEVBROKER_MAX_PARTITIONS) {
                snprintf(errstr, errstr_size,
                         "invalid partition count '%s' for topic '%.*s' "
                         "(1 to %d)",
                         num, (int)name_len, p, DEVBROKER_MAX_PARTITIONS);
                return -1;
            }
            partitions = (int)val;
        }
        if (topics_set(topics, p, name_len, partitions)) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int devbroker_topics_create(rd_kafka_mock_cluster_t *mcluster,
                            const struct devbroker_topics *topics,
                            int replication,
                            char *errstr,
                            size_t errstr_size)
{
    for (size_t i = 0; i < topics->cnt; i++) {
        rd_kafka_resp_err_t err;

        err = rd_kafka_mock_topic_create(mcluster, topics->v[i].name,
                                         topics->v[i].partitions, replication);
        if (err) {
            snprintf(errstr, errstr_size, "cannot create topic '%s': %s",
                     topics->v[i].name, rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

void devbroker_topics_release(struct devbroker_topics *topics)
{
    for (size_t i = 0; i < topics->cnt; i++)
        free(topics->v[i].name);
    free(topics->v);
    topics->v = NULL;
    topics->cnt = 0;
    topics->cap = 0;
}
