/*
 * Metrics registry. One mutex per registry guards the metric list and every
 * series, so the HTTP thread can render a consistent snapshot while worker
 * threads update. Updates are a hash lookup plus a few additions; rendering
 * copies nothing but the text it produces.
 */
#include "hr_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_banned.h"
#include "hr_compat.h"

enum hr_metric_type {
    HR_METRIC_COUNTER,
    HR_METRIC_GAUGE,
    HR_METRIC_HISTOGRAM,
};

/* One labelled series. The label values are stored joined by NUL bytes in
 * @key (values cannot contain NUL), which is also the hash key. */
struct hr_series {
    char *key;
    size_t key_len;
    uint64_t hash;
    const char **values; /* nlabels pointers into @key */
    double value;        /* counter or gauge */
    double sum;          /* histogram */
    uint64_t count;      /* histogram */
    uint64_t *buckets;   /* histogram, per bucket (not cumulative), +Inf last */
    struct hr_series *prev, *next; /* creation order */
    struct hr_series *hnext;       /* hash chain */
};

struct hr_metric {
    struct hr_metrics *reg;
    enum hr_metric_type type;
    char *name;
    char *help;
    char **label_names;
    size_t nlabels;
    double *bounds; /* histogram upper bounds, without +Inf */
    size_t nbounds;
    struct hr_series *head, *tail;
    struct hr_series **table;
    size_t table_size; /* power of two */
    size_t nseries;
};

struct hr_metrics {
    pthread_mutex_t lock;
    char *worker;
    struct hr_metric **metrics;
    size_t nmetrics;
    size_t metrics_cap;
};

static const double default_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10,
};

#define HR_METRICS_TABLE_MIN 16

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    HR_ASSERT(p != NULL);
    return p;
}

static char *xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *copy = xcalloc(len + 1, 1);

    memcpy(copy, s, len);
    return copy;
}

static void lock(struct hr_metrics *reg)
{
    HR_ASSERT(pthread_mutex_lock(&reg->lock) == 0);
}

static void unlock(struct hr_metrics *reg)
{
    HR_ASSERT(pthread_mutex_unlock(&reg->lock) == 0);
}

/* Prometheus metric names may contain colons; label names may not. */
static bool name_is_valid(const char *s, size_t len, bool colon)
{
    size_t i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '_' || (colon && c == ':') ||
                  (i > 0 && c >= '0' && c <= '9');

        if (!ok)
            return false;
    }
    return true;
}

/* Split "topic, partition" into trimmed, validated names. */
static char **parse_labels(const char *labels, size_t *nlabels)
{
    char **names;
    const char *p;
    size_t n = 1, i = 0;

    *nlabels = 0;
    if (!labels || !*labels)
        return NULL;
    for (p = labels; *p; p++)
        if (*p == ',')
            n++;
    names = xcalloc(n, sizeof(*names));
    p = labels;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *stop = end ? end : p + strlen(p);
        size_t len;

        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        len = (size_t)(stop - p);
        HR_ASSERT(name_is_valid(p, len, false));
        /* "worker" is added to every series; "__" is reserved. */
        HR_ASSERT(!(len == 6 && memcmp(p, "worker", 6) == 0));
        HR_ASSERT(!(len >= 2 && p[0] == '_' && p[1] == '_'));
        names[i] = xcalloc(len + 1, 1);
        memcpy(names[i], p, len);
        i++;
        if (!end)
            break;
        p = end + 1;
    }
    *nlabels = n;
    return names;
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Join the label values into @buf (NUL-separated); returns the length
 * including the final NUL, or the length needed if @buf is too small. */
static size_t join_values(const struct hr_metric *m,
                          const char *const *values,
                          char *buf,
                          size_t size)
{
    size_t i, off = 0;

    for (i = 0; i < m->nlabels; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t len = strlen(v) + 1;

        if (off + len <= size)
            memcpy(buf + off, v, len);
        off += len;
    }
    return off;
}

static void series_free(struct hr_series *s)
{
    if (!s)
        return;
    free(s->key);
    free(s->values);
    free(s->buckets);
    free(s);
}

static struct hr_series *
series_new(struct hr_metric *m, const char *key, size_t key_len, uint64_t hash)
{
    struct hr_series *s = xcalloc(1, sizeof(*s));
    size_t i, off = 0;

    s->key = xcalloc(key_len ? key_len : 1, 1);
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    s->hash = hash;
    s->values = xcalloc(m->nlabels, sizeof(*s->values));
    for (i = 0; i < m->nlabels; i++) {
        s->values[i] = s->key + off;
        off += strlen(s->key + off) + 1;
    }
    if (m->type == HR_METRIC_HISTOGRAM)
        s->buckets = xcalloc(m->nbounds + 1, sizeof(*s->buckets));
    return s;
}

static void table_grow(struct hr_metric *m)
{
    size_t size = m->table_size ? m->table_size * 2 : HR_METRICS_TABLE_MIN;
    struct hr_series **table = xcalloc(size, sizeof(*table));
    struct hr_series *s;

    for (s = m->head; s; s = s->next) {
        size_t idx = (size_t)(s->hash & (size - 1));

        s->hnext = table[idx];
        table[idx] = s;
    }
    free(m->table);
    m->table = table;
    m->table_size = size;
}

static void series_link(struct hr_metric *m, struct hr_series *s)
{
    s->prev = m->tail;
    if (m->tail)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    m->nseries++;
    if (m->nseries * 4 > m->table_size * 3) {
        table_grow(m); /* relinks every series, including @s */
    } else {
        size_t idx = (size_t)(s->hash & (m->table_size - 1));

        s->hnext = m->table[idx];
        m->table[idx] = s;
    }
}

/* Find the series for @values; create it if @create. Called locked. The
 * label-less series always exists (created with the metric). */
static struct hr_series *series_get(struct hr_metric *m,
                                    const char *const *values,
                                    bool create,
                                    struct hr_series ***pprev)
{
    char stack[256];
    char *key = stack;
    size_t key_len;
    uint64_t hash;
    struct hr_series **link, *s = NULL;

    if (m->nlabels == 0) {
        HR_ASSERT(m->head != NULL);
        if (pprev)
            *pprev = NULL;
        return m->head;
    }
    HR_ASSERT(values != NULL);
    key_len = join_values(m, values, stack, sizeof(stack));
    if (key_len > sizeof(stack)) {
        key = xcalloc(key_len, 1);
        join_values(m, values, key, key_len);
    }
    hash = fnv1a(key, key_len);
    link = &m->table[hash & (m->table_size - 1)];
    for (; *link; link = &(*link)->hnext) {
        if ((*link)->hash == hash && (*link)->key_len == key_len &&
            memcmp((*link)->key, key, key_len) == 0) {
            s = *link;
            break;
        }
    }
    if (pprev)
        *pprev = link;
    if (!s && create) {
        s = series_new(m, key, key_len, hash);
        series_link(m, s);
    }
    if (key != stack)
        free(key);
    return s;
}

static struct hr_metric *find_locked(struct hr_metrics *reg, const char *name)
{
    size_t i;

    for (i = 0; i < reg->nmetrics; i++)
        if (strcmp(reg->metrics[i]->name, name) == 0)
            return reg->metrics[i];
    return NULL;
}

static void metric_free(struct hr_metric *m)
{
    struct hr_series *s, *next;
    size_t i;

    if (!m)
        return;
    for (s = m->head; s; s = next) {
        next = s->next;
        series_free(s);
    }
    for (i = 0; i < m->nlabels; i++)
        free(m->label_names[i]);
    free(m->label_names);
    free(m->table);
    free(m->bounds);
    free(m->name);
    free(m->help);
    free(m);
}

/* Whether an existing declaration matches the type and labels asked for. */
static bool metric_matches(const struct hr_metric *m,
                           enum hr_metric_type type,
                           char **names,
                           size_t nlabels)
{
    size_t i;

    if (m->type != type || m->nlabels != nlabels)
        return false;
    for (i = 0; i < nlabels; i++)
        if (strcmp(m->label_names[i], names[i]) != 0)
            return false;
    return true;
}

static struct hr_metric *declare(struct hr_metrics *reg,
                                 enum hr_metric_type type,
                                 const char *name,
                                 const char *help,
                                 const char *labels,
                                 const double *bounds,
                                 size_t nbounds)
{
    struct hr_metric *m;
    char **names;
    size_t nlabels, i;

    HR_ASSERT(reg != NULL && name != NULL);
    HR_ASSERT(name_is_valid(name, strlen(name), true));
    names = parse_labels(labels, &nlabels);
    if (type == HR_METRIC_HISTOGRAM) {
        for (i = 0; i < nlabels; i++)
            HR_ASSERT(strcmp(names[i], "le") != 0);
        for (i = 0; i < nbounds; i++) {
            HR_ASSERT(isfinite(bounds[i]));
            HR_ASSERT(i == 0 || bounds[i] > bounds[i - 1]);
        }
    }

    lock(reg);
    m = find_locked(reg, name);
    if (m) {
        HR_ASSERT(metric_matches(m, type, names, nlabels));
        unlock(reg);
        for (i = 0; i < nlabels; i++)
            free(names[i]);
        free(names);
        return m;
    }
    m = xcalloc(1, sizeof(*m));
    m->reg = reg;
    m->type = type;
    m->name = xstrdup(name);
    m->help = xstrdup(help ? help : "");
    m->label_names = names;
    m->nlabels = nlabels;
    if (type == HR_METRIC_HISTOGRAM) {
        m->bounds = xcalloc(nbounds, sizeof(*m->bounds));
        if (nbounds)
            memcpy(m->bounds, bounds, nbounds * sizeof(*bounds));
        m->nbounds = nbounds;
    }
    if (nlabels == 0) {
        /* The one series exists from the start, so it renders as zero. */
        m->head = m->tail = series_new(m, "", 0, 0);
        m->nseries = 1;
    } else {
        table_grow(m);
    }
    reg->metrics = hr_grow(reg->metrics, &reg->metrics_cap, reg->nmetrics + 1,
                           sizeof(*reg->metrics), 16);
    reg->metrics[reg->nmetrics++] = m;
    unlock(reg);
    return m;
}

struct hr_metrics *hr_metrics_new(const char *worker)
{
    struct hr_metrics *reg = xcalloc(1, sizeof(*reg));

    HR_ASSERT(pthread_mutex_init(&reg->lock, NULL) == 0);
    reg->worker = xstrdup(worker ? worker : "");
    return reg;
}

void hr_metrics_free(struct hr_metrics *reg)
{
    size_t i;

    if (!reg)
        return;
    for (i = 0; i < reg->nmetrics; i++)
        metric_free(reg->metrics[i]);
    free(reg->metrics);
    free(reg->worker);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

struct hr_metric *hr_metrics_counter(struct hr_metrics *reg,
                                     const char *name,
                                     const char *help,
                                     const char *labels)
{
    return declare(reg, HR_METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct hr_metric *hr_metrics_gauge(struct hr_metrics *reg,
                                   const char *name,
                                   const char *help,
                                   const char *labels)
{
    return declare(reg, HR_METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct hr_metric *hr_metrics_histogram(struct hr_metrics *reg,
                                       const char *name,
                                       const char *help,
                                       const char *labels,
                                       const double *buckets,
                                       size_t n)
{
    if (!buckets) {
        buckets = default_buckets;
        n = HR_ARRAY_SIZE(default_buckets);
    }
    return declare(reg, HR_METRIC_HISTOGRAM, name, help, labels, buckets, n);
}

struct hr_metric *hr_metrics_find(struct hr_metrics *reg, const char *name)
{
    struct hr_metric *m;

    lock(reg);
    m = find_locked(reg, name);
    unlock(reg);
    return m;
}

void hr_metric_add(struct hr_metric *m, const char *const *values, double v)
{
    struct hr_series *s;

    HR_ASSERT(m->type != HR_METRIC_HISTOGRAM);
    /* A counter only goes up; a bad increment is dropped, not fatal. */
    if (m->type == HR_METRIC_COUNTER && !(v >= 0))
        return;
    lock(m->reg);
    s = series_get(m, values, true, NULL);
    s->value += v;
    unlock(m->reg);
}

void hr_metric_set(struct hr_metric *m, const char *const *values, double v)
{
    struct hr_series *s;

    HR_ASSERT(m->type != HR_METRIC_HISTOGRAM);
    lock(m->reg);
    s = series_get(m, values, true, NULL);
    s->value = v;
    unlock(m->reg);
}

void hr_metric_observe(struct hr_metric *m,
                       const char *const *values,
                       double v,
                       uint64_t count)
{
    struct hr_series *s;
    size_t i;

    HR_ASSERT(m->type == HR_METRIC_HISTOGRAM);
    if (count == 0)
        return;
    /* First bucket whose upper bound holds @v; NaN lands in +Inf only. */
    for (i = 0; i < m->nbounds; i++)
        if (v <= m->bounds[i])
            break;
    lock(m->reg);
    s = series_get(m, values, true, NULL);
    s->buckets[i] += count;
    s->count += count;
    s->sum += v * (double)count;
    unlock(m->reg);
}

void hr_metric_remove(struct hr_metric *m, const char *const *values)
{
    struct hr_series *s, **link;

    lock(m->reg);
    s = series_get(m, values, false, &link);
    if (s && m->nlabels == 0) {
        /* The label-less series always renders: reset it instead. */
        s->value = 0;
        s->sum = 0;
        s->count = 0;
        if (s->buckets)
            memset(s->buckets, 0, (m->nbounds + 1) * sizeof(*s->buckets));
        s = NULL;
    } else if (s) {
        *link = s->hnext;
        if (s->prev)
            s->prev->next = s->next;
        else
            m->head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        else
            m->tail = s->prev;
        m->nseries--;
    }
    unlock(m->reg);
    series_free(s);
}

double hr_metric_value(struct hr_metric *m, const char *const *values)
{
    struct hr_series *s;
    double v = 0;

    lock(m->reg);
    s = series_get(m, values, false, NULL);
    if (s)
        v = m->type == HR_METRIC_HISTOGRAM ? (double)s->count : s->value;
    unlock(m->reg);
    return v;
}

/*
 * Prometheus spelling of a sample value: integral values without exponent
 * ("3"), others in the shortest form that reads back exactly ("0.005", not
 * "0.0050000000000000001"), and +Inf, -Inf, NaN.
 */
static void format_value(double v, char *buf, size_t size)
{
    int prec;

    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, size, "%lld", (long long)v);
    } else {
        for (prec = 15; prec < 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                return;
        }
        snprintf(buf, size, "%.17g", v);
    }
}

static void write_escaped(FILE *f, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (quote && *s == '"')
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

static void write_labels(FILE *f,
                         const struct hr_metrics *reg,
                         const struct hr_metric *m,
                         const struct hr_series *s,
                         const char *le)
{
    size_t i;

    fputs("{worker=\"", f);
    write_escaped(f, reg->worker, true);
    fputc('"', f);
    for (i = 0; i < m->nlabels; i++) {
        fprintf(f, ",%s=\"", m->label_names[i]);
        write_escaped(f, s->values[i], true);
        fputc('"', f);
    }
    if (le)
        fprintf(f, ",le=\"%s\"", le);
    fputc('}', f);
}

static void write_sample(FILE *f,
                         const struct hr_metrics *reg,
                         const struct hr_metric *m,
                         const struct hr_series *s,
                         const char *suffix,
                         const char *le,
                         double v)
{
    char num[64];

    format_value(v, num, sizeof(num));
    fprintf(f, "%s%s", m->name, suffix);
    write_labels(f, reg, m, s, le);
    fprintf(f, " %s\n", num);
}

static void
write_metric(FILE *f, const struct hr_metrics *reg, const struct hr_metric *m)
{
    static const char *const type_names[] = {
        [HR_METRIC_COUNTER] = "counter",
        [HR_METRIC_GAUGE] = "gauge",
        [HR_METRIC_HISTOGRAM] = "histogram",
    };
    const struct hr_series *s;
    char le[64];
    size_t i;

    fprintf(f, "# HELP %s ", m->name);
    write_escaped(f, m->help, false);
    fprintf(f, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    for (s = m->head; s; s = s->next) {
        uint64_t cumulative = 0;

        if (m->type != HR_METRIC_HISTOGRAM) {
            write_sample(f, reg, m, s, "", NULL, s->value);
            continue;
        }
        for (i = 0; i < m->nbounds; i++) {
            cumulative += s->buckets[i];
            format_value(m->bounds[i], le, sizeof(le));
            write_sample(f, reg, m, s, "_bucket", le, (double)cumulative);
        }
        write_sample(f, reg, m, s, "_bucket", "+Inf", (double)s->count);
        write_sample(f, reg, m, s, "_sum", NULL, s->sum);
        write_sample(f, reg, m, s, "_count", NULL, (double)s->count);
    }
}

char *hr_metrics_render(struct hr_metrics *reg, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f;
    size_t i;

    f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    lock(reg);
    for (i = 0; i < reg->nmetrics; i++)
        write_metric(f, reg, reg->metrics[i]);
    unlock(reg);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = size;
    return buf;
}
