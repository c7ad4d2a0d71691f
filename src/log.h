/* log.h — structured log lines (logfmt) on stdout: one line per event. */
#ifndef ELTD_LOG_H
#define ELTD_LOG_H

#include <stdarg.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Lines below this level are dropped. Defaults to LOG_INFO; ELTD_LOG_LEVEL overrides. */
void log_set_level(log_level_t level);
log_level_t log_level_from_name(const char *name, int *ok);

/* Writes "ts=... level=... <fields>" where fields is a printf-style format of
 * key=value pairs; use log_quote() for values that may hold spaces. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns a logfmt-quoted copy of s in a small ring of static buffers (8 slots),
 * so several may be used in one log_msg call. Long values are cut at 1000 bytes. */
const char *log_quote(const char *s);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
