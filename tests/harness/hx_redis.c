/* A real redis-server on a unix socket in a private directory, as in
 * hiredis's test.sh. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_REDIS_START_MS 10000
#define HX_REDIS_STOP_MS  10000

struct hx_redis {
    char *dir;
    char *sock;
    char *url;
    char *log_path;
    char **argv; /* owned strings, NULL-terminated */
    struct hx_proc *proc;
};

__attribute__((format(printf, 1, 2))) static char *str_printf(const char *fmt,
                                                              ...)
{
    va_list ap;
    int len;
    char *s;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Whether @prog is an executable somewhere on PATH. */
static void print_log(const struct hx_redis *r)
{
    char *log = hx_file_read(r->log_path, NULL);

    fprintf(stderr, "hx: --- %s ---\n%s\nhx: --- end of log ---\n", r->log_path,
            log ? log : "(empty)");
    free(log);
}

static bool redis_pings(const struct hx_redis *r)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 500000};
    redisContext *ctx = redisConnectUnixWithTimeout(r->sock, tv);
    redisReply *reply;
    bool ok = false;

    if (!ctx)
        return false;
    if (!ctx->err) {
        reply = redisCommand(ctx, "PING");
        ok = reply && reply->type == REDIS_REPLY_STATUS &&
             !strcmp(reply->str, "PONG");
        if (reply)
            freeReplyObject(reply);
    }
    redisFree(ctx);
    return ok;
}

static int server_start(struct hx_redis *r)
{
    int64_t deadline = hx_now_ms() + HX_REDIS_START_MS;
    int log_fd;

    log_fd = open(r->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "hx: cannot open '%s': %s\n", r->log_path,
                strerror(errno));
        return -1;
    }
    r->proc = hx_proc_spawn_fds((const char *const *)r->argv, NULL, -1, log_fd,
                                log_fd);
    close(log_fd);
    if (!r->proc)
        return -1;
    while (!redis_pings(r)) {
        if (!hx_proc_is_running(r->proc)) {
            fprintf(stderr, "hx: redis-server exited at start\n");
            print_log(r);
            return -1;
        }
        if (hx_now_ms() >= deadline) {
            fprintf(stderr, "hx: redis-server does not answer PING\n");
            print_log(r);
            return -1;
        }
        hx_sleep_ms(20);
    }
    return 0;
}

struct hx_redis *hx_redis_start(const char *const *extra_args)
{
    static const char *const fixed[] = {
        "redis-server",
        "--port",
        "0",
        "--unixsocket",
        NULL /* sock */,
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        NULL /* dir */,
    };
    struct hx_redis *r;
    size_t extra = 0, n = 0;

    if (!hx_on_path("redis-server")) {
        fprintf(stderr, "hx: redis-server is not on PATH\n");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->dir = hx_tmpdir_new("redis");
    if (!r->dir)
        goto out_free;
    r->sock = str_printf("%s/redis.sock", r->dir);
    r->url = str_printf("unix://%s", r->sock);
    r->log_path = str_printf("%s/redis.log", r->dir);
    while (extra_args && extra_args[extra])
        extra++;
    r->argv =
        calloc(sizeof(fixed) / sizeof(fixed[0]) + extra + 1, sizeof(*r->argv));
    if (!r->sock || !r->url || !r->log_path || !r->argv)
        goto out_free;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        const char *arg = fixed[i];

        if (!arg)
            arg = i == 4 ? r->sock : r->dir;
        if (!(r->argv[n++] = strdup(arg)))
            goto out_free;
    }
    for (size_t i = 0; i < extra; i++) {
        if (!(r->argv[n++] = strdup(extra_args[i])))
            goto out_free;
    }
    if (server_start(r))
        goto out_free;
    return r;

out_free:
    hx_redis_free(r);
    return NULL;
}

const char *hx_redis_url(const struct hx_redis *r)
{
    return r->url;
}

const char *hx_redis_socket(const struct hx_redis *r)
{
    return r->sock;
}

const char *hx_redis_dir(const struct hx_redis *r)
{
    return r->dir;
}

redisContext *hx_redis_connect(const struct hx_redis *r)
{
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *ctx = redisConnectUnixWithTimeout(r->sock, tv);

    if (!ctx || ctx->err) {
        fprintf(stderr, "hx: cannot connect to redis at '%s': %s\n", r->sock,
                ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

void hx_redis_flushall(struct hx_redis *r)
{
    redisContext *ctx = hx_redis_connect(r);
    redisReply *reply = NULL;

    if (ctx)
        reply = redisCommand(ctx, "FLUSHALL");
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hx: FLUSHALL failed: %s\n",
                reply ? reply->str
                : ctx ? ctx->errstr
                      : "no connection");
        abort();
    }
    freeReplyObject(reply);
    redisFree(ctx);
}

int hx_redis_stop_server(struct hx_redis *r)
{
    int rc = 0;

    if (!r->proc)
        return 0;
    hx_proc_signal(r->proc, SIGTERM);
    if (hx_proc_wait(r->proc, HX_REDIS_STOP_MS, NULL)) {
        fprintf(stderr, "hx: redis-server ignores SIGTERM, killing it\n");
        rc = -1;
    }
    hx_proc_free(r->proc);
    r->proc = NULL;
    return rc;
}

int hx_redis_restart_server(struct hx_redis *r)
{
    if (r->proc) {
        fprintf(stderr, "hx: redis-server is still running\n");
        return -1;
    }
    return server_start(r);
}

void hx_redis_free(struct hx_redis *r)
{
    if (!r)
        return;
    hx_proc_free(r->proc);
    if (r->dir)
        hx_tmpdir_remove(r->dir);
    if (r->argv) {
        for (size_t i = 0; r->argv[i]; i++)
            free(r->argv[i]);
        free(r->argv);
    }
    free(r->dir);
    free(r->sock);
    free(r->url);
    free(r->log_path);
    free(r);
}
