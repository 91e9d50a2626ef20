/*
 * One consumed message, whatever its source: a Kafka record or an Amazon
 * SQS message. The runtime and the handlers see only this view; the source
 * that made it (source/hr_source.h) keeps what it needs to acknowledge it
 * behind it and answers header lookups through @ops.
 *
 *   field       Kafka                     SQS
 *   topic       the topic                 the queue's name
 *   partition   the partition             0
 *   offset      the offset                -1
 *   id          NULL                      MessageId
 *   group       NULL                      MessageGroupId (FIFO), else NULL
 *   attempt     0 (not counted)           ApproximateReceiveCount
 *   key         the record key            MessageGroupId (FIFO), else none
 *   headers     the record headers        message attributes (String,
 *                                         Number and Binary values), and
 *                                         an SNS envelope's attributes
 *   value       the record value          the body, or the Message of an
 *                                         SNS envelope
 *
 * Everything is borrowed from the source and lives until the message is
 * acknowledged or abandoned (hr_source_ack(), hr_source_abandon()).
 */
#ifndef HR_MSG_H
#define HR_MSG_H

#include <stddef.h>
#include <stdint.h>

struct hr_hdrs;
struct hr_msg;

/** Header access, one table per source. */
struct hr_msg_ops {
    /** The value of the last header @name and its length, or NULL. */
    const void *(*header)(const struct hr_msg *msg,
                          const char *name,
                          size_t *len);
    /** The @idx-th header (0-based, in order), or -1 past the last. */
    int (*header_at)(const struct hr_msg *msg,
                     size_t idx,
                     const char **name,
                     const void **value,
                     size_t *len);
};

/** What the source does with a message the runtime is done with. */
enum hr_msg_fate {
    HR_MSG_DONE = 0, /* its outcome is durable: forget it (Kafka: store the
                        offset; SQS: delete it) */
    HR_MSG_AGAIN,    /* deliver it again after again_ms (SQS: visibility) */
    HR_MSG_DEAD,     /* dead-letter it in the source's own dead-letter
                        queue with @dead's headers, then forget it */
};

struct hr_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *id;
    const char *group;
    int32_t attempt;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t timestamp_ms;
    /* Set by the source when the message cannot be an event at all (an
     * SNS envelope without its message): the runtime dead-letters it with
     * this reason before any handler sees it. NULL otherwise. */
    const char *refused;
    const struct hr_msg_ops *ops;

    /* Written by the runtime before it acknowledges the message. */
    enum hr_msg_fate fate;
    int64_t again_ms;     /* HR_MSG_AGAIN: after how long */
    struct hr_hdrs *dead; /* HR_MSG_DEAD: the dead letter's headers, owned
                             by the message until the source frees it */
};

/** The last header @name of @msg and its length, or NULL (also when @msg
 *  is NULL). Not NUL-terminated. */
const void *
hr_msg_header(const struct hr_msg *msg, const char *name, size_t *len);

/** The @idx-th header of @msg; returns 0, or -1 past the last. */
int hr_msg_header_at(const struct hr_msg *msg,
                     size_t idx,
                     const char **name,
                     const void **value,
                     size_t *len);

#endif
