/* strbuf.h — a growable, always NUL-terminated string for the text eltd renders (the
 * Prometheus exposition, the docs page). After an allocation fails every write is a no-op
 * and strbuf_take reports it once, so the writers need not check each call. */
#ifndef ELTD_STRBUF_H
#define ELTD_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
    char *p; /* NULL until the first write */
    size_t len, cap;
    bool oom;
} strbuf_t;

void strbuf_put(strbuf_t *b, const char *s, size_t n);
void strbuf_puts(strbuf_t *b, const char *s);
void strbuf_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the text over (malloc'd, "" when nothing was written) with its length in *len, and
 * empties b; NULL (and b freed) when an allocation failed. */
char *strbuf_take(strbuf_t *b, size_t *len);

#endif
