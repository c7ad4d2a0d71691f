/* util.h — the few helpers every module needs: formatted allocation, the wall clock and
 * mkdir -p. */
#ifndef ELTD_UTIL_H
#define ELTD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* printf into a malloc'd string; NULL on out-of-memory or a bad format. */
char *util_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *util_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Wall-clock time in unix seconds with microseconds (for timestamps, not durations:
 * durations come from uv_now). */
double util_wall_now(void);

/* mkdir -p: creates dir and its missing parents with mode 0700. False with err set ("DIR:
 * cannot create directory: REASON", or "DIR: not a directory"). */
bool util_make_dirs(const char *dir, char *err, size_t errlen);

#endif
