/* cron.h — cron expressions (five fields, names, ranges, steps, @presets), IANA time zones
 * read from TZif files, and the next-fire computation in a zone. Pure logic: no loop, no
 * process-global time state (no TZ, tzset or localtime).
 *
 * Day-of-month / day-of-week follow Vixie cron: a field is "unrestricted" when its text
 * starts with '*' ("*" and "*" with a step alike). When both are restricted a day matches if
 * EITHER matches ("0 0 13 * 5" fires on every 13th and every Friday); otherwise both must.
 *
 * Daylight saving and other offset changes (the rule cron_next applies):
 *  - A job whose hour field covers all 24 hours ("* * * * *", "0 * * * *", "15 * * * *")
 *    is an interval job: it fires at every real instant whose local wall time matches. In
 *    the repeated hour of a fall-back it fires in both occurrences (they are distinct real
 *    hours); a wall time inside a spring-forward gap does not exist and is not fired (the
 *    real time between fires stays the same: 01:30 CET is followed by 03:30 CEST).
 *  - Any other job names wall-clock times ("30 2 * * *") and fires once per matching local
 *    time: a time inside a spring-forward gap fires once, at the first instant after the
 *    gap (02:30 on a day 02:00→03:00 fires at 03:00 local; the day is never skipped, and
 *    several gap times collapse into that one fire); a time that occurs twice at fall-back
 *    fires only at its first occurrence (never a doubled run).
 *
 * cron_next looks at most CRON_HORIZON_YEARS ahead. That is 10, not 5, because the longest
 * wait a valid expression can have is eight years: "0 0 29 2 *" after 2096-03-01 next fires
 * in 2104 (2100 is not a leap year). Past the horizon it answers -1 ("never").
 */
#ifndef ELTD_CRON_H
#define ELTD_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_HORIZON_YEARS 10

/* A parsed expression as bit sets; bit n set means value n matches. */
typedef struct cron_expr {
    uint64_t minutes; /* bits 0-59 */
    uint32_t hours;   /* bits 0-23 */
    uint32_t mdays;   /* bits 1-31 */
    uint16_t months;  /* bits 1-12 */
    uint8_t wdays;    /* bits 0-6, Sunday = 0 (7 in the text is folded onto 0) */
    bool mday_star;   /* day-of-month text started with '*' (Vixie's DOM_STAR) */
    bool wday_star;   /* day-of-week text started with '*' (Vixie's DOW_STAR) */
} cron_expr_t;

/* Parses five whitespace-separated fields or an @preset (@hourly @daily @midnight @weekly
 * @monthly @quarterly @yearly @annually). Names (jan-dec, sun-sat) are case-insensitive.
 * On failure returns false and writes a message naming the field, the bad token and its
 * 1-based column, e.g. "minute field: 61 is out of range 0-59 (column 1)". */
bool cron_parse(cron_expr_t *out, const char *text, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Writes the normalised five-field form to buf (@weekly becomes "0 0 * * 0"; evenly spaced
 * sets are written as steps, so @quarterly's months 1,4,7,10 become a '*' with step 3),
 * NUL-terminated when buflen > 0, and returns the length it needed (snprintf-style).
 * Re-parsing the result gives the same expression, except for a day field that mixes a
 * leading '*' with other list items ("*" step 2 then ",5"), written as a plain list. */
size_t cron_format(const cron_expr_t *e, char *buf, size_t buflen);

/* A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"), used after the last listed transition. */
typedef struct cron_tz_rule_date {
    char kind;    /* 'J' (1-365, no Feb 29), 'D' (0-365 zero-based), 'M' (month.week.day) */
    int16_t n;    /* day number for 'J' and 'D' */
    int8_t month; /* 'M': 1-12 */
    int8_t week;  /* 'M': 1-5, 5 meaning the last such weekday */
    int8_t wday;  /* 'M': 0-6, Sunday = 0 */
    int32_t secs; /* local time of day of the change, may be negative or past 24h */
} cron_tz_rule_date_t;

typedef struct cron_tz_rule {
    int32_t std_off;           /* seconds east of UTC in standard time */
    int32_t dst_off;           /* seconds east of UTC in daylight time */
    bool has_dst;              /* false: std_off all year */
    cron_tz_rule_date_t start; /* change to daylight time, given in standard local time */
    cron_tz_rule_date_t end;   /* change back, given in daylight local time */
} cron_tz_rule_t;

/* A time zone. A zero-initialised cron_tz_t is UTC and needs no cron_tz_free. */
typedef struct cron_tz {
    char name[64];         /* IANA name as loaded ("" for the zero value = UTC) */
    size_t ntrans;         /* number of transitions */
    int64_t *trans;        /* transition instants, ascending (owned) */
    uint8_t *trans_type;   /* type index in effect from trans[i] on (owned, same block) */
    size_t ntypes;         /* number of local time types */
    int32_t type_off[256]; /* seconds east of UTC of each type; type 0 before trans[0] */
    bool has_rule;         /* rule applies after trans[ntrans-1] (or always if ntrans==0) */
    cron_tz_rule_t rule;   /* the TZif footer's POSIX TZ string, parsed */
} cron_tz_t;

/* Loads an IANA zone ("UTC", "Europe/Berlin") from $TZDIR or /usr/share/zoneinfo. "UTC"
 * and "Etc/UTC" are built in, so they work without tzdata. An unknown or malformed zone
 * is an error with a message. On success the caller owns *tz and frees it with
 * cron_tz_free. */
bool cron_tz_load(cron_tz_t *tz, const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parses TZif data (RFC 8536, version 1 to 4) already in memory; cron_tz_load's pure half. */
bool cron_tz_parse(cron_tz_t *tz, const char *name, const unsigned char *data, size_t len,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Releases what cron_tz_load/cron_tz_parse allocated and resets *tz to UTC. */
void cron_tz_free(cron_tz_t *tz);

/* Seconds east of UTC in effect at instant t (unix seconds); tz NULL means UTC. */
int32_t cron_tz_offset(const cron_tz_t *tz, int64_t t);

/* The first fire time strictly after `after` (unix seconds) in zone tz (NULL means UTC),
 * by the daylight-saving rule above, or -1 if none within CRON_HORIZON_YEARS. It walks
 * months, days and hours that cannot match in one step each, never minute by minute. */
int64_t cron_next(const cron_expr_t *e, const cron_tz_t *tz, int64_t after);

#endif
