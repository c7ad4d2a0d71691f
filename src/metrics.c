/* metrics.c — the metrics registry and its Prometheus text exposition (format 0.0.4):
 * families kept sorted by name and series by label values so every scrape reads the same
 * way, plus the process_* collectors that read /proc at render time. */
#include "metrics.h"

#include "log.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const double metrics_default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
                                          5,     10,   30,    60,   120, 300,  600, 1800, 3600};
const size_t metrics_default_buckets_len =
    sizeof metrics_default_buckets / sizeof metrics_default_buckets[0];

typedef struct {
    char *labels[METRICS_MAX_LABELS]; /* owned copies of the label values, family order */
    double value;                     /* counter or gauge value; histogram sum */
    unsigned long long *counts;       /* histogram only: per bucket, not cumulative; +Inf last */
    unsigned long long count;         /* histogram only: observations */
} series_t;

struct metrics_family {
    metrics_kind_t kind;
    char *name;
    char *help;
    char *label_names[METRICS_MAX_LABELS];
    size_t nlabels;
    double *buckets; /* histogram upper bounds, strictly increasing, without +Inf */
    size_t nbuckets;
    series_t *series; /* sorted by label values */
    size_t nseries, cap;
    metrics_collect_cb collect; /* set for collector families */
    void *collect_ud;
    bool collecting; /* inside collect: only then may metrics_collected_set be used */
};

struct metrics_registry {
    metrics_family_t **fams; /* sorted by name */
    size_t n, cap;
};

/* ---- names ------------------------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The suffixes that belong to one kind: a gauge called x_count would read as part of a
 * histogram x, and promtool flags a non-counter ending in _total. */
static const char *kind_name_problem(metrics_kind_t kind, const char *name)
{
    if (kind == METRICS_COUNTER)
        return ends_with(name, "_total") ? NULL : "a counter's name must end in _total";
    if (ends_with(name, "_total") || ends_with(name, "_bucket") || ends_with(name, "_sum") ||
        ends_with(name, "_count"))
        return "only counters end in _total, and _bucket/_sum/_count belong to histograms";
    return NULL;
}

/* ---- series ------------------------------------------------------------------------ */

static int cmp_labels(char *const *a, const char *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i], b[i]);
        if (c)
            return c;
    }
    return 0;
}

static void series_free(series_t *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(s->labels[i]);
    free(s->counts);
}

/* Finds the series with these label values, creating it (at its sorted place) if absent.
 * NULL on misuse or when memory runs out; both are logged here. */
static series_t *family_series(metrics_family_t *fam, const char *const *values, size_t n)
{
    if (n != fam->nlabels) {
        log_error("msg=\"metric updated with the wrong number of labels\" metric=%s want=%zu "
                  "got=%zu",
                  fam->name, fam->nlabels, n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!values[i]) {
            log_error("msg=\"metric updated with a NULL label value\" metric=%s", fam->name);
            return NULL;
        }
    }
    size_t lo = 0, hi = fam->nseries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_labels(fam->series[mid].labels, values, n);
        if (c == 0)
            return &fam->series[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (fam->nseries == fam->cap) {
        size_t cap = fam->cap ? fam->cap * 2 : 4;
        series_t *grown = realloc(fam->series, cap * sizeof *grown);
        if (!grown)
            goto oom;
        fam->series = grown;
        fam->cap = cap;
    }
    series_t s = {0};
    for (size_t i = 0; i < n; i++) {
        s.labels[i] = strdup(values[i]);
        if (!s.labels[i]) {
            series_free(&s, i);
            goto oom;
        }
    }
    if (fam->kind == METRICS_HISTOGRAM) {
        s.counts = calloc(fam->nbuckets + 1, sizeof *s.counts);
        if (!s.counts) {
            series_free(&s, n);
            goto oom;
        }
    }
    memmove(&fam->series[lo + 1], &fam->series[lo], (fam->nseries - lo) * sizeof s);
    fam->series[lo] = s;
    fam->nseries++;
    return &fam->series[lo];
oom:
    log_error("msg=\"out of memory for a metric series\" metric=%s", fam->name);
    return NULL;
}

static void family_clear_series(metrics_family_t *fam)
{
    for (size_t i = 0; i < fam->nseries; i++)
        series_free(&fam->series[i], fam->nlabels);
    fam->nseries = 0;
}

static void family_free(metrics_family_t *fam)
{
    if (!fam)
        return;
    family_clear_series(fam);
    free(fam->series);
    free(fam->name);
    free(fam->help);
    for (size_t i = 0; i < fam->nlabels; i++)
        free(fam->label_names[i]);
    free(fam->buckets);
    free(fam);
}

/* ---- registry ---------------------------------------------------------------------- */

metrics_registry_t *metrics_registry_new(void)
{
    return calloc(1, sizeof(metrics_registry_t));
}

void metrics_registry_free(metrics_registry_t *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        family_free(reg->fams[i]);
    free(reg->fams);
    free(reg);
}

static size_t registry_find(const metrics_registry_t *reg, const char *name, bool *found)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(reg->fams[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static metrics_family_t *registry_add(metrics_registry_t *reg, metrics_kind_t kind,
                                      const char *name, const char *help,
                                      const char *const *label_names, size_t nlabels,
                                      const double *buckets, size_t nbuckets)
{
    const char *problem = NULL;
    if (!reg)
        problem = "no registry";
    else if (!valid_metric_name(name))
        problem = "invalid metric name";
    else if (!help)
        problem = "missing help text";
    else if (nlabels > METRICS_MAX_LABELS || (nlabels && !label_names))
        problem = "too many labels";
    else
        problem = kind_name_problem(kind, name);
    for (size_t i = 0; !problem && i < nlabels; i++) {
        if (!valid_label_name(label_names[i]))
            problem = "invalid label name";
        else if (kind == METRICS_HISTOGRAM && strcmp(label_names[i], "le") == 0)
            problem = "label le is reserved for histogram buckets";
        for (size_t j = 0; !problem && j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                problem = "duplicate label name";
    }
    if (!problem && kind == METRICS_HISTOGRAM) {
        if (nbuckets == 0)
            problem = "a histogram needs at least one bucket";
        for (size_t i = 0; !problem && i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                problem = "histogram bounds must be finite and strictly increasing";
    }
    bool found = false;
    size_t at = 0;
    if (!problem) {
        at = registry_find(reg, name, &found);
        if (found)
            problem = "metric already registered";
    }
    if (problem) {
        log_error("msg=\"cannot register metric\" metric=%s reason=%s",
                  log_quote(name ? name : "(null)"), log_quote(problem));
        return NULL;
    }

    metrics_family_t *fam = calloc(1, sizeof *fam);
    if (!fam)
        goto oom;
    fam->kind = kind;
    fam->name = strdup(name);
    fam->help = strdup(help);
    if (!fam->name || !fam->help)
        goto oom;
    for (size_t i = 0; i < nlabels; i++) {
        fam->label_names[i] = strdup(label_names[i]);
        if (!fam->label_names[i])
            goto oom;
        fam->nlabels = i + 1;
    }
    if (kind == METRICS_HISTOGRAM) {
        fam->buckets = malloc(nbuckets * sizeof *fam->buckets);
        if (!fam->buckets)
            goto oom;
        memcpy(fam->buckets, buckets, nbuckets * sizeof *fam->buckets);
        fam->nbuckets = nbuckets;
    }
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        metrics_family_t **grown = realloc(reg->fams, cap * sizeof *grown);
        if (!grown)
            goto oom;
        reg->fams = grown;
        reg->cap = cap;
    }
    memmove(&reg->fams[at + 1], &reg->fams[at], (reg->n - at) * sizeof *reg->fams);
    reg->fams[at] = fam;
    reg->n++;
    return fam;
oom:
    family_free(fam);
    log_error("msg=\"out of memory registering metric\" metric=%s", log_quote(name));
    return NULL;
}

/* An unlabelled family gets its one series now, so a scrape shows it at zero rather than
 * leaving a gap until the first event. */
static metrics_family_t *with_initial_series(metrics_family_t *fam)
{
    /* Should memory run out here (logged), the series appears on the first update. */
    if (fam && fam->nlabels == 0)
        (void)family_series(fam, NULL, 0);
    return fam;
}

metrics_family_t *metrics_counter(metrics_registry_t *reg, const char *name, const char *help,
                                  const char *const *label_names, size_t nlabels)
{
    return with_initial_series(
        registry_add(reg, METRICS_COUNTER, name, help, label_names, nlabels, NULL, 0));
}

metrics_family_t *metrics_gauge(metrics_registry_t *reg, const char *name, const char *help,
                                const char *const *label_names, size_t nlabels)
{
    return with_initial_series(
        registry_add(reg, METRICS_GAUGE, name, help, label_names, nlabels, NULL, 0));
}

metrics_family_t *metrics_histogram(metrics_registry_t *reg, const char *name, const char *help,
                                    const char *const *label_names, size_t nlabels,
                                    const double *buckets, size_t nbuckets)
{
    if (!buckets) {
        buckets = metrics_default_buckets;
        nbuckets = metrics_default_buckets_len;
    }
    return with_initial_series(
        registry_add(reg, METRICS_HISTOGRAM, name, help, label_names, nlabels, buckets, nbuckets));
}

metrics_family_t *metrics_collector(metrics_registry_t *reg, metrics_kind_t kind, const char *name,
                                    const char *help, const char *const *label_names,
                                    size_t nlabels, metrics_collect_cb cb, void *ud)
{
    if (kind == METRICS_HISTOGRAM || !cb) {
        log_error("msg=\"cannot register metric\" metric=%s reason=\"collectors are counters or "
                  "gauges with a callback\"",
                  log_quote(name ? name : "(null)"));
        return NULL;
    }
    metrics_family_t *fam = registry_add(reg, kind, name, help, label_names, nlabels, NULL, 0);
    if (fam) {
        fam->collect = cb;
        fam->collect_ud = ud;
    }
    return fam;
}

/* ---- updates ----------------------------------------------------------------------- */

static bool check_kind(const metrics_family_t *fam, metrics_kind_t kind, const char *op)
{
    if (!fam)
        return false;
    if (fam->kind != kind || fam->collect) {
        log_error("msg=\"metric update does not fit the family\" metric=%s op=%s", fam->name, op);
        return false;
    }
    return true;
}

void metrics_counter_add(metrics_family_t *fam, double value, const char *const *label_values,
                         size_t nvalues)
{
    if (!check_kind(fam, METRICS_COUNTER, "counter_add"))
        return;
    if (!(value >= 0)) {
        log_error("msg=\"counter increment must be >= 0\" metric=%s", fam->name);
        return;
    }
    series_t *s = family_series(fam, label_values, nvalues);
    if (s)
        s->value += value;
}

void metrics_gauge_set(metrics_family_t *fam, double value, const char *const *label_values,
                       size_t nvalues)
{
    if (!check_kind(fam, METRICS_GAUGE, "gauge_set"))
        return;
    series_t *s = family_series(fam, label_values, nvalues);
    if (s)
        s->value = value;
}

void metrics_gauge_add(metrics_family_t *fam, double value, const char *const *label_values,
                       size_t nvalues)
{
    if (!check_kind(fam, METRICS_GAUGE, "gauge_add"))
        return;
    series_t *s = family_series(fam, label_values, nvalues);
    if (s)
        s->value += value;
}

void metrics_histogram_observe(metrics_family_t *fam, double value, const char *const *label_values,
                               size_t nvalues)
{
    if (!check_kind(fam, METRICS_HISTOGRAM, "histogram_observe"))
        return;
    /* A NaN would poison _sum for the life of the process. */
    if (isnan(value)) {
        log_error("msg=\"histogram observation is NaN\" metric=%s", fam->name);
        return;
    }
    series_t *s = family_series(fam, label_values, nvalues);
    if (!s)
        return;
    size_t i = 0;
    while (i < fam->nbuckets && value > fam->buckets[i])
        i++;
    s->counts[i]++;
    s->count++;
    s->value += value;
}

void metrics_collected_set(metrics_family_t *fam, double value, const char *const *label_values,
                           size_t nvalues)
{
    if (!fam)
        return;
    if (!fam->collect || !fam->collecting) {
        log_error("msg=\"metrics_collected_set outside a collector callback\" metric=%s",
                  fam->name);
        return;
    }
    series_t *s = family_series(fam, label_values, nvalues);
    if (s)
        s->value = value;
}

/* ---- rendering --------------------------------------------------------------------- */

/* Label values escape backslash, double quote and newline; HELP text escapes only
 * backslash and newline (format 0.0.4). */
static void buf_put_escaped(strbuf_t *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        if (esc) {
            strbuf_put(b, run, (size_t)(s - run));
            strbuf_puts(b, esc);
            run = s + 1;
        }
    }
    strbuf_put(b, run, (size_t)(s - run));
}

size_t metrics_format_double(char *buf, size_t size, double v)
{
    int n;
    if (isnan(v))
        n = snprintf(buf, size, "NaN");
    else if (isinf(v))
        n = snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    else if (v == 0)
        n = snprintf(buf, size, "0"); /* also for -0, which Prometheus does not distinguish */
    else if (v == floor(v) && fabs(v) < 1e21)
        n = snprintf(buf, size, "%.0f", v);
    else {
        /* The shortest %g that reads back as the same double, as Go's FormatFloat(-1) does.
         * Relies on the "C" numeric locale, which eltd never changes. */
        n = 0;
        for (int prec = 1; prec <= 17; prec++) {
            n = snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

static void buf_put_double(strbuf_t *b, double v)
{
    char tmp[40];
    strbuf_put(b, tmp, metrics_format_double(tmp, sizeof tmp, v));
}

static void buf_put_u64(strbuf_t *b, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    strbuf_put(b, tmp, (size_t)n);
}

/* Writes `{a="x",b="y",le="0.5"}`, or nothing when there are no labels at all. */
static void put_labels(strbuf_t *b, const metrics_family_t *fam, const series_t *s, const char *le)
{
    if (fam->nlabels == 0 && !le)
        return;
    strbuf_puts(b, "{");
    for (size_t i = 0; i < fam->nlabels; i++) {
        if (i)
            strbuf_puts(b, ",");
        strbuf_puts(b, fam->label_names[i]);
        strbuf_puts(b, "=\"");
        buf_put_escaped(b, s->labels[i], true);
        strbuf_puts(b, "\"");
    }
    if (le) {
        strbuf_puts(b, fam->nlabels ? ",le=\"" : "le=\"");
        strbuf_puts(b, le);
        strbuf_puts(b, "\"");
    }
    strbuf_puts(b, "}");
}

static void put_sample(strbuf_t *b, const metrics_family_t *fam, const char *suffix,
                       const series_t *s, const char *le)
{
    strbuf_puts(b, fam->name);
    strbuf_puts(b, suffix);
    put_labels(b, fam, s, le);
    strbuf_puts(b, " ");
}

static void render_family(strbuf_t *b, const metrics_family_t *fam)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    strbuf_puts(b, "# HELP ");
    strbuf_puts(b, fam->name);
    strbuf_puts(b, " ");
    buf_put_escaped(b, fam->help, false);
    strbuf_puts(b, "\n# TYPE ");
    strbuf_puts(b, fam->name);
    strbuf_puts(b, " ");
    strbuf_puts(b, type_names[fam->kind]);
    strbuf_puts(b, "\n");
    for (size_t i = 0; i < fam->nseries; i++) {
        const series_t *s = &fam->series[i];
        if (fam->kind != METRICS_HISTOGRAM) {
            put_sample(b, fam, "", s, NULL);
            buf_put_double(b, s->value);
            strbuf_puts(b, "\n");
            continue;
        }
        unsigned long long cumulative = 0;
        for (size_t k = 0; k <= fam->nbuckets; k++) {
            char le[40];
            if (k < fam->nbuckets)
                metrics_format_double(le, sizeof le, fam->buckets[k]);
            else
                snprintf(le, sizeof le, "+Inf");
            cumulative += s->counts[k];
            put_sample(b, fam, "_bucket", s, le);
            buf_put_u64(b, cumulative);
            strbuf_puts(b, "\n");
        }
        put_sample(b, fam, "_sum", s, NULL);
        buf_put_double(b, s->value);
        strbuf_puts(b, "\n");
        put_sample(b, fam, "_count", s, NULL);
        buf_put_u64(b, s->count);
        strbuf_puts(b, "\n");
    }
}

bool metrics_render(metrics_registry_t *reg, char **out, size_t *len)
{
    strbuf_t b = {0};
    for (size_t i = 0; i < reg->n; i++) {
        metrics_family_t *fam = reg->fams[i];
        if (fam->collect) {
            family_clear_series(fam);
            fam->collecting = true;
            bool ok = fam->collect(fam, fam->collect_ud);
            fam->collecting = false;
            if (!ok)
                continue;
        }
        /* Like client_golang, a family with no series yet is left out entirely. */
        if (fam->nseries == 0)
            continue;
        render_family(&b, fam);
    }
    /* An empty registry still yields an empty string, not NULL. */
    if (!(*out = strbuf_take(&b, len))) {
        log_error("msg=\"out of memory rendering metrics\"");
        return false;
    }
    return true;
}

/* ---- process collectors ------------------------------------------------------------ */

bool metrics_parse_proc_stat(const char *text, metrics_proc_stat_t *out)
{
    /* The command name (field 2) is in parentheses and may itself hold ") ", so the
     * numeric fields start after the last ')'. */
    const char *p = strrchr(text, ')');
    if (!p)
        return false;
    p++;
    unsigned long long fields[23] = {0}; /* fields[k] is field k (1-based), from 3 on */
    int field = 3;
    while (field <= 22) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            return false;
        if (field == 3) {
            /* The state is a letter, not a number. */
            while (*p && *p != ' ')
                p++;
        } else {
            char *end;
            errno = 0;
            long long v = strtoll(p, &end, 10);
            if (end == p || errno)
                return false;
            fields[field] = (unsigned long long)v;
            p = end;
        }
        field++;
    }
    out->utime_ticks = fields[14];
    out->stime_ticks = fields[15];
    out->starttime_ticks = fields[22];
    return true;
}

static bool read_small_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t got = 0;
    while (got + 1 < size) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return got > 0;
}

static bool collect_memory(metrics_family_t *fam, void *ud)
{
    /* ud selects the statm field: 0 is the total program size, 1 the resident set. */
    int which = (int)(size_t)ud;
    char text[256];
    unsigned long long size_pages, resident_pages;
    if (!read_small_file("/proc/self/statm", text, sizeof text) ||
        sscanf(text, "%llu %llu", &size_pages, &resident_pages) != 2) {
        log_warn("msg=\"cannot read /proc/self/statm\"");
        return false;
    }
    double page = (double)sysconf(_SC_PAGESIZE);
    metrics_collected_set(fam, (double)(which ? resident_pages : size_pages) * page,
                          METRICS_NO_LABELS);
    return true;
}

static bool collect_open_fds(metrics_family_t *fam, void *ud)
{
    (void)ud;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        log_warn("msg=\"cannot list /proc/self/fd\" error=%s", log_quote(strerror(errno)));
        return false;
    }
    /* The directory stream's own descriptor is listed too; it is not one of ours. */
    int self = dirfd(d);
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        n++;
    }
    closedir(d);
    metrics_collected_set(fam, n, METRICS_NO_LABELS);
    return true;
}

static bool collect_max_fds(metrics_family_t *fam, void *ud)
{
    (void)ud;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    metrics_collected_set(fam, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur,
                          METRICS_NO_LABELS);
    return true;
}

static bool read_self_stat(metrics_proc_stat_t *st)
{
    char text[2048];
    if (!read_small_file("/proc/self/stat", text, sizeof text) ||
        !metrics_parse_proc_stat(text, st)) {
        log_warn("msg=\"cannot read /proc/self/stat\"");
        return false;
    }
    return true;
}

static bool collect_cpu(metrics_family_t *fam, void *ud)
{
    (void)ud;
    metrics_proc_stat_t st;
    if (!read_self_stat(&st))
        return false;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    metrics_collected_set(fam, (double)(st.utime_ticks + st.stime_ticks) / ticks,
                          METRICS_NO_LABELS);
    return true;
}

/* The start time never changes, so it is computed once: boot time from /proc/stat's
 * btime plus the process's start offset after boot. */
static bool process_start_time(double *out)
{
    metrics_proc_stat_t st;
    char text[16384];
    if (!read_self_stat(&st) || !read_small_file("/proc/stat", text, sizeof text))
        return false;
    const char *p = strstr(text, "\nbtime ");
    unsigned long long btime;
    if (!p || sscanf(p + 7, "%llu", &btime) != 1)
        return false;
    *out = (double)btime + (double)st.starttime_ticks / (double)sysconf(_SC_CLK_TCK);
    return true;
}

bool metrics_register_process_collectors(metrics_registry_t *reg)
{
    double start;
    if (!process_start_time(&start)) {
        log_error("msg=\"cannot compute the process start time from /proc\"");
        return false;
    }
    metrics_family_t *start_fam =
        metrics_gauge(reg, "process_start_time_seconds",
                      "Start time of the process since unix epoch in seconds.", NULL, 0);
    if (!start_fam)
        return false;
    metrics_gauge_set(start_fam, start, METRICS_NO_LABELS);
    return metrics_collector(reg, METRICS_COUNTER, "process_cpu_seconds_total",
                             "Total user and system CPU time spent in seconds.", NULL, 0,
                             collect_cpu, NULL) &&
           metrics_collector(reg, METRICS_GAUGE, "process_resident_memory_bytes",
                             "Resident memory size in bytes.", NULL, 0, collect_memory,
                             (void *)(size_t)1) &&
           metrics_collector(reg, METRICS_GAUGE, "process_virtual_memory_bytes",
                             "Virtual memory size in bytes.", NULL, 0, collect_memory,
                             (void *)(size_t)0) &&
           metrics_collector(reg, METRICS_GAUGE, "process_open_fds",
                             "Number of open file descriptors.", NULL, 0, collect_open_fds, NULL) &&
           metrics_collector(reg, METRICS_GAUGE, "process_max_fds",
                             "Maximum number of open file descriptors.", NULL, 0, collect_max_fds,
                             NULL);
}
