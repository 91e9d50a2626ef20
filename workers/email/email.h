/*
 * herald-email: notification emails per user and category, debounced into
 * windows and sent over SMTP or Amazon SES (SPEC sections 4, 5, 9; the
 * worker README tells the whole story).
 *
 * A notification.email joins its (user, category) window in Redis
 * (email_window.c, email_ingest.lua): digest mode collects the window's
 * events and sends them as one email when the window ends; leading mode
 * sends the first event at once and suppresses the rest of the window.
 * Every replica's timer looks for due windows in one index and claims each
 * with a fencing token (email_claim.lua); the claimer renders the email
 * (email_catalog.c, email_template.c, email_mime.c) into an email.send
 * record on the worker's own topic, and completes the window once that
 * record is durable (email_done.lua). Whoever consumes the email.send
 * sends it (email_send.c, email_transport.c): once per window across
 * redeliveries (email_sent.lua), its failures handed to the guard or the
 * dead-letter topic like any other event's.
 */
#ifndef EMAIL_H
#define EMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hr_worker.h"

#define EMAIL_SOURCE "herald-email"

/* --- settings ------------------------------------------------------------ */

extern const struct hr_conf_spec email_conf[];

/** Worker-specific checks for startup and --check-config: the transport's
 *  settings and the catalog (every template rendered with sample data). */
void email_validate(struct hr_conf *cfg);

/* --- the catalog: categories, modes, templates --------------------------- */

struct email_catalog;
struct email_category;
struct hr_buf;

/** The catalog from the config file's "email" object and the settings
 *  (HERALD_EMAIL_WINDOW_SECONDS, HERALD_EMAIL_MODE, HERALD_EMAIL_DIGEST_MAX),
 *  with built-in templates where the file has none. Returns NULL with
 *  @errstr naming what is wrong. */
struct email_catalog *
email_catalog_new(const struct hr_conf *cfg, char *errstr, size_t errstr_size);
void email_catalog_free(struct email_catalog *cat);

/** Render every template of @cat with sample data (strict: unknown names
 *  are errors); each problem goes to hr_conf_add_error(). Returns how many
 *  templates were rendered. */
int email_catalog_check(const struct email_catalog *cat, struct hr_conf *cfg);

/** The settings of @category (the "*" entry, else the built-in defaults,
 *  for one the file does not name). Never NULL. */
const struct email_category *email_catalog_find(const struct email_catalog *cat,
                                                const char *category);

bool email_category_leading(const struct email_category *c);
int64_t email_category_window_ms(const struct email_category *c);
int email_category_max_items(const struct email_category *c);

/** A rendered email. */
struct email_rendered {
    struct hr_buf *subject, *text, *html, *unsubscribe; /* caller's */
};

/**
 * Render @c's templates for @locale (exact, then its language, then the
 * catalog's default locale, then any) with the context @ctx (see
 * email_window.c: user_id, user_name, category, count, shown, more, items,
 * first, digest). Returns 0, or -1 with @errstr.
 */
int email_catalog_render(const struct email_catalog *cat,
                         const struct email_category *c,
                         const char *locale,
                         json_t *ctx,
                         struct email_rendered *out,
                         char *errstr,
                         size_t errstr_size);

/** The display name of the sender (the file's "from_name"), or NULL. */
const char *email_catalog_from_name(const struct email_catalog *cat);

/* --- events ---------------------------------------------------------------
 */

enum email_kind {
    EMAIL_NOTIFICATION, /* notification.email: joins a window */
    EMAIL_SEND,         /* email.send: a rendered window, to send */
};

/** A category name: 1..64 of [A-Za-z0-9_.-]. */
bool email_category_name_ok(const char *name);

/** One input event, validated; strings borrowed from the CloudEvent. */
struct email_event {
    enum email_kind kind;
    const char *id;
    const char *user_id;
    const char *category;
    /* notification.email */
    const char *to;     /* NULL when absent */
    const char *locale; /* NULL when absent */
    /* email.send */
    const char *window_id;
    const char *message_id;
    const char *from;
    const char *raw; /* the whole MIME message */
    size_t raw_len;
    const char *undeliverable; /* why it has no recipient, or NULL */
    const char *mode;          /* "digest" | "leading" */
    int64_t items;             /* events the email covers */
    int64_t due_ms;
};

/**
 * Validate @ev as notification.email or email.send (SPEC section 4;
 * workers/email/README.md). Returns 0, or -1 with the reason.
 */
int email_event_parse(const struct hr_event *ev,
                      struct email_event *out,
                      char *errstr,
                      size_t errstr_size);

/* Entry points for struct hr_worker_def. */
int email_init(struct hr_worker *w, void **state);
void email_submit(struct hr_worker *w, void *state, struct hr_batch *batch);
enum hr_batch_result
email_handle(struct hr_worker *w, void *state, struct hr_batch *batch);
void email_tick(struct hr_worker *w, void *state);
void email_fini(struct hr_worker *w, void *state);

#endif
