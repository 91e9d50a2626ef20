/*
 * herald-chatgen: produce a scripted chat workload (tests/model) to Kafka,
 * and check Redis against its exact model. Used by the demo and the
 * benchmark; the scenario is a pure function of the options, so `verify`
 * regenerates it instead of storing it.
 *
 *   herald-chatgen produce --brokers B [options]
 *   herald-chatgen verify --redis URL [options] [--table N]
 *   herald-chatgen scriptrate --redis URL [options] [--batch N]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "chat_model.h"
#include "chatgen.h"
#include "hr_arena.h"
#include "hr_time.h"


static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: herald-chatgen produce|sqs|verify [options]\n"
        "       herald-chatgen jsonrate < values (one JSON per line)\n"
        "       herald-chatgen scriptrate --redis URL [options]: apply\n"
        "                   the scenario with herald-unread's batch script\n"
        "                   alone, print its Redis time, then verify\n"
        "  --brokers B      Kafka bootstrap servers (produce)\n"
        "  --topic T        topic (default herald.messages)\n"
        "  --redis URL      redis://host:port or unix:///path (verify)\n"
        "  --prefix P       Redis key prefix (default herald:)\n"
        "  --max N          HERALD_UNREAD_MAX_PER_CONVERSATION (999)\n"
        "  --users N --convs N --members N --messages N\n"
        "  --reads R        read receipts per message (0..1)\n"
        "  --dups R         share of events sent twice (0..1)\n"
        "  --window N       shuffle window (out-of-order delivery)\n"
        "  --seed N         scenario seed\n"
        "  --table N        verify: print the counts of the first N users\n"
        "  --batch N        scriptrate: events per batch (4000)\n"
        "  --partitions N   scriptrate: partitions (128); a batch takes\n"
        "  --chunk N        runs of N events (1000) from one partition\n"
        "                   after another, as a consumer's fetches do\n"
        "  --queue-url URL  sqs: send the events to this queue instead\n"
        "                   (AWS_* credentials and endpoint from the\n"
        "                   environment; FIFO: grouped by conversation)\n"
        "  --concurrency N  sqs: SendMessageBatch calls in flight (8)\n"
        "  --dynamodb       produce DynamoDB Streams records of the app's\n"
        "                   Messages and ReadReceipts tables (for\n"
        "                   herald-fanout) instead of CloudEvents\n");
}

static int parse_args(int argc, char **argv, struct gen_args *a)
{
    static const struct option longopts[] = {
        {"brokers", 1, 0, 'b'},     {"topic", 1, 0, 't'},
        {"redis", 1, 0, 'r'},       {"prefix", 1, 0, 'p'},
        {"max", 1, 0, 'x'},         {"users", 1, 0, 'u'},
        {"convs", 1, 0, 'c'},       {"members", 1, 0, 'm'},
        {"messages", 1, 0, 'n'},    {"reads", 1, 0, 'R'},
        {"dups", 1, 0, 'D'},        {"window", 1, 0, 'w'},
        {"seed", 1, 0, 's'},        {"table", 1, 0, 'T'},
        {"help", 0, 0, 'h'},        {"dynamodb", 0, 0, 'Y'},
        {"batch", 1, 0, 'B'},       {"partitions", 1, 0, 'P'},
        {"chunk", 1, 0, 'C'},       {"queue-url", 1, 0, 'Q'},
        {"concurrency", 1, 0, 'K'}, {0, 0, 0, 0},
    };
    int c;

    a->opts = (struct chat_opts){.seed = 1,
                                 .users = 10,
                                 .convs = 8,
                                 .members = 3,
                                 .messages = 100,
                                 .read_ratio = 0.2,
                                 .dup_ratio = 0.1,
                                 .shuffle_window = 20,
                                 .start_ms = 1795305600000LL};
    a->topic = "herald.messages";
    a->prefix = "herald:";
    a->max = 999;
    a->batch = 4000;
    a->partitions = 128;
    a->chunk = 1000;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            a->brokers = optarg;
            break;
        case 't':
            a->topic = optarg;
            break;
        case 'r':
            a->redis = optarg;
            break;
        case 'p':
            a->prefix = optarg;
            break;
        case 'x':
            a->max = strtoll(optarg, NULL, 10);
            break;
        case 'u':
            a->opts.users = (int)strtol(optarg, NULL, 10);
            break;
        case 'c':
            a->opts.convs = (int)strtol(optarg, NULL, 10);
            break;
        case 'm':
            a->opts.members = (int)strtol(optarg, NULL, 10);
            break;
        case 'n':
            a->opts.messages = strtoull(optarg, NULL, 10);
            break;
        case 'R':
            a->opts.read_ratio = strtod(optarg, NULL);
            break;
        case 'D':
            a->opts.dup_ratio = strtod(optarg, NULL);
            break;
        case 'w':
            a->opts.shuffle_window = (int)strtol(optarg, NULL, 10);
            break;
        case 's':
            a->opts.seed = strtoull(optarg, NULL, 10);
            break;
        case 'T':
            a->table = (int)strtol(optarg, NULL, 10);
            break;
        case 'Y':
            a->opts.dynamodb = 1;
            break;
        case 'B':
            a->batch = strtoul(optarg, NULL, 10);
            break;
        case 'P':
            a->partitions = strtoul(optarg, NULL, 10);
            break;
        case 'C':
            a->chunk = strtoul(optarg, NULL, 10);
            break;
        case 'Q':
            a->queue_url = optarg;
            break;
        case 'K':
            a->concurrency = strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (a->opts.users < a->opts.members || a->opts.members < 2 ||
        a->opts.convs < 1) {
        fprintf(stderr, "chatgen: need members >= 2, users >= members\n");
        return -1;
    }
    return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    if (rkm->err)
        (*(size_t *)opaque)++;
}

static int produce(const struct gen_args *a, const struct chat_scenario *s)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t failed = 0, n = chat_count(s);
    char errstr[256];
    rd_kafka_t *rk;
    int64_t t0 = hr_time_mono_ms();

    if (!a->brokers) {
        fprintf(stderr, "chatgen: --brokers is required\n");
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_conf_set(conf, "bootstrap.servers", a->brokers, NULL, 0);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set(conf, "linger.ms", "20", NULL, 0);
    rd_kafka_conf_set(conf, "compression.codec", "lz4", NULL, 0);
    rd_kafka_conf_set(conf, "batch.num.messages", "10000", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &failed);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "chatgen: %s\n", errstr);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct chat_event *ev = chat_event_at(s, i);
        rd_kafka_resp_err_t err;

        do {
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(a->topic),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(ev->key, strlen(ev->key)),
                                    RD_KAFKA_V_VALUE(ev->value, ev->len),
                                    RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err) {
            fprintf(stderr, "chatgen: produce: %s\n", rd_kafka_err2str(err));
            failed++;
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    failed += (size_t)rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    printf("produced %zu events to %s in %.2f s (%zu failed)\n", n, a->topic,
           (double)(hr_time_mono_ms() - t0) / 1000.0, failed);
    return failed ? 1 : 0;
}

static redisContext *connect_url(const char *url)
{
    if (!strncmp(url, "unix://", 7))
        return redisConnectUnix(url + 7);
    if (!strncmp(url, "redis://", 8)) {
        char host[256];
        int port = 6379;
        const char *colon = strrchr(url + 8, ':');

        snprintf(host, sizeof(host), "%.*s",
                 (int)(colon ? colon - (url + 8) : (long)strlen(url + 8)),
                 url + 8);
        if (colon)
            port = (int)strtol(colon + 1, NULL, 10);
        return redisConnect(host, port);
    }
    return NULL;
}

static void print_table(const struct gen_args *a,
                        const struct chat_scenario *s,
                        redisContext *redis)
{
    printf("\n  %-6s %6s %6s   %s\n", "user", "total", "model",
           "unread per conversation (redis)");
    for (int u = 0; u < a->table && u < a->opts.users; u++) {
        redisReply *hash =
            redisCommand(redis, "HGETALL %sunread:{u%d}", a->prefix, u);
        redisReply *total =
            redisCommand(redis, "GET %sunread_total:{u%d}", a->prefix, u);
        char line[512] = "";
        size_t used = 0;

        for (size_t i = 0;
             hash && i + 1 < hash->elements && used < sizeof(line) - 32; i += 2)
            used += (size_t)snprintf(line + used, sizeof(line) - used, "%s=%s ",
                                     hash->element[i]->str,
                                     hash->element[i + 1]->str);
        printf("  u%-5d %6s %6" PRId64 "   %s\n", u,
               total && total->str ? total->str : "0",
               chat_expected_total(s, u, a->max), used ? line : "-");
        freeReplyObject(hash);
        freeReplyObject(total);
    }
    printf("\n");
}

static int verify(const struct gen_args *a, const struct chat_scenario *s)
{
    redisContext *redis;
    char err[1024];
    int bad;

    if (!a->redis) {
        fprintf(stderr, "chatgen: --redis is required\n");
        return 1;
    }
    redis = connect_url(a->redis);
    if (!redis || redis->err) {
        fprintf(stderr, "chatgen: cannot connect to %s\n", a->redis);
        redisFree(redis);
        return 1;
    }
    if (a->table)
        print_table(a, s, redis);
    bad = chat_verify_redis(s, redis, a->prefix, a->max, err, sizeof(err));
    printf("verify: %d users, expected unread sum %" PRId64 ": %s%s\n",
           a->opts.users, chat_expected_sum(s, a->max),
           bad ? "MISMATCH " : "exact", bad ? err : "");
    redisFree(redis);
    return bad ? 1 : 0;
}

/*
 * jsonrate: how fast jansson alone parses the values on stdin (one per
 * line, as `kcat -f '%s\n'` prints them) on one core, the way workers do
 * (json_loadb into an arena reset per value). A physical limit for the
 * benchmarks: no worker can consume faster than it parses.
 */
static int jsonrate(void)
{
    struct hr_arena *arena = hr_arena_new();
    char *all = NULL, *line = NULL;
    size_t cap = 0, len = 0, lcap = 0, n = 0, bad = 0;
    ssize_t got;
    double t0, secs;

    hr_arena_install();
    while ((got = getline(&line, &lcap, stdin)) > 0) {
        if (len + (size_t)got + 1 > cap) {
            cap = (len + (size_t)got + 1) * 2;
            all = realloc(all, cap);
            if (!all)
                return 1;
        }
        memcpy(all + len, line, (size_t)got);
        len += (size_t)got;
    }
    free(line);
    t0 = hr_time_mono_s();
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(all + off, '\n', len - off);
        size_t vlen = nl ? (size_t)(nl - (all + off)) : len - off;
        struct hr_arena *previous = hr_arena_enter(arena);
        json_t *v = json_loadb(all + off, vlen, 0, NULL);

        bad += !v;
        json_decref(v);
        hr_arena_leave(previous);
        hr_arena_reset(arena, 1 << 20);
        n++;
        off += vlen + 1;
    }
    secs = hr_time_mono_s() - t0;
    printf("%zu values (%zu invalid), %.0f values/s parsed by jansson on one "
           "core\n",
           n, bad, secs > 0 ? (double)n / secs : 0.0);
    free(all);
    hr_arena_free(arena);
    return 0;
}

int main(int argc, char **argv)
{
    struct gen_args a;
    struct chat_scenario *s;
    int rc;

    if (argc == 2 && !strcmp(argv[1], "jsonrate"))
        return jsonrate();
    if (argc < 2 || (strcmp(argv[1], "produce") && strcmp(argv[1], "verify") &&
                     strcmp(argv[1], "scriptrate") && strcmp(argv[1], "sqs"))) {
        usage(argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    memset(&a, 0, sizeof(a));
    if (parse_args(argc - 1, argv + 1, &a))
        return 2;
    s = chat_generate(&a.opts);
    if (!strcmp(argv[1], "produce"))
        rc = produce(&a, s);
    else if (!strcmp(argv[1], "sqs"))
        rc = sqs_send(&a, s);
    else if (!strcmp(argv[1], "scriptrate"))
        rc = scriptrate(&a, s) || verify(&a, s);
    else
        rc = verify(&a, s);
    chat_free(s);
    return rc;
}
