/*
 * JSON lines on stderr: {"ts":..., "level":..., "worker":..., "msg":..., ...}.
 *
 * hr_log_info("message processed", HR_LOG_STR("topic", topic),
 *             HR_LOG_I64("offset", offset));
 *
 * Thread-safe: each line is written with one write(2). Library logs
 * (librdkafka, libmicrohttpd) are routed through hr_log_write().
 */
#ifndef HR_LOG_H
#define HR_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum hr_log_level {
    HR_LOG_DEBUG = 0,
    HR_LOG_INFO,
    HR_LOG_WARN,
    HR_LOG_ERROR,
};

enum hr_log_type {
    HR_LOG_T_END = 0,
    HR_LOG_T_STR,
    HR_LOG_T_I64,
    HR_LOG_T_DBL,
    HR_LOG_T_BOOL,
};

/** One typed field of a log line. Strings are copied when the line is
 *  written; a NULL string is written as JSON null. */
struct hr_log_field {
    const char *key;
    enum hr_log_type type;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
};

#define HR_LOG_STR(k, val) \
    ((struct hr_log_field){.key = (k), .type = HR_LOG_T_STR, .v.s = (val)})
#define HR_LOG_I64(k, val)  \
    ((struct hr_log_field){ \
        .key = (k), .type = HR_LOG_T_I64, .v.i = (int64_t)(val)})
#define HR_LOG_I32(k, val) HR_LOG_I64(k, val)
#define HR_LOG_DBL(k, val)  \
    ((struct hr_log_field){ \
        .key = (k), .type = HR_LOG_T_DBL, .v.d = (double)(val)})
#define HR_LOG_BOOL(k, val) \
    ((struct hr_log_field){.key = (k), .type = HR_LOG_T_BOOL, .v.b = (val)})
#define HR_LOG_END ((struct hr_log_field){.key = 0, .type = HR_LOG_T_END})

/**
 * Configure the process logger: worker name (copied), minimum level, and
 * JSON (default) or text format ("ts level msg key=value ..."). May be called
 * again (for example after the config is loaded). Not thread-safe against
 * concurrent hr_log_write(); call it before starting threads.
 */
void hr_log_setup(const char *worker, enum hr_log_level level, bool json);

/** Parse "debug", "info", "warn", "error". Returns 0 or -1. */
int hr_log_parse_level(const char *s, enum hr_log_level *level);

/** Whether lines of @level are written. */
bool hr_log_enabled(enum hr_log_level level);

/**
 * Write one line: @msg (a constant lower-case phrase), then the fields, the
 * list terminated by HR_LOG_END. Prefer the hr_log_<level>() macros, which
 * add the terminator.
 */
void hr_log_write(enum hr_log_level level, const char *msg, ...);

#define hr_log_debug(...) hr_log_write(HR_LOG_DEBUG, __VA_ARGS__, HR_LOG_END)
#define hr_log_info(...)  hr_log_write(HR_LOG_INFO, __VA_ARGS__, HR_LOG_END)
#define hr_log_warn(...)  hr_log_write(HR_LOG_WARN, __VA_ARGS__, HR_LOG_END)
#define hr_log_error(...) hr_log_write(HR_LOG_ERROR, __VA_ARGS__, HR_LOG_END)

#endif
