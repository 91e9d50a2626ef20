/*
 * Metrics registry: counters, gauges and histograms with labels, rendered as
 * Prometheus text format 0.0.4.
 *
 * Every series carries the label worker="<name>" given to hr_metrics_new().
 * Label values are passed as an array whose length is the number of label
 * names the metric was declared with:
 *
 *   m = hr_metrics_counter(reg, "herald_events_consumed_total",
 *                          "Events read from the source", "topic");
 *   hr_metric_add(m, (const char *[]){topic}, 1);
 *
 * Thread-safe: every function may be called from any thread (one mutex per
 * registry); the HTTP thread renders while workers update.
 */
#ifndef HR_METRICS_H
#define HR_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct hr_metrics;
struct hr_metric;

/** A new registry whose series all carry worker="@worker" (copied). */
struct hr_metrics *hr_metrics_new(const char *worker);

/** Free the registry and all its metrics. NULL is a no-op. */
void hr_metrics_free(struct hr_metrics *reg);

/**
 * Declare a metric (or return the existing one with the same name; the
 * type and labels must then match, asserted). @labels is a comma-separated
 * list of label names ("topic,partition") or NULL for none. All strings are
 * copied. The returned pointer is owned by the registry.
 */
struct hr_metric *hr_metrics_counter(struct hr_metrics *reg,
                                     const char *name,
                                     const char *help,
                                     const char *labels);
struct hr_metric *hr_metrics_gauge(struct hr_metrics *reg,
                                   const char *name,
                                   const char *help,
                                   const char *labels);
/** @buckets: @n strictly increasing upper bounds (copied); +Inf is implied.
 *  NULL uses the default latency buckets (0.5 ms .. 10 s). */
struct hr_metric *hr_metrics_histogram(struct hr_metrics *reg,
                                       const char *name,
                                       const char *help,
                                       const char *labels,
                                       const double *buckets,
                                       size_t n);

/** Look a declared metric up by name; NULL if absent. */
struct hr_metric *hr_metrics_find(struct hr_metrics *reg, const char *name);

/** Counter: add @v (>= 0). Gauge: add @v (any sign). */
void hr_metric_add(struct hr_metric *m, const char *const *values, double v);

/** Gauge: set to @v. */
void hr_metric_set(struct hr_metric *m, const char *const *values, double v);

/** Histogram: record @count observations of value @v. */
void hr_metric_observe(struct hr_metric *m,
                       const char *const *values,
                       double v,
                       uint64_t count);

/** Remove one labelled series (e.g. the lag of a revoked partition). */
void hr_metric_remove(struct hr_metric *m, const char *const *values);

/**
 * Current value of a counter or gauge series (a histogram returns its
 * count); 0 if the series does not exist. For tests and summaries.
 */
double hr_metric_value(struct hr_metric *m, const char *const *values);

/**
 * Render every metric as Prometheus text (HELP, TYPE, one line per series;
 * histograms with cumulative _bucket{le=...}, _sum and _count). Label values
 * are escaped (\\, \", \n). Metrics declared without any series yet still
 * print HELP and TYPE, and a label-less metric prints its zero value.
 * Returns a malloc'd NUL-terminated string the caller frees; *len (if not
 * NULL) gets its length.
 */
char *hr_metrics_render(struct hr_metrics *reg, size_t *len);

#endif
