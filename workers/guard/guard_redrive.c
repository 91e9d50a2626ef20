/*
 * herald-guard redrive: move dead letters back, rate-limited (SPEC section
 * 9, Guard). A one-shot tool: it reads the source topic without a consumer
 * group (nothing is committed, the dead letters stay where they are) up to
 * the end measured at start, and produces each selected record to its
 * worker's redelivery topic (or --to) with a fresh retry history.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "hr_conf.h"
#include "hr_kafka.h"
#include "hr_log.h"
#include "hr_producer.h"
#include "hr_time.h"
#include "hr_worker_conf.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define REDRIVE_FILTERS_MAX 8
#define REDRIVE_IDLE_MS     10000
#define REDRIVE_FLUSH_MS    60000

struct redrive_opts {
    const char *from;
    const char *to; /* NULL: prefix + herald-worker */
    const char *filter_key[REDRIVE_FILTERS_MAX];
    const char *filter_val[REDRIVE_FILTERS_MAX];
    size_t nfilters;
    int64_t since_ms; /* -1: from the beginning */
    double rate;      /* records per second */
    bool dry_run;
};

/* Headers that describe the dead letter's past; a redriven record starts
 * a new retry history (attempts and age count from its next failure). */
static const char *const reset_headers[] = {
    "herald-guard-reason", "herald-attempt", "herald-first-failure-ms",
    "herald-retry-after-ms"};

static void redrive_usage(FILE *out)
{
    fputs("usage: herald-guard redrive --from TOPIC [--to TOPIC] "
          "[--filter HEADER=VALUE]... [--since RFC3339] [--rate N] "
          "[--dry-run]\n\n"
          "Moves dead letters back to herald.redeliver.<herald-worker> (or "
          "--to),\nat most N per second (default 100). Filters match Kafka "
          "headers exactly\n(e.g. herald-worker=push, "
          "herald-guard-reason=max_age); --since keeps\nrecords whose "
          "timestamp is not older. Kafka settings come from the\n"
          "environment (HERALD_KAFKA_BROKERS, HERALD_KAFKA_PROPERTIES).\n",
          out);
}

/* Parse the command line; returns -1 to go on, else an exit status. */
static int redrive_parse(int argc, char **argv, struct redrive_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->since_ms = -1;
    o->rate = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            redrive_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dry-run")) {
            o->dry_run = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "herald-guard redrive: %s: missing value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--from")) {
            o->from = v;
        } else if (!strcmp(a, "--to")) {
            o->to = v;
        } else if (!strcmp(a, "--filter")) {
            const char *eq = strchr(v, '=');

            if (!eq || eq == v || o->nfilters == REDRIVE_FILTERS_MAX) {
                fprintf(stderr,
                        "herald-guard redrive: --filter '%s': expected "
                        "HEADER=VALUE (at most %d)\n",
                        v, REDRIVE_FILTERS_MAX);
                return 2;
            }
            o->filter_key[o->nfilters] = v;
            o->filter_val[o->nfilters++] = eq + 1;
        } else if (!strcmp(a, "--since")) {
            if (hr_time_parse_rfc3339(v, &o->since_ms)) {
                fprintf(stderr,
                        "herald-guard redrive: --since '%s': not an "
                        "RFC 3339 timestamp\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--rate")) {
            char *end;

            o->rate = strtod(v, &end);
            if (*end || !(o->rate > 0)) {
                fprintf(stderr,
                        "herald-guard redrive: --rate '%s': expected a "
                        "positive number\n",
                        v);
                return 2;
            }
        } else {
            fprintf(stderr, "herald-guard redrive: unknown option '%s'\n", a);
            redrive_usage(stderr);
            return 2;
        }
    }
    if (!o->from) {
        fprintf(stderr, "herald-guard redrive: --from is required\n");
        return 2;
    }
    return -1;
}

/* Whether every filter matches a header of @rkm exactly. */
static bool redrive_matches(const struct redrive_opts *o,
                            const rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *hdrs = NULL;

    if (o->nfilters && rd_kafka_message_headers(rkm, &hdrs))
        return false;
    for (size_t i = 0; i < o->nfilters; i++) {
        size_t klen = (size_t)(o->filter_val[i] - 1 - o->filter_key[i]);
        size_t vlen = strlen(o->filter_val[i]);
        char name[256];
        const void *val;
        size_t len;

        if (klen >= sizeof(name))
            return false;
        memcpy(name, o->filter_key[i], klen);
        name[klen] = '\0';
        if (rd_kafka_header_get_last(hdrs, name, &val, &len) || !val ||
            len != vlen || memcmp(val, o->filter_val[i], len))
            return false;
    }
    return true;
}

/* The partitions of @topic with their end offsets now, assigned from their
 * start (or from --since). NULL on failure (logged). */
static rd_kafka_topic_partition_list_t *
redrive_assign(rd_kafka_t *rk, const struct redrive_opts *o, int64_t **ends)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->from, NULL);
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;
    int n;

    err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        hr_log_error(
            "cannot read topic metadata", HR_LOG_STR("topic", o->from),
            HR_LOG_STR("err", rd_kafka_err2str(err ? err : md->topics[0].err)));
        goto out_free;
    }
    n = md->topics[0].partition_cnt;
    parts = rd_kafka_topic_partition_list_new(n);
    *ends = calloc((size_t)n + 1, sizeof(**ends));
    for (int p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;

        err = rd_kafka_query_watermark_offsets(rk, o->from, p, &lo, &hi, 10000);
        if (err) {
            hr_log_error("cannot read watermarks", HR_LOG_STR("topic", o->from),
                         HR_LOG_I32("partition", p),
                         HR_LOG_STR("err", rd_kafka_err2str(err)));
            rd_kafka_topic_partition_list_destroy(parts);
            parts = NULL;
            goto out_free;
        }
        (*ends)[p] = hi;
        rd_kafka_topic_partition_list_add(parts, o->from, p)->offset =
            o->since_ms >= 0 ? o->since_ms : lo;
    }
    if (o->since_ms >= 0) {
        err = rd_kafka_offsets_for_times(rk, parts, 10000);
        if (err) {
            hr_log_error("cannot look offsets up by time",
                         HR_LOG_STR("err", rd_kafka_err2str(err)));
            rd_kafka_topic_partition_list_destroy(parts);
            parts = NULL;
            goto out_free;
        }
        /* No record that recent: nothing to read in that partition. */
        for (int i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].offset < 0)
                parts->elems[i].offset = (*ends)[parts->elems[i].partition];
        }
    }
out_free:
    if (md)
        rd_kafka_metadata_destroy(md);
    return parts;
}

/* Produce one selected record (or print it with --dry-run). */
static int redrive_one(struct hr_producer *producer,
                       const struct redrive_opts *o,
                       const char *prefix,
                       const rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *in = NULL, *hdrs;
    char topic[512], errstr[256];
    const void *val;
    size_t len;

    if (rd_kafka_message_headers(rkm, &in))
        in = NULL;
    if (o->to) {
        snprintf(topic, sizeof(topic), "%s", o->to);
    } else if (in &&
               !rd_kafka_header_get_last(in, "herald-worker", &val, &len) &&
               val && len && len < 200) {
        snprintf(topic, sizeof(topic), "%s%.*s", prefix, (int)len,
                 (const char *)val);
    } else {
        hr_log_warn("dead letter without herald-worker skipped; use --to",
                    HR_LOG_I32("partition", rkm->partition),
                    HR_LOG_I64("offset", rkm->offset));
        return 1;
    }
    if (o->dry_run) {
        printf("{\"partition\":%" PRId32 ",\"offset\":%" PRId64
               ",\"to\":\"%s\"}\n",
               rkm->partition, rkm->offset, topic);
        return 0;
    }
    hdrs = in ? rd_kafka_headers_copy(in) : rd_kafka_headers_new(2);
    for (size_t i = 0; i < HR_ARRAY_SIZE(reset_headers); i++)
        rd_kafka_header_remove(hdrs, reset_headers[i]);
    guard_hdrs_set_i64(hdrs, "herald-redriven-ms", hr_time_now_ms());
    if (hr_producer_send(producer, topic, rkm->key, rkm->key_len, rkm->payload,
                         rkm->len, hdrs, errstr, sizeof(errstr))) {
        rd_kafka_headers_destroy(hdrs);
        hr_log_error("cannot queue redriven record", HR_LOG_STR("err", errstr));
        return -1;
    }
    hdrs = NULL; /* owned by the producer now */
    return 0;
}

/* Read every partition up to its end at start; returns the exit status. */
static int redrive_run(rd_kafka_t *rk,
                       struct hr_producer *producer,
                       const struct redrive_opts *o,
                       const char *prefix)
{
    rd_kafka_topic_partition_list_t *parts;
    int64_t *ends = NULL, started = hr_time_mono_ms(), last = started;
    uint64_t moved = 0, skipped = 0, seen = 0;
    int left = 0, rc = 0, bad;
    bool *done;
    char errstr[256];

    parts = redrive_assign(rk, o, &ends);
    if (!parts) {
        free(ends);
        return 1;
    }
    done = calloc((size_t)parts->cnt + 1, sizeof(*done));
    for (int i = 0; i < parts->cnt; i++) {
        done[i] = parts->elems[i].offset >= ends[i];
        left += !done[i];
    }
    rd_kafka_assign(rk, parts);
    while (left > 0 && hr_time_mono_ms() - last < REDRIVE_IDLE_MS) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 200);
        int32_t p;

        if (!rkm)
            continue;
        p = rkm->partition;
        if (rkm->err || p < 0 || p >= parts->cnt || done[p]) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        last = hr_time_mono_ms();
        if (rkm->offset + 1 >= ends[p]) {
            done[p] = true;
            left--;
        }
        seen++;
        if (!redrive_matches(o, rkm)) {
            skipped++;
            rd_kafka_message_destroy(rkm);
            continue;
        }
        /* Pace: record n goes no earlier than n / rate after the start. */
        {
            int64_t at = started + (int64_t)((double)moved * 1000.0 / o->rate);

            while (hr_time_mono_ms() < at) {
                if (producer)
                    hr_producer_poll(producer);
                hr_time_sleep_ms(
                    at - hr_time_mono_ms() < 50 ? at - hr_time_mono_ms() : 50);
            }
        }
        rc = redrive_one(producer, o, prefix, rkm);
        rd_kafka_message_destroy(rkm);
        if (rc < 0) {
            rc = 1;
            break;
        }
        if (rc > 0)
            skipped++;
        else
            moved++;
        rc = 0;
    }
    if (left > 0 && !rc)
        hr_log_warn("source went idle before its end",
                    HR_LOG_I64("partitions_left", left));
    bad = producer ? hr_producer_barrier(producer, REDRIVE_FLUSH_MS, errstr,
                                         sizeof(errstr))
                   : 0;
    if (bad) {
        hr_log_error("redriven records not acknowledged",
                     HR_LOG_I64("records", bad), HR_LOG_STR("err", errstr));
        rc = 1;
    }
    printf("{\"moved\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"seen\":%" PRIu64
           ",\"dry_run\":%s}\n",
           moved, skipped, seen, o->dry_run ? "true" : "false");
    fflush(stdout);
    rd_kafka_topic_partition_list_destroy(parts);
    free(done);
    free(ends);
    return rc;
}

int guard_redrive_main(int argc, char **argv)
{
    static const char *const consumer_props[] = {
        "group.id", "herald-guard-redrive",     "enable.auto.commit",
        "false",    "enable.auto.offset.store", "false",
        NULL};
    struct hr_conf *cfg = hr_conf_new();
    struct hr_producer *producer = NULL;
    struct redrive_opts o;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    char errstr[512];
    int rc;

    rc = redrive_parse(argc, argv, &o);
    if (rc >= 0)
        goto out_free;
    hr_log_setup("guard", HR_LOG_INFO, true);
    hr_conf_add_specs(cfg, hr_worker_common_conf);
    hr_conf_add_specs(cfg, guard_conf);
    (void)hr_conf_load(cfg, NULL);
    if (!hr_conf_str(cfg, "HERALD_KAFKA_BROKERS"))
        hr_conf_add_error(cfg, "HERALD_KAFKA_BROKERS: required");
    hr_kafka_validate(cfg);
    if (hr_conf_error_count(cfg)) {
        for (int i = 0; i < hr_conf_error_count(cfg); i++)
            fprintf(stderr, "herald-guard redrive: %s\n",
                    hr_conf_error(cfg, i));
        rc = 2;
        goto out_free;
    }
    rc = 1;
    conf = hr_kafka_conf_new(cfg, consumer_props, errstr, sizeof(errstr));
    if (!conf) {
        hr_log_error("cannot configure consumer", HR_LOG_STR("err", errstr));
        goto out_free;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        hr_log_error("cannot create consumer", HR_LOG_STR("err", errstr));
        goto out_free;
    }
    conf = NULL; /* owned by rk now */
    if (!o.dry_run) {
        producer = hr_producer_new(cfg, errstr, sizeof(errstr));
        if (!producer) {
            hr_log_error("cannot create producer", HR_LOG_STR("err", errstr));
            goto out_free;
        }
    }
    rc = redrive_run(rk, producer, &o,
                     hr_conf_str(cfg, "HERALD_GUARD_REDELIVER_PREFIX"));
out_free:
    if (producer && hr_producer_free(producer, REDRIVE_FLUSH_MS))
        rc = 1;
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    hr_conf_free(cfg);
    return rc;
}
