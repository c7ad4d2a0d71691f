/* log.c — structured logfmt lines with UTC timestamps, written in one write each so
 * concurrent tasks never interleave within a line. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static log_level_t g_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level)
{
    g_level = level;
}

log_level_t log_level_from_name(const char *name, int *ok)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *ok = 1;
            return (log_level_t)i;
        }
    }
    *ok = 0;
    return LOG_INFO;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    if (level < g_level)
        return;
    char line[8192];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* Every level goes to stdout: one stream a container collects, in order. */
    ssize_t w = write(STDOUT_FILENO, line, len);
    (void)w;
}

const char *log_quote(const char *s)
{
    static char ring[8][1100];
    static unsigned slot;
    char *out = ring[slot++ % 8];
    size_t o = 0;
    if (!s)
        s = "";
    out[o++] = '"';
    for (; *s && o < 1000; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\t' || c < 0x20) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
