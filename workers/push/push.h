/*
 * herald-push: the device registry and push deliveries to APNs, FCM HTTP
 * v1 and Web Push (SPEC sections 4, 5, 9; the worker README tells the
 * whole story).
 *
 * A batch goes: parse the events (push_event.c); apply the registry's
 * changes in one script call (push_registry.c); plan the pushes: each
 * push.requested becomes one delivery per device, its badge read and each
 * (event, device) claimed in Redis so that no device gets an event twice
 * (push_plan.c); build every delivery's request with its provider
 * (push_apns.c, push_fcm.c, push_webpush.c); consult each provider's
 * circuit; make the calls together over HTTP/2 (hr_http); classify every
 * answer and act on it: dead tokens removed and device.invalidated
 * emitted, retries handed to the guard, payload errors dead-lettered
 * (push_send.c).
 */
#ifndef PUSH_H
#define PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hr_http.h"
#include "hr_worker.h"

/* --- settings ------------------------------------------------------------ */

extern const struct hr_conf_spec push_conf[];

/** Worker-specific checks for startup and --check-config (keys, files,
 *  endpoints; nothing is connected). */
void push_validate(struct hr_conf *cfg);

/* --- events ------------------------------------------------------------- */

enum push_kind {
    PUSH_REGISTERED,   /* device.registered */
    PUSH_UNREGISTERED, /* device.unregistered */
    PUSH_REQUESTED,    /* push.requested */
};

enum push_platform {
    PUSH_IOS = 0, /* APNs */
    PUSH_ANDROID, /* FCM */
    PUSH_WEB,     /* Web Push */
    PUSH_PLATFORMS,
};

/** "ios", "android", "web". */
const char *push_platform_name(enum push_platform p);

/** Parse a platform name; returns 0 or -1. */
int push_platform_parse(const char *name, enum push_platform *p);

/** A target named directly by a push.requested ("tokens"). */
struct push_target {
    const char *token;
    enum push_platform platform;
};

#define PUSH_BADGE_NONE  (-1) /* leave the badge as it is */
#define PUSH_BADGE_TOTAL (-2) /* the user's unread total at send time */

/** One input event, validated; strings borrowed from the CloudEvent. */
struct push_event {
    enum push_kind kind;
    const char *id;      /* the CloudEvent's id */
    const char *user_id; /* registered, unregistered; push (may be NULL
                            when tokens are given) */
    int64_t at_ms;       /* registered/unregistered: the CloudEvent's time,
                            else the record's */

    /* device.registered / device.unregistered */
    const char *token;
    enum push_platform platform;
    const char *app;         /* NULL: the provider's default */
    const char *environment; /* "production" (default) or "sandbox" */

    /* push.requested */
    struct push_target *targets; /* "tokens", or NULL */
    size_t ntargets;
    const char *title;
    const char *body;
    json_t *data; /* object of strings, or NULL (borrowed) */
    int64_t badge;
    const char *collapse_id;
    const char *thread_id;
    bool high;           /* priority "high" (default) */
    int64_t ttl_seconds; /* -1 when absent */
    const char *sound;
    const char *category;
    bool mutable_content;
};

/**
 * Validate @ev as device.registered, device.unregistered or push.requested
 * (SPEC section 4); @record_ms is the record's own timestamp, the time of
 * registry events without a CloudEvent time. Arrays are allocated with
 * malloc (push_event_release()). Returns 0, or -1 with the reason.
 */
int push_event_parse(const struct hr_event *ev,
                     int64_t record_ms,
                     struct push_event *out,
                     char *errstr,
                     size_t errstr_size);

void push_event_release(struct push_event *ev);

/* --- deliveries ------------------------------------------------------------
 */

/** What an answer means for the delivery (research/push.md §3.5, §4.4,
 *  §5.1). */
enum push_verdict {
    PUSH_PENDING = 0,
    PUSH_SENT,      /* accepted by the provider */
    PUSH_INVALID,   /* the token is dead: remove it, device.invalidated */
    PUSH_TRANSIENT, /* 5xx, timeouts: to the guard */
    PUSH_THROTTLED, /* 429 and its kin: to the guard, Retry-After */
    PUSH_REAUTH,    /* our credential was refused: refresh once, retry */
    PUSH_AUTH,      /* refused again, or a credential problem: dead, loud */
    PUSH_PERMANENT, /* the payload or request is wrong: dead letter */
    PUSH_SKIPPED,   /* already sent for this event (claimed) */
};

struct push_delivery {
    size_t item; /* index in the batch */
    const struct push_event *ev;
    enum push_platform platform;
    const char *token; /* borrowed from the plan */
    const char *app;
    bool sandbox;
    const char *registered_at; /* RFC 3339 ms, "" for direct tokens */
    int64_t badge;             /* resolved: PUSH_BADGE_NONE or >= 0 */
    char *claim;               /* the claim key (malloc'd) */
    bool from_registry;        /* resolved from herald:devices:{u} (else a token
                                  named by the event: nothing to remove) */

    /* the call: built by the provider, made by push_send() */
    size_t call; /* index in the batch's calls; SIZE_MAX: none */
    char *url;
    char *headers[12]; /* "Name: value", NULL-terminated */
    size_t nheaders;
    unsigned char *body;
    size_t body_len;
    char *credential; /* the provider credential used (a copy) */

    /* the answer */
    enum push_verdict verdict;
    char reason[320];
    int64_t retry_after_ms;
    int64_t invalid_since_ms; /* APNs 410 timestamp, 0 when none */
};

/** Free what a delivery's call holds (not its answer). */
void push_delivery_reset_call(struct push_delivery *d);

/** Append the header line "@name: @value" to @d's call. */
void push_delivery_header(struct push_delivery *d,
                          const char *name,
                          const char *value);

/* --- providers -------------------------------------------------------------
 */

struct push_state;

#define PUSH_PREPARE_PAUSE     (-1)
#define PUSH_PREPARE_TRANSIENT (-2)
#define PUSH_PREPARE_AUTH      (-3)

struct push_provider {
    const char *name;        /* "apns", "fcm", "webpush": metric label */
    const char *destination; /* "push:apns": circuit and retry destination */
    /** Make the credential current (may mint or fetch it). Returns 0; or
     *  PUSH_PREPARE_PAUSE (Redis down: the batch pauses), or
     *  PUSH_PREPARE_TRANSIENT / PUSH_PREPARE_AUTH (the provider cannot be
     *  used now: its deliveries get that verdict), with @errstr. */
    int (*prepare)(struct push_state *st, char *errstr, size_t errstr_size);
    /** Fill @d's request; or set @d->verdict (PUSH_PERMANENT, reason) when
     *  no call can be made (payload too large, bad token). */
    void (*build)(struct push_state *st, struct push_delivery *d);
    /** Read @d's answer (@req) into its verdict, reason, retry-after. */
    void (*classify)(struct push_state *st,
                     struct push_delivery *d,
                     const struct hr_http_request *req);
    /** Our credential was refused (PUSH_REAUTH): forget it so that the next
     *  prepare() gets a new one. */
    int (*forget)(struct push_state *st,
                  const char *credential,
                  char *errstr,
                  size_t errstr_size);
};

extern const struct push_provider push_apns;
extern const struct push_provider push_fcm;
extern const struct push_provider push_webpush;

/** The provider of @platform, or NULL when it is not configured. */
const struct push_provider *push_provider_of(const struct push_state *st,
                                             enum push_platform platform);

/* Entry points for struct hr_worker_def. */
int push_init(struct hr_worker *w, void **state);
enum hr_batch_result
push_handle(struct hr_worker *w, void *state, struct hr_batch *batch);
void push_fini(struct hr_worker *w, void *state);

#endif
