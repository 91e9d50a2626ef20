/*
 * herald-devbroker: a local Kafka endpoint on librdkafka's mock cluster, for
 * development and tests only (SPEC.md section 1).
 *
 * Prints the bootstrap address as the first line of stdout, then runs until
 * SIGINT/SIGTERM, or, with --control, until stdin reaches EOF while serving
 * one command per line (devbroker_control.c).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devbroker.h"
#include "hr_banned.h"
#include "hr_log.h"

#define LOOP_SLEEP_MS     200
#define WATCH_INTERVAL_MS 2000
#define CONTROL_LINE_MAX  4096

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

struct devbroker_opts {
    int brokers;
    int partitions;
    const char *topic_specs[16]; /* each --topics value, in order */
    size_t topic_spec_cnt;
    const char *bootstrap_file;
    bool control;
};

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    /* A second signal means "now" (redis does the same). */
    if (stop_signal)
        _exit(1);
    stop_signal = sig;
}

static int install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

void devbroker_log_cb(const rd_kafka_t *rk,
                      int level,
                      const char *fac,
                      const char *buf)
{
    enum hr_log_level hl;

    /* syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug */
    if (level <= 3)
        hl = HR_LOG_ERROR;
    else if (level == 4)
        hl = HR_LOG_WARN;
    else if (level <= 6)
        hl = HR_LOG_INFO;
    else
        hl = HR_LOG_DEBUG;
    hr_log_write(hl, "librdkafka", HR_LOG_STR("client", rd_kafka_name(rk)),
                 HR_LOG_STR("facility", fac), HR_LOG_STR("text", buf),
                 HR_LOG_END);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: herald-devbroker [OPTIONS]\n"
            "\n"
            "A local Kafka endpoint (librdkafka mock cluster) for development "
            "and tests.\n"
            "Prints the bootstrap address as the first line of stdout and "
            "runs until\n"
            "SIGINT/SIGTERM. Data lives in memory: each partition keeps at "
            "most about\n"
            "5 MiB and 100000 message sets, older data is dropped, and a "
            "warning\n"
            "\"broker evicted messages\" is logged on stderr when that "
            "happens.\n"
            "\n"
            "Options:\n"
            "  --brokers N            number of brokers (default 1, max %d)\n"
            "  --topics LIST          extra topics, name[:partitions],... "
            "(a default\n"
            "                         topic listed here gets the given "
            "partition count)\n"
            "  --partitions N         partitions of the default topics "
            "(default %d)\n"
            "  --bootstrap-file PATH  also write the bootstrap address to "
            "PATH\n"
            "                         (atomically; removed on exit)\n"
            "  --control              read commands from stdin, one per line, "
            "answer\n"
            "                         \"ok\" or \"error: <why>\"; exit at EOF\n"
            "  --help                 show this help\n"
            "  --version              show the version\n"
            "\n"
            "Control commands:\n"
            "  errors <ApiName> <count> <ErrName>   fail the next <count> "
            "requests\n"
            "      ApiName: Produce, Fetch, ListOffsets, Metadata, "
            "OffsetCommit,\n"
            "      OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, "
            "LeaveGroup,\n"
            "      SyncGroup, InitProducerId, ... or a number; ErrName: an\n"
            "      rd_kafka_resp_err_t name without RD_KAFKA_RESP_ERR_ "
            "(e.g.\n"
            "      NOT_LEADER_FOR_PARTITION, _TRANSPORT)\n"
            "  broker-down <id>, broker-up <id>     take a broker offline or "
            "back\n"
            "  topic <name> <partitions>            create a topic\n"
            "  clear-errors [<ApiName>]             drop pending injected "
            "errors\n"
            "  ping                                 answer ok\n"
            "\n"
            "Default topics: herald.changes herald.messages herald.unread "
            "herald.push\n"
            "  herald.devices herald.email herald.subscriptions "
            "herald.entitlements\n"
            "  herald.retry herald.dlq "
            "herald.redeliver.{fanout,unread,push,email,subs,guard}\n"
            "\n"
            "Environment: HERALD_LOG_LEVEL (debug, info, warn, error), "
            "HERALD_LOG_FORMAT\n"
            "(json, text).\n",
            DEVBROKER_MAX_BROKERS, DEVBROKER_DEFAULT_PARTITIONS);
}

static int
parse_int_opt(const char *name, const char *val, int min, int max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        fprintf(stderr,
                "herald-devbroker: invalid value '%s' for %s (%d to %d)\n", val,
                name, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Returns 0 to run, or the exit status (with -1 for "exit 0 now"). */
static int parse_args(int argc, char **argv, struct devbroker_opts *opts)
{
    static const char *const with_value[] = {
        "--brokers", "--topics", "--partitions", "--bootstrap-file"};

    opts->brokers = 1;
    opts->partitions = DEVBROKER_DEFAULT_PARTITIONS;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *name = NULL;

        for (size_t k = 0; k < HR_ARRAY_SIZE(with_value); k++) {
            if (strlen(with_value[k]) == name_len &&
                !strncmp(arg, with_value[k], name_len))
                name = with_value[k];
        }
        if (name) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fprintf(stderr, "herald-devbroker: %s needs a value\n", name);
                return EXIT_USAGE;
            }
        }

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(arg, "--version")) {
            printf("herald-devbroker %s (librdkafka %s)\n", HERALD_VERSION,
                   rd_kafka_version_str());
            return -1;
        } else if (!strcmp(arg, "--control")) {
            opts->control = true;
        } else if (name && !strcmp(name, "--brokers")) {
            if (parse_int_opt(name, val, 1, DEVBROKER_MAX_BROKERS,
                              &opts->brokers))
                return EXIT_USAGE;
        } else if (name && !strcmp(name, "--partitions")) {
            if (parse_int_opt(name, val, 1, DEVBROKER_MAX_PARTITIONS,
                              &opts->partitions))
                return EXIT_USAGE;
        } else if (name && !strcmp(name, "--topics")) {
            if (opts->topic_spec_cnt == HR_ARRAY_SIZE(opts->topic_specs)) {
                fprintf(stderr, "herald-devbroker: too many --topics\n");
                return EXIT_USAGE;
            }
            opts->topic_specs[opts->topic_spec_cnt++] = val;
        } else if (name && !strcmp(name, "--bootstrap-file")) {
            if (!*val) {
                fprintf(stderr, "herald-devbroker: empty --bootstrap-file\n");
                return EXIT_USAGE;
            }
            opts->bootstrap_file = val;
        } else {
            fprintf(stderr,
                    "herald-devbroker: unknown option '%s' (see --help)\n",
                    arg);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* Write @bootstraps to @path through a temporary file and rename(), so a
 * reader never sees a partial line. */
static int write_bootstrap_file(const char *path, const char *bootstraps)
{
    char tmp[4096];
    FILE *fp;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path,
                         (long)getpid()) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fp = fopen(tmp, "w");
    if (!fp)
        return -1;
    if (fprintf(fp, "%s\n", bootstraps) < 0 || fclose(fp)) {
        int saved = errno;

        unlink(tmp);
        errno = saved;
        return -1;
    }
    if (rename(tmp, path)) {
        int saved = errno;

        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

static void reply(const char *line)
{
    /* stdout may be gone (SIGPIPE is ignored); stdin EOF ends us anyway. */
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void control_line(const struct devbroker_control *ctl, char *line)
{
    char errstr[512];
    char out[600];

    if (devbroker_control_exec(ctl, line, errstr, sizeof(errstr))) {
        snprintf(out, sizeof(out), "error: %s", errstr);
        reply(out);
        return;
    }
    reply("ok");
}

/* Serve stdin commands until EOF or a signal. */
static void run_control(const struct devbroker_control *ctl)
{
    char buf[CONTROL_LINE_MAX];
    size_t len = 0;
    bool overflow = false;

    while (!stop_signal) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        ssize_t n;
        char *nl;
        int rc;

        rc = poll(&pfd, 1, LOOP_SLEEP_MS);
        if (rc < 0 && errno != EINTR) {
            hr_log_error("cannot poll stdin",
                         HR_LOG_STR("err", strerror(errno)));
            return;
        }
        if (rc <= 0)
            continue;
        n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            hr_log_error("cannot read stdin",
                         HR_LOG_STR("err", strerror(errno)));
            return;
        }
        if (n == 0) {
            if (len > 0 && !overflow) {
                buf[len] = '\0';
                control_line(ctl, buf);
            }
            hr_log_info("stdin closed, stopping");
            return;
        }
        len += (size_t)n;
        while ((nl = memchr(buf, '\n', len))) {
            size_t line_len = (size_t)(nl - buf);

            *nl = '\0';
            if (overflow)
                reply("error: command too long");
            else
                control_line(ctl, buf);
            overflow = false;
            memmove(buf, nl + 1, len - line_len - 1);
            len -= line_len + 1;
        }
        if (len == sizeof(buf) - 1) {
            overflow = true; /* drop until the next newline */
            len = 0;
        }
    }
}

static void run_until_signal(void)
{
    while (!stop_signal) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = LOOP_SLEEP_MS * 1000000L};

        nanosleep(&ts, NULL);
    }
}

static rd_kafka_t *cluster_handle_new(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    /* This handle only hosts the cluster and never connects: log_level 4
     * hides its "no bootstrap.servers" notice. */
    if (rd_kafka_conf_set(conf, "client.id", "herald-devbroker", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        hr_log_error("cannot configure mock cluster handle",
                     HR_LOG_STR("err", errstr));
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, devbroker_log_cb);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        hr_log_error("cannot create mock cluster handle",
                     HR_LOG_STR("err", errstr));
        return NULL;
    }
    conf = NULL; /* owned by rk */
    return rk;
}

static void log_setup(void)
{
    enum hr_log_level level = HR_LOG_INFO;
    const char *env_level = getenv("HERALD_LOG_LEVEL");
    const char *env_format = getenv("HERALD_LOG_FORMAT");
    bool json = !(env_format && !strcmp(env_format, "text"));

    if (env_level && hr_log_parse_level(env_level, &level))
        level = HR_LOG_INFO;
    hr_log_setup("devbroker", level, json);
}

int main(int argc, char **argv)
{
    struct devbroker_opts opts = {0};
    struct devbroker_topics topics = {0};
    struct devbroker_control ctl = {0};
    rd_kafka_mock_cluster_t *mcluster;
    rd_kafka_t *rk;
    const char *bootstraps;
    char errstr[512];
    int status = EXIT_RUNTIME;
    int rc;

    rc = parse_args(argc, argv, &opts);
    if (rc)
        return rc < 0 ? 0 : rc;
    log_setup();

    if (devbroker_topics_add_defaults(&topics, opts.partitions)) {
        hr_log_error("out of memory");
        goto out_release_topics;
    }
    for (size_t i = 0; i < opts.topic_spec_cnt; i++) {
        if (devbroker_topics_parse(&topics, opts.topic_specs[i],
                                   opts.partitions, errstr, sizeof(errstr))) {
            fprintf(stderr, "herald-devbroker: %s\n", errstr);
            status = EXIT_USAGE;
            goto out_release_topics;
        }
    }
    if (install_signals()) {
        hr_log_error("cannot install signal handlers",
                     HR_LOG_STR("err", strerror(errno)));
        goto out_release_topics;
    }

    rk = cluster_handle_new();
    if (!rk)
        goto out_release_topics;
    mcluster = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (!mcluster) {
        hr_log_error("cannot create mock cluster",
                     HR_LOG_I32("brokers", opts.brokers));
        goto out_destroy_rk;
    }
    ctl.mcluster = mcluster;
    ctl.brokers = opts.brokers;
    ctl.replication = opts.brokers < 3 ? opts.brokers : 3;
    if (devbroker_topics_create(mcluster, &topics, ctl.replication, errstr,
                                sizeof(errstr))) {
        hr_log_error("cannot create topics", HR_LOG_STR("err", errstr));
        goto out_destroy_cluster;
    }
    bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);

    ctl.watch = devbroker_watch_start(bootstraps, WATCH_INTERVAL_MS, errstr,
                                      sizeof(errstr));
    if (!ctl.watch) {
        hr_log_error("cannot start eviction watch", HR_LOG_STR("err", errstr));
        goto out_destroy_cluster;
    }

    if (opts.bootstrap_file &&
        write_bootstrap_file(opts.bootstrap_file, bootstraps)) {
        hr_log_error("cannot write bootstrap file",
                     HR_LOG_STR("path", opts.bootstrap_file),
                     HR_LOG_STR("err", strerror(errno)));
        goto out_stop_watch;
    }
    printf("%s\n", bootstraps);
    fflush(stdout);
    hr_log_info("devbroker ready", HR_LOG_STR("bootstraps", bootstraps),
                HR_LOG_I32("brokers", opts.brokers),
                HR_LOG_I64("topics", topics.cnt),
                HR_LOG_I32("partitions", opts.partitions),
                HR_LOG_BOOL("control", opts.control));

    if (opts.control)
        run_control(&ctl);
    else
        run_until_signal();
    if (stop_signal)
        hr_log_info(
            "shutdown requested",
            HR_LOG_STR("signal", stop_signal == SIGINT ? "SIGINT" : "SIGTERM"));
    status = 0;

    if (opts.bootstrap_file)
        unlink(opts.bootstrap_file);
out_stop_watch:
    devbroker_watch_stop(ctl.watch);
out_destroy_cluster:
    rd_kafka_mock_cluster_destroy(mcluster);
out_destroy_rk:
    rd_kafka_destroy(rk);
out_release_topics:
    devbroker_topics_release(&topics);
    return status;
}
