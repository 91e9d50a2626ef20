/*
 * Change input normalization (SPEC sections 4 and 8): one Kafka record value
 * from herald.changes (a DynamoDB Streams record or Lambda-style batch, a
 * Debezium change event, or a CloudEvent) becomes one or more change
 * documents, so that one filter language serves every source:
 *
 *   {"id", "op": "insert|modify|remove|snapshot", "table", "type",
 *    "keys", "new", "old", "changed": [...], "ts_ms",
 *    "source": {"format": "dynamodb|debezium|cloudevents", ...}}
 *
 * Shape of a document (every member is always present except "type"):
 *
 * - "type" is the CloudEvent type and exists only for CloudEvents; routing
 *   falls back to "<table>.<op>" for the other formats.
 * - "keys", "new", "old" are objects, or null when the record does not carry
 *   them: DynamoDB KEYS_ONLY / NEW_IMAGE / OLD_IMAGE streams omit images,
 *   inserts have no old image and removes no new one. Debezium "keys"
 *   come from the Kafka record key (fanout_normalize_input()), so they are
 *   null through fanout_normalize().
 * - "changed" is a sorted array of top-level field names: for insert and
 *   snapshot every field of "new", for remove every field of "old", for
 *   modify the fields whose values differ between "old" and "new" (a field
 *   present on one side only counts). It is null when it cannot be known:
 *   an image is missing, or a relational Debezium "before" lacks columns
 *   that "after" has (REPLICA IDENTITY DEFAULT, binlog_row_image=MINIMAL),
 *   so a rule's match.changed never matches on a guess.
 * - "ts_ms" is an integer (milliseconds since the epoch) or null.
 *
 * Per format:
 *
 * - DynamoDB: id = eventID; op from eventName INSERT/MODIFY/REMOVE; table
 *   from eventSourceARN (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME
 *   [/stream/LABEL]), or "tableName" for Kinesis Data Streams records,
 *   which have no ARN; keys/new/old from Keys/NewImage/OldImage; ts_ms from
 *   dynamodb.ApproximateCreationDateTime (seconds, possibly fractional,
 *   rounded to ms; values >= 1e11 are taken as ms and >= 1e14 as us, as
 *   Kinesis may send); source: arn, region, account, sequence_number,
 *   stream_view_type (null when absent) and user_identity (only on TTL
 *   deletes). "changed" compares the typed values: sets as sets, numbers
 *   by value ("100" equals "1E2").
 * - Debezium: op c/u/d/r -> insert/modify/remove/snapshot; before -> old,
 *   after -> new; table = source.table (source.collection for MongoDB,
 *   whose before/after JSON text is parsed, and whose updateDescription
 *   gives "changed" when there is no before image); ts_ms = the top-level
 *   ts_ms (when the connector processed it), else source.ts_ms; source =
 *   a copy of Debezium's source block (connector, name, db, schema, table,
 *   lsn, file, pos, row, ...) plus "format".
 * - CloudEvents: id "<length of source>:<source>:<id>" (identity is source
 *   + id), type, and data (as "new"; data_base64 decoded when JSON, else
 *   its text); op "insert"; table, keys and old null; ts_ms from "time"
 *   (null if absent or not RFC 3339); source: "format" and every context
 *   attribute but data (subject and time null if absent). A JSON array is
 *   the batch format: one document per event.
 *
 * DynamoDB typed attribute values become plain JSON. Numbers are kept exact
 * rather than typed: an N whose value is an integer that fits int64 becomes
 * a JSON integer (-0 becomes 0, "1E+2" becomes 100); a non-integer N
 * becomes a JSON real only when its text survives a round trip through a
 * double (text -> nearest double -> same digits back, e.g. "0.1",
 * "0.30000000000000004"); anything else stays the original string:
 * integers beyond int64 ("18446744073709551621", "1e20", even DBL_MAX),
 * "1e400", "1e-400", "12345678901234567890.5". So a reader never gets a
 * silently rounded number, at the price of some numbers arriving as
 * strings. NS elements follow the same rule. B and BS stay base64 strings;
 * SS/NS/BS keep the record's element order. Numbers in Debezium and
 * CloudEvents values are JSON already and pass through as parsed (an
 * integer beyond int64 there is rejected by the JSON parser as invalid).
 */
#ifndef FANOUT_NORMALIZE_H
#define FANOUT_NORMALIZE_H

#include <stddef.h>

#include <jansson.h>

#include "hr_compat.h"
#include "hr_event.h"

/** The input formats, as named in a document's "source"."format". */
enum fanout_format {
    FANOUT_FMT_DYNAMODB,
    FANOUT_FMT_DEBEZIUM,
    FANOUT_FMT_CLOUDEVENTS,
};

/** What fanout_normalize() made of a record. */
enum fanout_norm_result {
    FANOUT_NORM_OK = 0, /* one or more documents appended */
    FANOUT_NORM_SKIP,   /* a valid record that is not a row change */
    FANOUT_NORM_ERROR,  /* poison: the record cannot be normalized */
};

/**
 * The name of @fmt as used in "source"."format" ("dynamodb", "debezium",
 * "cloudevents"), or "unknown". The string is static.
 */
const char *fanout_normalize_format_name(enum fanout_format fmt);

/**
 * Normalize one Kafka record value of @len bytes (NULL or 0 bytes: a
 * tombstone) into change documents appended to the JSON array @docs (the
 * documents are new references owned by @docs). @get_header / @opaque read
 * the record's headers and may be NULL; they are used only to recognize
 * CloudEvents: a "content-type" header starting with
 * "application/cloudevents" means structured mode, otherwise a "ce_id"
 * header means binary mode (attributes in ce_* headers, the value is the
 * data, possibly empty).
 *
 * Without CloudEvents headers the JSON object decides the format, in this
 * order: "specversion" means a structured CloudEvent; "Records" (a
 * Lambda-style batch), "eventSourceARN" or "dynamodb" mean DynamoDB; "op"
 * next to "before", "after" or "source", bare or under "payload" (the JSON
 * converter's schema/payload envelope), means Debezium; anything else is
 * "unknown record format".
 *
 * Returns:
 * - FANOUT_NORM_OK: at least one document was appended. A DynamoDB batch
 *   yields one document per record, in order.
 * - FANOUT_NORM_SKIP: nothing was appended and @errstr says why: a
 *   tombstone (empty value, JSON null, or an envelope whose payload is
 *   null), a Debezium heartbeat or transaction BEGIN/END record, a Debezium
 *   truncate ("t") or logical-decoding message ("m") event, which carry no
 *   row, or an empty DynamoDB batch.
 * - FANOUT_NORM_ERROR: nothing was appended and @errstr holds a short reason
 *   ("invalid json: ...", "payload too large: N bytes", "unknown record
 *   format", "dynamodb: unknown attribute type 'X' at new.a.b",
 *   "debezium: unknown op 'x'", "cloudevents: missing attribute 'id'").
 *   Here a batch is all or nothing: one bad record fails the whole Kafka
 *   record, and the reason names it ("record 2: dynamodb: missing
 *   eventID"); fanout_normalize_input() can set bad records aside instead,
 *   so that each is dead-lettered alone.
 *
 * Document ids: DynamoDB eventID; CloudEvent source + id; for Debezium
 * "<connector>:<server name>:<db>[.<schema>].<table>:<op>:<position>:<hash>"
 * where the position comes from the fields the source block carries,
 * whatever its connector ("lsn=N"; "lsn=CHANGE:COMMIT[:SERIAL]";
 * "scn=SCN:COMMIT_SCN"; "binlog=FILE:POS:ROW" (not for an empty FILE);
 * "oplog=SEC_OR_TS_MS:ORD[:txn=N]"; "gtid=G"; otherwise
 * "ts=SOURCE_TS_MS:tx=ID") and <hash> is a 64-bit FNV-1a digest of the
 * Kafka key (when given) and the canonical before/after images, which separates
 * rows that share a position (snapshot rows, a primary-key change emitted as
 * delete + create, several changes of one MongoDB transaction). The same
 * Debezium event re-sent after a connector restart gets the same id; the
 * top-level ts_ms (processing time) is not part of it. Limit: two identical
 * rows of a table without a key, read at one snapshot position, get one id.
 *
 * Never crashes and never aborts on any input; values larger than
 * HR_EVENT_MAX_BYTES are rejected before parsing. Thread-safe: no shared
 * state. @errstr is written on SKIP and ERROR.
 */
HR_MUST_CHECK enum fanout_norm_result
fanout_normalize(const void *value,
                 size_t len,
                 hr_event_header_fn *get_header,
                 void *opaque,
                 json_t *docs,
                 char *errstr,
                 size_t errstr_size);

/** One Kafka record as fanout_normalize_input() reads it. */
struct fanout_input {
    const void *value; /* NULL or 0 bytes: a tombstone */
    size_t len;
    const void *key; /* the record key, NULL when none */
    size_t key_len;
    hr_event_header_fn *get_header;   /* may be NULL */
    hr_event_header_at_fn *header_at; /* may be NULL: lists the headers
                                         for binary-mode extensions */
    void *opaque;                     /* for both */
};

/**
 * fanout_normalize() with the record's key and a place for the bad records
 * of a batch:
 *
 * - The key (Debezium's JSON converter writes the row's primary key
 *   there) gives a Debezium document its "keys" and is part of its id;
 *   see "Debezium keys" at the top of this file.
 * - @rejects (a JSON array, or NULL for all-or-nothing batches as in
 *   fanout_normalize()): a record of a DynamoDB or CloudEvents batch that
 *   cannot be normalized is appended there as {"index": N, "reason":
 *   "record N: ...", "record": <the record>} while the others become
 *   documents (FANOUT_NORM_OK). When no record of the batch is good, the
 *   result is FANOUT_NORM_ERROR with the first one's reason, and nothing
 *   is appended to @rejects: the Kafka record is bad as a whole.
 *
 * Same ownership, thread-safety and limits as fanout_normalize().
 */
HR_MUST_CHECK enum fanout_norm_result
fanout_normalize_input(const struct fanout_input *in,
                       json_t *docs,
                       json_t *rejects,
                       char *errstr,
                       size_t errstr_size);

#endif
