/*
 * Amazon SNS notifications delivered to SQS without raw delivery: the
 * queue's message body is an envelope ({"Type": "Notification",
 * "MessageId", "TopicArn", "Message": "<the published payload as a
 * string>", "Timestamp", "Signature"..., optional "MessageAttributes":
 * {"name": {"Type": "String"|"Number"|"Binary", "Value": "..."}}}) whose
 * Message is the event (research/aws.md §3). Signatures are not checked:
 * the message came through the worker's own queue.
 */
#ifndef HR_SNS_H
#define HR_SNS_H

#include <stddef.h>

enum hr_sns_result {
    HR_SNS_NOT_ENVELOPE = 0, /* not an SNS envelope: the body is the event */
    HR_SNS_MESSAGE,          /* a notification: its Message is the event */
    HR_SNS_REFUSED,          /* an envelope without an event in it */
};

/** Called for each message attribute of a notification; @value (@len
 *  bytes, Binary ones decoded) is borrowed for the call. */
typedef void
hr_sns_attr_fn(void *opaque, const char *name, const void *value, size_t len);

/**
 * Look at @body (@len bytes). An envelope is a JSON object with string
 * Type, TopicArn and MessageId members. A "Notification" whose Message is
 * a string gives HR_SNS_MESSAGE, *@message (malloc'd, NUL-terminated;
 * caller frees) and *@message_len, and @attr (may be NULL) is called for
 * each attribute. Any other envelope (a SubscriptionConfirmation, a
 * Notification without a string Message, a malformed attribute) gives
 * HR_SNS_REFUSED with the reason in @why.
 */
enum hr_sns_result hr_sns_unwrap(const char *body,
                                 size_t len,
                                 char **message,
                                 size_t *message_len,
                                 hr_sns_attr_fn *attr,
                                 void *opaque,
                                 char *why,
                                 size_t why_size);

#endif
