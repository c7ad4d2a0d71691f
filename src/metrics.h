/* metrics.h — eltd's Prometheus metrics registry: counters, gauges, histograms and
 * render-time collectors, rendered as text exposition format 0.0.4 for GET /metrics.
 * Pure data and formatting; the only I/O is the /proc reading of the process collectors. */
#ifndef ELTD_METRICS_H
#define ELTD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_MUST_CHECK __attribute__((warn_unused_result))

/* A family holds at most this many label names (histograms add "le" on top). */
#define METRICS_MAX_LABELS 4

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_kind_t;

typedef struct metrics_registry metrics_registry_t;
typedef struct metrics_family metrics_family_t;

/* Called by metrics_render() before the family is written. The family's series are
 * cleared first, so what the callback sets with metrics_collected_set() is the whole
 * answer for this scrape. Returning false omits the family from this rendering (the
 * reason is the callback's to log). */
typedef bool (*metrics_collect_cb)(metrics_family_t *fam, void *ud);

/* Label values for one series: METRICS_LABELS("orders", "success") expands to the
 * array and its count, so call sites cannot get the two out of step. */
#define METRICS_LABELS(...)                                                                        \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define METRICS_NO_LABELS NULL, 0

/* The default histogram bounds, in seconds: 5 ms up to one hour. */
extern const double metrics_default_buckets[];
extern const size_t metrics_default_buckets_len;

metrics_registry_t *metrics_registry_new(void) METRICS_MUST_CHECK;
void metrics_registry_free(metrics_registry_t *reg);

/* Registration. Each returns a handle owned by the registry, or NULL (with a log_error
 * saying why) when a name is invalid or taken, the label names are invalid or too many,
 * a counter's name does not end in "_total", histogram bounds are not strictly increasing,
 * or memory runs out. A family without labels starts with one series at zero so it shows
 * before its first update; a labelled family shows once a series has been touched. */
metrics_family_t *metrics_counter(metrics_registry_t *reg, const char *name, const char *help,
                                  const char *const *label_names,
                                  size_t nlabels) METRICS_MUST_CHECK;
metrics_family_t *metrics_gauge(metrics_registry_t *reg, const char *name, const char *help,
                                const char *const *label_names, size_t nlabels) METRICS_MUST_CHECK;
/* buckets == NULL selects metrics_default_buckets; +Inf is always implied, never listed. */
metrics_family_t *metrics_histogram(metrics_registry_t *reg, const char *name, const char *help,
                                    const char *const *label_names, size_t nlabels,
                                    const double *buckets, size_t nbuckets) METRICS_MUST_CHECK;
/* A counter or gauge whose series are produced by cb at every render. */
metrics_family_t *metrics_collector(metrics_registry_t *reg, metrics_kind_t kind, const char *name,
                                    const char *help, const char *const *label_names,
                                    size_t nlabels, metrics_collect_cb cb,
                                    void *ud) METRICS_MUST_CHECK;

/* Updates. These return nothing on purpose: a metric must never fail a run. Misuse (wrong
 * family kind, wrong label count, a negative counter increment) is a programming error and
 * is logged and ignored, as is running out of memory for a new series. */
void metrics_counter_add(metrics_family_t *fam, double value, const char *const *label_values,
                         size_t nvalues);
void metrics_gauge_set(metrics_family_t *fam, double value, const char *const *label_values,
                       size_t nvalues);
void metrics_gauge_add(metrics_family_t *fam, double value, const char *const *label_values,
                       size_t nvalues);
void metrics_histogram_observe(metrics_family_t *fam, double value, const char *const *label_values,
                               size_t nvalues);
/* Only inside a metrics_collect_cb: sets one series of a collector family of either kind. */
void metrics_collected_set(metrics_family_t *fam, double value, const char *const *label_values,
                           size_t nvalues);

/* Renders every family (sorted by name; series sorted by label values) into a new
 * NUL-terminated malloc'd buffer the caller frees. False only when memory runs out. */
bool metrics_render(metrics_registry_t *reg, char **out, size_t *len) METRICS_MUST_CHECK;

/* Writes v as Prometheus spells a sample value: integral values without exponent, other
 * values in the shortest form that reads back exactly, "+Inf", "-Inf", "NaN". Returns
 * the length written; buf should hold 32 bytes. */
size_t metrics_format_double(char *buf, size_t size, double v);

/* The standard process_* families: resident and virtual memory, open and max file
 * descriptors, CPU seconds, start time. Read from /proc at render time. */
bool metrics_register_process_collectors(metrics_registry_t *reg) METRICS_MUST_CHECK;

/* The fields of /proc/self/stat the collectors need, parsed without I/O. */
typedef struct {
    unsigned long long utime_ticks;     /* field 14: user CPU time in clock ticks */
    unsigned long long stime_ticks;     /* field 15: system CPU time in clock ticks */
    unsigned long long starttime_ticks; /* field 22: start time after boot in clock ticks */
} metrics_proc_stat_t;

/* Parses the text of /proc/<pid>/stat; the command name may hold spaces and parentheses. */
bool metrics_parse_proc_stat(const char *text, metrics_proc_stat_t *out) METRICS_MUST_CHECK;

#endif
