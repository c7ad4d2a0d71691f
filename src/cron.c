/* cron.c — owns cron expression parsing, TZif time zone parsing and the next-fire
 * computation. Plain functions on plain data: the only I/O is cron_tz_load reading one
 * zoneinfo file; no process-global time state (TZ, tzset, localtime) is touched. */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ errors */

static bool fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* ------------------------------------------------------------ civil dates */

/* Howard Hinnant's days_from_civil / civil_from_days: exact proleptic Gregorian
 * arithmetic on day numbers, valid far beyond any horizon we use. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t ceil_minute(int64_t t)
{
    return -floor_div(-t, 60) * 60;
}

/* 0 = Sunday; day 0 (1970-01-01) was a Thursday. */
static int weekday_of(int64_t days)
{
    return (int)(days - floor_div(days + 4, 7) * 7 + 4);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_len(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* --------------------------------------------------------------- parsing */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct field_spec {
    const char *name;         /* as written in error messages */
    int min, max;             /* accepted numbers; day-of-week accepts 7 for Sunday */
    int star_max;             /* upper end of '*' and of "a/n" */
    const char *const *names; /* three-letter names or NULL */
    int nnames, name_base;    /* names[i] means name_base + i */
} field_spec_t;

static const field_spec_t fields[5] = {
    {"minute", 0, 59, 59, NULL, 0, 0},
    {"hour", 0, 23, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, 31, NULL, 0, 0},
    {"month", 1, 12, 12, month_names, 12, 1},
    /* '*' spans 0-6 so that Sunday is not counted twice by a step. */
    {"day-of-week", 0, 7, 6, wday_names, 7, 0},
};

typedef struct parse_ctx {
    const char *text; /* whole expression, for columns */
    const field_spec_t *f;
    char *err;
    size_t errlen;
} parse_ctx_t;

static size_t column(const parse_ctx_t *c, const char *p)
{
    return (size_t)(p - c->text) + 1;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Reads one number or name at *pp (stopping at ',', '-', '/' or the field's end) and
 * returns it checked against the field's range. */
static bool parse_value(parse_ctx_t *c, const char **pp, const char *end, int *out, bool *was_name)
{
    const char *p = *pp;
    const char *tok = p;
    *was_name = false;
    if (p < end && isdigit((unsigned char)*p)) {
        long v = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            if (v < 100000)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v < c->f->min || v > c->f->max)
            return fail(c->err, c->errlen, "%s field: %.*s is out of range %d-%d (column %zu)",
                        c->f->name, (int)(p - tok > 20 ? 20 : p - tok), tok, c->f->min, c->f->max,
                        column(c, tok));
        *out = (int)v;
        *pp = p;
        return true;
    }
    if (p < end && isalpha((unsigned char)*p)) {
        while (p < end && isalnum((unsigned char)*p))
            p++;
        int n = (int)(p - tok);
        if (c->f->names && n == 3) {
            for (int i = 0; i < c->f->nnames; i++) {
                if (strncasecmp(tok, c->f->names[i], 3) == 0) {
                    *out = c->f->name_base + i;
                    *was_name = true;
                    *pp = p;
                    return true;
                }
            }
        }
        if (c->f->names)
            return fail(c->err, c->errlen, "%s field: unknown name '%.*s' (column %zu)", c->f->name,
                        n > 20 ? 20 : n, tok, column(c, tok));
        return fail(c->err, c->errlen,
                    "%s field: '%.*s' is not a number (names are only for month and "
                    "day-of-week) (column %zu)",
                    c->f->name, n > 20 ? 20 : n, tok, column(c, tok));
    }
    if (p >= end || *p == ',')
        return fail(c->err, c->errlen, "%s field: missing value (column %zu)", c->f->name,
                    column(c, p));
    return fail(c->err, c->errlen, "%s field: unexpected character '%c' (column %zu)", c->f->name,
                *p, column(c, p));
}

/* One list item: "*", "a", "a-b", each optionally followed by "/step". */
static bool parse_item(parse_ctx_t *c, const char **pp, const char *end, uint64_t *mask)
{
    const field_spec_t *f = c->f;
    const char *p = *pp;
    const char *item = p;
    int lo, hi;
    bool single = false;
    if (*p == '*') {
        lo = f->min;
        hi = f->star_max;
        p++;
    } else {
        bool lo_name, hi_name;
        if (!parse_value(c, &p, end, &lo, &lo_name))
            return false;
        hi = lo;
        single = true;
        if (p < end && *p == '-') {
            p++;
            if (!parse_value(c, &p, end, &hi, &hi_name))
                return false;
            single = false;
            /* "fri-sun" means Friday to Sunday: the name sun closes a range as 7. */
            if (f->names == wday_names && hi_name && hi == 0 && lo > 0)
                hi = 7;
            if (lo > hi)
                return fail(c->err, c->errlen,
                            "%s field: range %.*s is reversed (start after end) (column %zu)",
                            f->name, (int)(p - item > 20 ? 20 : p - item), item, column(c, item));
        }
    }
    int step = 1;
    if (p < end && *p == '/') {
        p++;
        const char *st = p;
        long v = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            if (v < 100000)
                v = v * 10 + (*p - '0');
            p++;
        }
        int span = f->star_max - f->min + 1;
        if (p == st)
            return fail(c->err, c->errlen, "%s field: missing step number after '/' (column %zu)",
                        f->name, column(c, st));
        if (v == 0)
            return fail(c->err, c->errlen, "%s field: step 0 is not allowed (column %zu)", f->name,
                        column(c, st));
        if (v > span)
            return fail(c->err, c->errlen, "%s field: step %.*s is out of range 1-%d (column %zu)",
                        f->name, (int)(p - st > 20 ? 20 : p - st), st, span, column(c, st));
        step = (int)v;
        /* "a/n" means "a-max/n", as croniter and most crons read it; day-of-week "7/n"
         * is just Sunday. */
        if (single && lo < f->star_max)
            hi = f->star_max;
    }
    if (p < end && *p != ',')
        return fail(c->err, c->errlen, "%s field: unexpected character '%c' (column %zu)", f->name,
                    *p, column(c, p));
    for (int v = lo; v <= hi; v += step)
        *mask |= (uint64_t)1 << (f->names == wday_names && v == 7 ? 0 : v);
    *pp = p;
    return true;
}

static bool parse_field(parse_ctx_t *c, const char *p, const char *end, uint64_t *mask)
{
    *mask = 0;
    for (;;) {
        if (p >= end || *p == ',')
            return fail(c->err, c->errlen, "%s field: empty list item (column %zu)", c->f->name,
                        column(c, p));
        if (!parse_item(c, &p, end, mask))
            return false;
        if (p >= end)
            return true;
        p++; /* the ',' */
    }
}

static const struct {
    const char *name;
    const char *expr;
} presets[] = {
    {"@yearly", "0 0 1 1 *"},   {"@annually", "0 0 1 1 *"}, {"@quarterly", "0 0 1 1,4,7,10 *"},
    {"@monthly", "0 0 1 * *"},  {"@weekly", "0 0 * * 0"},   {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

bool cron_parse(cron_expr_t *out, const char *text, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return fail(err, errlen, "empty cron expression");
    const char *p = text;
    while (*p && is_blank(*p))
        p++;
    if (!*p)
        return fail(err, errlen, "empty cron expression");

    if (*p == '@') {
        const char *tok = p;
        while (*p && !is_blank(*p))
            p++;
        size_t n = (size_t)(p - tok);
        const char *rest = p;
        while (*rest && is_blank(*rest))
            rest++;
        if (*rest)
            return fail(err, errlen, "unexpected trailing text '%.20s' after %.*s (column %zu)",
                        rest, (int)(n > 20 ? 20 : n), tok, (size_t)(rest - text) + 1);
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
            if (strlen(presets[i].name) == n && strncasecmp(tok, presets[i].name, n) == 0)
                return cron_parse(out, presets[i].expr, err, errlen);
        }
        return fail(err, errlen,
                    "unknown preset '%.*s' (known: @hourly @daily @midnight @weekly @monthly "
                    "@quarterly @yearly @annually) (column %zu)",
                    (int)(n > 20 ? 20 : n), tok, (size_t)(tok - text) + 1);
    }

    uint64_t masks[5];
    bool stars[5];
    for (int i = 0; i < 5; i++) {
        while (*p && is_blank(*p))
            p++;
        if (!*p)
            return fail(err, errlen,
                        "expected 5 fields (minute hour day-of-month month day-of-week), "
                        "found %d",
                        i);
        const char *start = p;
        while (*p && !is_blank(*p))
            p++;
        parse_ctx_t c = {text, &fields[i], err, errlen};
        if (!parse_field(&c, start, p, &masks[i]))
            return false;
        stars[i] = *start == '*';
    }
    while (*p && is_blank(*p))
        p++;
    if (*p)
        return fail(err, errlen,
                    "unexpected trailing text '%.20s' after the day-of-week field: expected "
                    "exactly 5 fields (column %zu)",
                    p, (size_t)(p - text) + 1);

    out->minutes = masks[0];
    out->hours = (uint32_t)masks[1];
    out->mdays = (uint32_t)masks[2];
    out->months = (uint16_t)masks[3];
    out->wdays = (uint8_t)masks[4];
    out->mday_star = stars[2];
    out->wday_star = stars[4];
    return true;
}

/* -------------------------------------------------------------- formatting */

typedef struct out_buf {
    char *buf;
    size_t len, cap;
} out_buf_t;

static void out_printf(out_buf_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(out_buf_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = o->len < o->cap ? o->buf + o->len : NULL;
    int n = vsnprintf(dst, dst ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static uint64_t step_mask(int lo, int hi, int step)
{
    uint64_t m = 0;
    for (int v = lo; v <= hi; v += step)
        m |= (uint64_t)1 << v;
    return m;
}

static void format_field(out_buf_t *o, const field_spec_t *f, uint64_t mask, bool star_flag,
                         bool star_semantics)
{
    int hi = f->star_max;
    /* Only where '*' carries no meaning beyond the set (minute, hour, month) may a full
     * set be written as '*'; for the day fields it must come from the text's flag. */
    if (star_flag || !star_semantics) {
        /* A step that leaves a single value is only worth writing to keep a day field's
         * '*' flag; elsewhere "0" reads better than the equal step-60 form. */
        int max_step = star_flag ? hi - f->min + 1 : hi - f->min;
        for (int step = 1; step <= max_step; step++) {
            if (mask == step_mask(f->min, hi, step)) {
                if (step == 1)
                    out_printf(o, "*");
                else
                    out_printf(o, "*/%d", step);
                return;
            }
        }
    }
    bool first = true;
    for (int v = f->min; v <= hi; v++) {
        if (!(mask >> v & 1))
            continue;
        int end = v;
        while (end + 1 <= hi && (mask >> (end + 1) & 1))
            end++;
        if (end - v >= 2) {
            out_printf(o, "%s%d-%d", first ? "" : ",", v, end);
            v = end;
        } else {
            out_printf(o, "%s%d", first ? "" : ",", v);
        }
        first = false;
    }
}

size_t cron_format(const cron_expr_t *e, char *buf, size_t buflen)
{
    out_buf_t o = {buf, 0, buflen};
    if (buflen > 0)
        buf[0] = '\0';
    format_field(&o, &fields[0], e->minutes, false, false);
    out_printf(&o, " ");
    format_field(&o, &fields[1], e->hours, false, false);
    out_printf(&o, " ");
    format_field(&o, &fields[2], e->mdays, e->mday_star, true);
    out_printf(&o, " ");
    format_field(&o, &fields[3], e->months, false, false);
    out_printf(&o, " ");
    format_field(&o, &fields[4], e->wdays, e->wday_star, true);
    return o.len;
}

/* ------------------------------------------------------------ time zones */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64s(const unsigned char *p)
{
    uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
    return (int64_t)v;
}

/* POSIX TZ string pieces. Each reader advances *pp or returns false. */
static bool tzs_name(const char **pp)
{
    const char *p = *pp;
    if (*p == '<') {
        const char *q = strchr(p, '>');
        if (!q || q == p + 1)
            return false;
        *pp = q + 1;
        return true;
    }
    const char *s = p;
    while (isalpha((unsigned char)*p))
        p++;
    if (p - s < 3)
        return false;
    *pp = p;
    return true;
}

/* [+-]h[h...][:mm[:ss]] with hours up to max_hours. */
static bool tzs_hms(const char **pp, int max_hours, int32_t *out)
{
    const char *p = *pp;
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p))
        return false;
    long h = 0, m = 0, s = 0;
    int nd = 0;
    while (isdigit((unsigned char)*p) && nd < 3) {
        h = h * 10 + (*p++ - '0');
        nd++;
    }
    if (h > max_hours)
        return false;
    if (*p == ':') {
        p++;
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
            return false;
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (*p == ':') {
            p++;
            if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
                return false;
            s = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        }
    }
    if (m > 59 || s > 59)
        return false;
    *out = (int32_t)(sign * (h * 3600 + m * 60 + s));
    *pp = p;
    return true;
}

static bool tzs_int(const char **pp, int lo, int hi, int *out)
{
    const char *p = *pp;
    if (!isdigit((unsigned char)*p))
        return false;
    long v = 0;
    while (isdigit((unsigned char)*p) && v <= hi)
        v = v * 10 + (*p++ - '0');
    if (v < lo || v > hi || isdigit((unsigned char)*p))
        return false;
    *out = (int)v;
    *pp = p;
    return true;
}

static bool tzs_date(const char **pp, cron_tz_rule_date_t *d)
{
    const char *p = *pp;
    int a, b, c;
    memset(d, 0, sizeof *d);
    if (*p == 'M') {
        p++;
        if (!tzs_int(&p, 1, 12, &a) || *p++ != '.' || !tzs_int(&p, 1, 5, &b) || *p++ != '.' ||
            !tzs_int(&p, 0, 6, &c))
            return false;
        d->kind = 'M';
        d->month = (int8_t)a;
        d->week = (int8_t)b;
        d->wday = (int8_t)c;
    } else if (*p == 'J') {
        p++;
        if (!tzs_int(&p, 1, 365, &a))
            return false;
        d->kind = 'J';
        d->n = (int16_t)a;
    } else {
        if (!tzs_int(&p, 0, 365, &a))
            return false;
        d->kind = 'D';
        d->n = (int16_t)a;
    }
    d->secs = 2 * 3600;
    if (*p == '/') {
        p++;
        /* RFC 8536 (version 3) allows -167..167 hours here. */
        if (!tzs_hms(&p, 167, &d->secs))
            return false;
    }
    *pp = p;
    return true;
}

static bool tzs_parse(const char *s, cron_tz_rule_t *r)
{
    const char *p = s;
    int32_t v;
    memset(r, 0, sizeof *r);
    if (!tzs_name(&p) || !tzs_hms(&p, 24, &v))
        return false;
    /* POSIX offsets count west of Greenwich; ours count east. */
    r->std_off = -v;
    r->dst_off = r->std_off;
    if (!*p)
        return true;
    if (!tzs_name(&p))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!tzs_hms(&p, 24, &v))
            return false;
        r->dst_off = -v;
    }
    /* TZif footers always carry the rule; guessing one (posixrules) would be wrong. */
    if (*p++ != ',' || !tzs_date(&p, &r->start) || *p++ != ',' || !tzs_date(&p, &r->end))
        return false;
    return *p == '\0';
}

static int64_t rule_day(const cron_tz_rule_date_t *d, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1);
    switch (d->kind) {
    case 'J':
        return jan1 + d->n - 1 + (is_leap(y) && d->n >= 60);
    case 'D':
        return jan1 + d->n;
    default: {
        int64_t first = days_from_civil(y, d->month, 1);
        int64_t day = first + (d->wday - weekday_of(first) + 7) % 7 + (d->week - 1) * 7;
        while (day >= first + month_len(y, d->month))
            day -= 7;
        return day;
    }
    }
}

/* The instants of year y's two changes: *start into daylight time, *end out of it. */
static void rule_changes(const cron_tz_rule_t *r, int64_t y, int64_t *start, int64_t *end)
{
    *start = rule_day(&r->start, y) * 86400 + r->start.secs - r->std_off;
    *end = rule_day(&r->end, y) * 86400 + r->end.secs - r->dst_off;
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t, 86400), &y, &m, &d);
    return y;
}

static int32_t rule_offset(const cron_tz_rule_t *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t s, e;
    rule_changes(r, year_of(t + r->std_off), &s, &e);
    /* Southern-hemisphere rules start daylight time late in the year and end it early. */
    bool dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    return dst ? r->dst_off : r->std_off;
}

/* Last index i with trans[i] <= t; the caller ensures trans[0] <= t. */
static size_t trans_index(const cron_tz_t *tz, int64_t t)
{
    size_t lo = 0, hi = tz->ntrans; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static bool rule_applies(const cron_tz_t *tz, int64_t t)
{
    return tz->has_rule && (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1]);
}

int32_t cron_tz_offset(const cron_tz_t *tz, int64_t t)
{
    if (!tz)
        return 0;
    if (rule_applies(tz, t))
        return rule_offset(&tz->rule, t);
    if (tz->ntrans == 0 || t < tz->trans[0])
        return tz->type_off[0];
    return tz->type_off[tz->trans_type[trans_index(tz, t)]];
}

/* Changes of the footer rule near t: the six changes of the years around t that fall after
 * the table's last transition. */
static size_t rule_candidates(const cron_tz_t *tz, int64_t t, int64_t out[6])
{
    size_t n = 0;
    if (!tz->has_rule || !tz->rule.has_dst)
        return 0;
    int64_t y = year_of(t);
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s, e;
        rule_changes(&tz->rule, yy, &s, &e);
        int64_t c[2] = {s, e};
        for (int i = 0; i < 2; i++) {
            if (tz->ntrans == 0 || c[i] > tz->trans[tz->ntrans - 1])
                out[n++] = c[i];
        }
    }
    return n;
}

static int64_t trans_after(const cron_tz_t *tz, int64_t t)
{
    if (!tz)
        return INT64_MAX;
    size_t n = tz->ntrans;
    if (n > 0 && t < tz->trans[n - 1])
        return t < tz->trans[0] ? tz->trans[0] : tz->trans[trans_index(tz, t) + 1];
    int64_t c[6], best = INT64_MAX;
    size_t nc = rule_candidates(tz, t, c);
    for (size_t i = 0; i < nc; i++) {
        if (c[i] > t && c[i] < best)
            best = c[i];
    }
    return best;
}

static int64_t trans_at_or_before(const cron_tz_t *tz, int64_t t)
{
    if (!tz)
        return INT64_MIN;
    int64_t best = INT64_MIN;
    size_t n = tz->ntrans;
    if (n > 0 && t >= tz->trans[0])
        best = tz->trans[trans_index(tz, t)];
    if (rule_applies(tz, t)) {
        int64_t c[6];
        size_t nc = rule_candidates(tz, t, c);
        for (size_t i = 0; i < nc; i++) {
            if (c[i] <= t && c[i] > best)
                best = c[i];
        }
    }
    return best;
}

void cron_tz_free(cron_tz_t *tz)
{
    free(tz->trans);
    memset(tz, 0, sizeof *tz);
}

bool cron_tz_parse(cron_tz_t *tz, const char *name, const unsigned char *data, size_t len,
                   char *err, size_t errlen)
{
    memset(tz, 0, sizeof *tz);
    snprintf(tz->name, sizeof tz->name, "%s", name ? name : "");
    if (len < 44 || memcmp(data, "TZif", 4) != 0)
        return fail(err, errlen, "time zone '%s': not a TZif file", tz->name);
    int version = data[4] == 0 ? 1 : data[4] - '0';
    if (version < 1 || version > 4)
        return fail(err, errlen, "time zone '%s': unknown TZif version", tz->name);

    /* Version 1 data uses 32-bit times; version 2+ repeats everything with 64-bit times
     * after it, followed by the footer. Only that second block is read then. */
    size_t pos = 0;
    int tsize = 4;
    for (int pass = 0; pass < 2; pass++) {
        if (len - pos < 44 || memcmp(data + pos, "TZif", 4) != 0)
            return fail(err, errlen, "time zone '%s': truncated TZif header", tz->name);
        const unsigned char *h = data + pos + 20;
        uint64_t isutcnt = be32(h), isstdcnt = be32(h + 4), leapcnt = be32(h + 8),
                 timecnt = be32(h + 12), typecnt = be32(h + 16), charcnt = be32(h + 20);
        uint64_t body = timecnt * (uint64_t)(tsize + 1) + typecnt * 6 + charcnt +
                        leapcnt * (uint64_t)(tsize + 4) + isstdcnt + isutcnt;
        pos += 44;
        if (body > len - pos)
            return fail(err, errlen, "time zone '%s': truncated TZif data", tz->name);
        if (pass == 0 && version >= 2) {
            pos += (size_t)body;
            tsize = 8;
            continue;
        }
        if (typecnt < 1 || typecnt > 256)
            return fail(err, errlen, "time zone '%s': bad TZif type count", tz->name);
        if (leapcnt > 0)
            return fail(err, errlen,
                        "time zone '%s': zones with leap seconds (right/...) are not supported",
                        tz->name);
        const unsigned char *tp = data + pos;
        const unsigned char *ip = tp + timecnt * (uint64_t)tsize;
        const unsigned char *yp = ip + timecnt;
        if (timecnt > 0) {
            tz->trans = malloc((size_t)timecnt * (sizeof(int64_t) + 1));
            if (!tz->trans)
                return fail(err, errlen, "time zone '%s': out of memory", tz->name);
            tz->trans_type = (uint8_t *)(tz->trans + timecnt);
        }
        for (uint64_t i = 0; i < timecnt; i++) {
            int64_t t = tsize == 8 ? be64s(tp + i * 8) : (int32_t)be32(tp + i * 4);
            if (i > 0 && t <= tz->trans[i - 1]) {
                cron_tz_free(tz);
                return fail(err, errlen, "time zone '%s': TZif transitions out of order", name);
            }
            if (ip[i] >= typecnt) {
                cron_tz_free(tz);
                return fail(err, errlen, "time zone '%s': bad TZif type index", name);
            }
            tz->trans[i] = t;
            tz->trans_type[i] = ip[i];
        }
        tz->ntrans = (size_t)timecnt;
        tz->ntypes = (size_t)typecnt;
        for (uint64_t i = 0; i < typecnt; i++) {
            int32_t off = (int32_t)be32(yp + i * 6);
            if (off < -25 * 3600 || off > 26 * 3600) {
                cron_tz_free(tz);
                return fail(err, errlen, "time zone '%s': bad TZif UT offset", name);
            }
            tz->type_off[i] = off;
        }
        pos += (size_t)body;
        break;
    }

    if (version >= 2) {
        /* The footer: "\n<POSIX TZ string>\n", which governs times after the table. */
        if (pos >= len || data[pos] != '\n') {
            cron_tz_free(tz);
            return fail(err, errlen, "time zone '%s': missing TZif footer", name);
        }
        const unsigned char *s = data + pos + 1;
        const unsigned char *nl = memchr(s, '\n', len - pos - 1);
        if (!nl || nl - s > 127) {
            cron_tz_free(tz);
            return fail(err, errlen, "time zone '%s': bad TZif footer", name);
        }
        char str[128];
        memcpy(str, s, (size_t)(nl - s));
        str[nl - s] = '\0';
        if (str[0] != '\0') {
            if (!tzs_parse(str, &tz->rule)) {
                cron_tz_free(tz);
                return fail(err, errlen, "time zone '%s': unsupported TZ rule '%s'", name, str);
            }
            tz->has_rule = true;
        }
    }
    return true;
}

/* IANA names are paths below the zoneinfo directory; refuse anything that could step
 * outside it. */
static bool tz_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof(((cron_tz_t *)0)->name) || name[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!(isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '+' || ch == '/' ||
              ch == '.'))
            return false;
        if (ch == '.' && (i == 0 || name[i - 1] == '/'))
            return false;
    }
    return true;
}

bool cron_tz_load(cron_tz_t *tz, const char *name, char *err, size_t errlen)
{
    memset(tz, 0, sizeof *tz);
    if (!name || !tz_name_ok(name))
        return fail(err, errlen, "unknown time zone '%.64s': not an IANA zone name",
                    name ? name : "");
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
        snprintf(tz->name, sizeof tz->name, "%s", name);
        return true;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "unknown time zone '%s' (%s: %s)", name, path, strerror(errno));
    /* Real zone files are a few KiB; the cap only guards against reading a huge non-zone. */
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return fail(err, errlen, "time zone '%s': out of memory", name);
    }
    size_t len = fread(buf, 1, cap, f);
    bool read_err = ferror(f);
    fclose(f);
    if (read_err) {
        free(buf);
        return fail(err, errlen, "unknown time zone '%s' (%s: read error)", name, path);
    }
    bool ok = cron_tz_parse(tz, name, buf, len, err, errlen);
    free(buf);
    return ok;
}

/* ------------------------------------------------------------- next fire */

static bool day_matches(const cron_expr_t *e, int64_t days, int mday)
{
    bool dom = e->mdays >> mday & 1;
    bool dow = e->wdays >> weekday_of(days) & 1;
    /* Vixie cron: if either day field is '*'-led both must match, else either may. */
    if (e->mday_star || e->wday_star)
        return dom && dow;
    return dom || dow;
}

/* The first minute-aligned wall time w in [from, until) that the expression matches, or
 * -1. Wall times are local seconds counted like unix time. Whole months, days and hours
 * that cannot match are stepped over at once. */
static int64_t match_from(const cron_expr_t *e, int64_t from, int64_t until)
{
    int64_t w = ceil_minute(from);
    while (w < until) {
        int64_t days = floor_div(w, 86400);
        int64_t y;
        int m, d;
        civil_from_days(days, &y, &m, &d);
        if (!(e->months >> m & 1)) {
            w = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
            continue;
        }
        if (!day_matches(e, days, d)) {
            w = (days + 1) * 86400;
            continue;
        }
        int secs = (int)(w - days * 86400);
        int h = secs / 3600;
        int mi = secs % 3600 / 60;
        uint64_t later = e->minutes >> mi << mi;
        if (!(e->hours >> h & 1) || later == 0) {
            w = days * 86400 + (h + 1) * 3600;
            continue;
        }
        w = days * 86400 + h * 3600 + __builtin_ctzll(later) * 60;
        return w < until ? w : -1;
    }
    return -1;
}

int64_t cron_next(const cron_expr_t *e, const cron_tz_t *tz, int64_t after)
{
    /* About ±300,000 years: far past any real use, and no arithmetic below overflows. */
    const int64_t limit = (int64_t)1 << 43;
    if (after < -limit || after > limit || !e->minutes || !e->hours || !e->mdays || !e->months ||
        !e->wdays)
        return -1;
    int64_t horizon = after + (int64_t)CRON_HORIZON_YEARS * 366 * 86400;
    bool every_hour = (e->hours & 0xFFFFFF) == 0xFFFFFF;

    /* Walk the spans of constant UTC offset from `after` on. Within one span local time
     * is real time plus a constant, so the calendar search applies directly; the DST
     * rule (see cron.h) only concerns the wall times at a span's start. */
    int64_t t = after + 1;
    while (t < horizon) {
        int64_t start = trans_at_or_before(tz, t);
        int64_t end = trans_after(tz, t);
        int32_t off = cron_tz_offset(tz, t);
        int32_t prev_off = start == INT64_MIN ? off : cron_tz_offset(tz, start - 1);

        /* Spring forward: wall times [start+prev_off, start+off) never happen. A
         * wall-clock job due in there fires once, at the first instant after the gap. */
        if (!every_hour && start > after && off > prev_off &&
            match_from(e, start + prev_off, start + off) >= 0)
            return start;

        int64_t from = t + off;
        /* Fall back: wall times [start+off, start+prev_off) were already shown by the
         * span before; a wall-clock job fired (or was due) at their first occurrence. */
        if (!every_hour && prev_off > off && from < start + prev_off)
            from = start + prev_off;
        int64_t stop = end < horizon ? end : horizon;
        int64_t w = match_from(e, from, stop + off);
        if (w >= 0)
            return w - off;
        if (end >= horizon)
            break;
        t = end;
    }
    return -1;
}
