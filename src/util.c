/* util.c — formatted allocation, the wall clock and mkdir -p, shared by every module. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

char *util_vasprintf(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    char *s = n < 0 ? NULL : malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *util_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = util_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

double util_wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

bool util_make_dirs(const char *dir, char *err, size_t errlen)
{
    if (!*dir) {
        snprintf(err, errlen, "empty directory name");
        return false;
    }
    char *copy = strdup(dir);
    if (!copy) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return false;
    }
    bool ok = true;
    for (char *p = copy + 1; ok; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create directory: %s", copy, strerror(errno));
            ok = false;
        }
        if (end)
            break;
        *p = '/';
    }
    free(copy);
    struct stat st;
    if (ok && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        snprintf(err, errlen, "%s: not a directory", dir);
        ok = false;
    }
    return ok;
}
