/*
 * Typed configuration tables.
 *
 * A worker declares a static table; the runtime merges it with the common
 * table, then resolves every setting from (highest first) the environment,
 * the --config JSON file, and the default. One table drives parsing,
 * validation, --help and --check-config:
 *
 *   static const struct hr_conf_spec push_conf[] = {
 *       HR_CONF_URL("HERALD_APNS_ENDPOINT", "https://api.push.apple.com", 0,
 *                   "APNs base URL"),
 *       HR_CONF_MS("HERALD_PUSH_HTTP_TIMEOUT_MS", "5000", 0, "HTTP timeout"),
 *       HR_CONF_PATH("HERALD_APNS_KEY_FILE", NULL, HR_CONF_SECRET, "..."),
 *       HR_CONF_END,
 *   };
 *
 * Secrets (HR_CONF_SECRET) also accept NAME_FILE: the value is read from that
 * file with one trailing newline removed. Secrets never appear in
 * hr_conf_effective() or errors. HR_CONF_FROM_FILE settings accept NAME_FILE
 * the same way but are shown.
 *
 * The --config file is a JSON object. Keys that name a setting
 * ("HERALD_REDIS_URL": "...") set it (strings, numbers and booleans are
 * accepted); every other key is structured configuration the worker reads
 * through hr_conf_json().
 */
#ifndef HR_CONF_H
#define HR_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "hr_compat.h"

enum hr_conf_type {
    HR_CONF_T_STR = 0, /* any string */
    HR_CONF_T_INT,     /* integer within [min, max] */
    HR_CONF_T_MS,      /* non-negative integer milliseconds */
    HR_CONF_T_DOUBLE,  /* floating point within [min, max] */
    HR_CONF_T_BOOL,    /* 1/0, true/false, yes/no, on/off */
    HR_CONF_T_URL,     /* scheme://... */
    HR_CONF_T_PATH,    /* a readable file (checked by hr_conf_load) */
    HR_CONF_T_ENUM,    /* one of choices "a|b|c" */
    HR_CONF_T_ADDR,    /* host:port, or "off" */
};

enum hr_conf_flags {
    HR_CONF_SECRET = 1 << 0,    /* never printed; NAME_FILE accepted */
    HR_CONF_REQUIRED = 1 << 1,  /* must be set (env, file, or default) */
    HR_CONF_FROM_FILE = 1 << 2, /* NAME_FILE accepted, the value printed (a
                                   URL whose password the caller masks) */
};

struct hr_conf_spec {
    const char *name; /* environment variable, e.g. "HERALD_REDIS_URL" */
    enum hr_conf_type type;
    const char *def;     /* default as a string, or NULL for unset */
    unsigned flags;      /* enum hr_conf_flags */
    const char *help;    /* one line for --help */
    const char *choices; /* HR_CONF_T_ENUM: "json|text" */
    int64_t min, max;    /* HR_CONF_T_INT / HR_CONF_T_DOUBLE bounds */
};

#define HR_CONF_STR(n, d, f, h)                    \
    {                                              \
        (n), HR_CONF_T_STR, (d), (f), (h), 0, 0, 0 \
    }
#define HR_CONF_URL(n, d, f, h)                    \
    {                                              \
        (n), HR_CONF_T_URL, (d), (f), (h), 0, 0, 0 \
    }
#define HR_CONF_PATH(n, d, f, h)                    \
    {                                               \
        (n), HR_CONF_T_PATH, (d), (f), (h), 0, 0, 0 \
    }
#define HR_CONF_MS(n, d, f, h)                            \
    {                                                     \
        (n), HR_CONF_T_MS, (d), (f), (h), 0, 0, INT64_MAX \
    }
#define HR_CONF_BOOL(n, d, f, h)                    \
    {                                               \
        (n), HR_CONF_T_BOOL, (d), (f), (h), 0, 0, 0 \
    }
#define HR_CONF_ADDR(n, d, f, h)                    \
    {                                               \
        (n), HR_CONF_T_ADDR, (d), (f), (h), 0, 0, 0 \
    }
#define HR_CONF_INT(n, d, lo, hi, f, h)                  \
    {                                                    \
        (n), HR_CONF_T_INT, (d), (f), (h), 0, (lo), (hi) \
    }
#define HR_CONF_DOUBLE(n, d, lo, hi, f, h)                  \
    {                                                       \
        (n), HR_CONF_T_DOUBLE, (d), (f), (h), 0, (lo), (hi) \
    }
#define HR_CONF_ENUM(n, d, choices, f, h)                   \
    {                                                       \
        (n), HR_CONF_T_ENUM, (d), (f), (h), (choices), 0, 0 \
    }
#define HR_CONF_END \
    {               \
        0           \
    }

struct hr_conf;

/** A new, empty configuration. Never returns NULL (aborts on OOM). */
struct hr_conf *hr_conf_new(void);

/** Free @cfg and every value it holds. hr_conf_free(NULL) is a no-op. */
void hr_conf_free(struct hr_conf *cfg);

/**
 * Register a spec table (terminated by HR_CONF_END). The table is borrowed
 * and must outlive @cfg (tables are static). Call before hr_conf_load().
 * Later tables may not redefine a name already registered (asserted).
 */
void hr_conf_add_specs(struct hr_conf *cfg, const struct hr_conf_spec *specs);

/**
 * Resolve every registered setting: environment, then @config_file (may be
 * NULL; HERALD_CONFIG is used when NULL and set), then defaults; validate
 * each value by its type. Every problem is recorded (see hr_conf_errors());
 * nothing stops at the first one.
 * Returns the number of errors recorded so far (0 when valid).
 */
int hr_conf_load(struct hr_conf *cfg, const char *config_file);

/** Record one more configuration problem (printf-like), e.g. from a
 *  worker's own validation. The message names the setting or field first. */
void hr_conf_add_error(struct hr_conf *cfg, const char *fmt, ...)
    HR_PRINTF(2, 3);

/** Number of recorded errors, and the i-th message (borrowed). */
int hr_conf_error_count(const struct hr_conf *cfg);
const char *hr_conf_error(const struct hr_conf *cfg, int i);

/** The value of a setting as a string (borrowed), or NULL if unset.
 *  Asserts that @name was registered. */
const char *hr_conf_str(const struct hr_conf *cfg, const char *name);

/** Typed getters; they assert the name was registered with a fitting type.
 *  An unset value returns 0 / false. */
int64_t hr_conf_int(const struct hr_conf *cfg, const char *name);
double hr_conf_double(const struct hr_conf *cfg, const char *name);
bool hr_conf_bool(const struct hr_conf *cfg, const char *name);

/** Whether the setting has a value (from any source, including default). */
bool hr_conf_is_set(const struct hr_conf *cfg, const char *name);

/** Override a value programmatically (tests, worker defaults such as the
 *  group name). Validation happens in hr_conf_load(); call before it. */
void hr_conf_set_default(struct hr_conf *cfg,
                         const char *name,
                         const char *value);

/** The parsed --config file (borrowed), or NULL when there is none. */
const json_t *hr_conf_json(const struct hr_conf *cfg);

/**
 * The effective configuration as a JSON object:
 * {"HERALD_REDIS_URL": {"value": "...", "source": "env"|"file"|"default"},
 *  ...}. Secrets show "***". Unset settings are omitted. New reference.
 */
json_t *hr_conf_effective(const struct hr_conf *cfg);

/**
 * Print usage for --help: @usage line, a blank line, @summary, then every
 * setting with its type, default and help text, secrets marked.
 */
void hr_conf_print_help(const struct hr_conf *cfg,
                        FILE *out,
                        const char *usage,
                        const char *summary);

#endif
