/* herald-devbroker as a child process, driven through --control. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_BROKER_START_MS 30000
#define HX_BROKER_REPLY_MS 10000
#define HX_BROKER_STOP_MS  5000
#define HX_BROKER_LINE_MAX 4096

struct hx_broker {
    struct hx_proc *proc;
    char *dir;
    char log_path[HX_BROKER_LINE_MAX];
    char bootstraps[HX_BROKER_LINE_MAX];
    int in_fd;  /* broker's stdin, write end */
    int out_fd; /* broker's stdout, read end */
    char rbuf[HX_BROKER_LINE_MAX];
    size_t rlen;
};

static void print_log(const struct hx_broker *b)
{
    char *log = hx_file_read(b->log_path, NULL);

    fprintf(stderr, "hx: --- %s ---\n%s\nhx: --- end of log ---\n", b->log_path,
            log ? log : "(empty)");
    free(log);
}

/* Read one line from the broker's stdout into @line (without the newline).
 * Returns 0, or -1 on timeout or EOF (printed). */
static int
read_line(struct hx_broker *b, int timeout_ms, char *line, size_t line_size)
{
    int64_t deadline = hx_now_ms() + timeout_ms;

    for (;;) {
        char *nl = memchr(b->rbuf, '\n', b->rlen);
        struct pollfd pfd = {.fd = b->out_fd, .events = POLLIN};
        int64_t left;
        ssize_t n;
        int rc;

        if (nl) {
            size_t len = (size_t)(nl - b->rbuf);

            snprintf(line, line_size, "%.*s", (int)len, b->rbuf);
            memmove(b->rbuf, nl + 1, b->rlen - len - 1);
            b->rlen -= len + 1;
            return 0;
        }
        if (b->rlen == sizeof(b->rbuf)) {
            fprintf(stderr, "hx: devbroker line too long\n");
            return -1;
        }
        left = deadline - hx_now_ms();
        if (left <= 0) {
            fprintf(stderr, "hx: devbroker did not answer in %d ms\n",
                    timeout_ms);
            return -1;
        }
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno != EINTR) {
            fprintf(stderr, "hx: poll: %s\n", strerror(errno));
            return -1;
        }
        if (rc <= 0)
            continue;
        n = read(b->out_fd, b->rbuf + b->rlen, sizeof(b->rbuf) - b->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "hx: devbroker closed its stdout (exited?)\n");
            print_log(b);
            return -1;
        }
        b->rlen += (size_t)n;
    }
}

static void ignore_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) || sa.sa_handler != SIG_DFL)
        return;
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

static int cloexec_pipe(int fds[2])
{
    if (pipe(fds)) {
        fprintf(stderr, "hx: pipe: %s\n", strerror(errno));
        return -1;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

struct hx_broker *hx_broker_start_args(const char *const *extra_args)
{
    const char *argv[64];
    struct hx_broker *b;
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    int log_fd = -1;
    size_t argc = 0;

    ignore_sigpipe();
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->in_fd = -1;
    b->out_fd = -1;
    b->dir = hx_tmpdir_new("devbroker");
    if (!b->dir)
        goto out_free;
    snprintf(b->log_path, sizeof(b->log_path), "%s/devbroker.log", b->dir);

    argv[argc++] = hx_bin("herald-devbroker");
    argv[argc++] = "--control";
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        if (argc == sizeof(argv) / sizeof(argv[0]) - 1) {
            fprintf(stderr, "hx: too many devbroker arguments\n");
            goto out_free;
        }
        argv[argc++] = extra_args[i];
    }
    argv[argc] = NULL;

    log_fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "hx: cannot open '%s': %s\n", b->log_path,
                strerror(errno));
        goto out_free;
    }
    if (cloexec_pipe(in_pipe) || cloexec_pipe(out_pipe))
        goto out_close;
    b->proc = hx_proc_spawn_fds(argv, NULL, in_pipe[0], out_pipe[1], log_fd);
    if (!b->proc)
        goto out_close;
    b->in_fd = in_pipe[1];
    in_pipe[1] = -1;
    b->out_fd = out_pipe[0];
    out_pipe[0] = -1;
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(log_fd);

    if (read_line(b, HX_BROKER_START_MS, b->bootstraps,
                  sizeof(b->bootstraps)) ||
        !b->bootstraps[0]) {
        fprintf(stderr, "hx: devbroker printed no bootstrap address\n");
        print_log(b);
        goto out_free;
    }
    return b;

out_close:
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
    }
    if (log_fd >= 0)
        close(log_fd);
out_free:
    hx_broker_free(b);
    return NULL;
}

struct hx_broker *hx_broker_start(const char *topics, int partitions)
{
    const char *args[5];
    char num[16];
    size_t n = 0;

    if (topics) {
        args[n++] = "--topics";
        args[n++] = topics;
    }
    if (partitions > 0) {
        snprintf(num, sizeof(num), "%d", partitions);
        args[n++] = "--partitions";
        args[n++] = num;
    }
    args[n] = NULL;
    return hx_broker_start_args(args);
}

const char *hx_broker_bootstraps(const struct hx_broker *b)
{
    return b->bootstraps;
}

const char *hx_broker_log_path(const struct hx_broker *b)
{
    return b->log_path;
}

bool hx_broker_log_contains(const struct hx_broker *b, const char *needle)
{
    char *log = hx_file_read(b->log_path, NULL);
    bool found = log && strstr(log, needle);

    free(log);
    return found;
}

struct hx_proc *hx_broker_proc(struct hx_broker *b)
{
    return b->proc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int hx_broker_control(struct hx_broker *b, const char *fmt, ...)
{
    char cmd[HX_BROKER_LINE_MAX];
    char reply[HX_BROKER_LINE_MAX];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(cmd) - 1 ||
        memchr(cmd, '\n', (size_t)len)) {
        fprintf(stderr, "hx: bad devbroker command\n");
        return -1;
    }
    cmd[len++] = '\n';
    if (b->in_fd < 0 || write_all(b->in_fd, cmd, (size_t)len)) {
        fprintf(stderr, "hx: cannot send devbroker command: %s\n",
                strerror(errno));
        print_log(b);
        return -1;
    }
    if (read_line(b, HX_BROKER_REPLY_MS, reply, sizeof(reply)))
        return -1;
    if (strcmp(reply, "ok")) {
        fprintf(stderr, "hx: devbroker command '%.*s': %s\n", len - 1, cmd,
                reply);
        return -1;
    }
    return 0;
}

void hx_broker_free(struct hx_broker *b)
{
    int status = 0;

    if (!b)
        return;
    if (b->in_fd >= 0)
        close(b->in_fd); /* EOF on stdin: the broker exits */
    if (b->proc) {
        if (hx_proc_wait(b->proc, HX_BROKER_STOP_MS, &status)) {
            fprintf(stderr, "hx: devbroker did not exit at EOF, killing it\n");
            print_log(b);
        } else if (status != 0) {
            fprintf(stderr, "hx: devbroker exited with status %d\n", status);
            print_log(b);
        }
        hx_proc_free(b->proc);
    }
    if (b->out_fd >= 0)
        close(b->out_fd);
    if (b->dir) {
        hx_tmpdir_remove(b->dir);
        free(b->dir);
    }
    free(b);
}

struct hx_proc *hx_worker_spawn(const char *name,
                                const struct hx_broker *b,
                                const struct hx_redis *r,
                                const char *topic,
                                const char *const *extra,
                                const char *log,
                                int *port)
{
    char vars[8][700], bin[64];
    const char *envp[64];
    size_t n = 0, v = 0;

    *port = hx_free_port();
    for (size_t i = 0; extra && extra[i] && n < 40; i++)
        envp[n++] = extra[i];
#define VAR(...)                                         \
    do {                                                 \
        snprintf(vars[v], sizeof(vars[v]), __VA_ARGS__); \
        envp[n++] = vars[v++];                           \
    } while (0)
    VAR("HERALD_KAFKA_BROKERS=%s", hx_broker_bootstraps(b));
    VAR("HERALD_KAFKA_TOPICS=%s", topic);
    VAR("HERALD_KAFKA_GROUP=g-%s", topic);
    VAR("HERALD_REDIS_URL=%s", hx_redis_url(r));
    VAR("HERALD_REDIS_PREFIX=%s:", topic);
    VAR("HERALD_METRICS_ADDR=127.0.0.1:%d", *port);
    VAR("HERALD_RETRY_TOPIC=%s.retry", topic);
    VAR("HERALD_DLQ_TOPIC=%s.dlq", topic);
#undef VAR
    envp[n++] = "HERALD_SHUTDOWN_TIMEOUT_MS=10000";
    envp[n++] = "HERALD_KAFKA_PROPERTIES=session.timeout.ms=6000;"
                "heartbeat.interval.ms=500";
    envp[n] = NULL;
    snprintf(bin, sizeof(bin), "herald-%s", name);
    return hx_proc_spawn((const char *[]){hx_bin(bin), NULL}, envp, NULL, log);
}

int hx_worker_stop(struct hx_proc *p, int timeout_ms)
{
    int status = -1;

    hx_proc_signal(p, SIGTERM);
    if (hx_proc_wait(p, timeout_ms, &status))
        return -1;
    return status;
}
