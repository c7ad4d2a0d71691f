/* template.h — renders the Jinja subset that dbt models use (output, comments, if, for,
 * set, do; a fixed set of filters and tests). Generic: every function and global name
 * the template may use comes from the host through tpl_host_t. No I/O happens here. */
#ifndef ELTD_TEMPLATE_H
#define ELTD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPL_WUR __attribute__((warn_unused_result))

/* Limits that keep hostile templates from exhausting the stack, memory or time. The output
 * and step limits are ceilings: a host may ask for less (tpl_host_t.max_output, .max_steps). */
#define TPL_MAX_DEPTH  100         /* nested blocks, nested expressions, nested values */
#define TPL_MAX_OUTPUT (16u << 20) /* bytes in the output and in any one string */
#define TPL_MAX_STEPS  10000000u   /* evaluation work units (nodes, copied items, 16 bytes) */

typedef enum tpl_type {
    TPL_NONE = 0, /* a zeroed tpl_value_t is none */
    TPL_BOOL,
    TPL_INT,
    TPL_FLOAT,
    TPL_STRING,
    TPL_LIST,
    TPL_DICT,
} tpl_type_t;

typedef struct tpl_value tpl_value_t;
typedef struct tpl_entry tpl_entry_t;

/* A value owns everything it points to; tpl_value_free releases it. */
struct tpl_value {
    tpl_type_t type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *ptr;  /* always NUL-terminated; may hold NULs inside */
            size_t len; /* bytes, without the terminator */
        } str;
        struct {
            tpl_value_t *items;
            size_t len, cap;
        } list;
        struct {
            tpl_entry_t *items; /* in insertion order; keys are unique */
            size_t len, cap;
        } dict;
    } u;
};

struct tpl_entry {
    char *key;         /* NUL-terminated */
    size_t klen;       /* bytes of key, without the terminator */
    tpl_value_t value; /* owned by the entry */
};

/* A keyword argument passed to a host function; borrowed for the call only. */
typedef struct tpl_kwarg {
    const char *name;
    tpl_value_t value;
} tpl_kwarg_t;

/* What tpl_host_t.call returns. */
typedef enum tpl_call_result {
    TPL_CALL_OK = 0,       /* *out is filled; the renderer takes it over */
    TPL_CALL_ERROR = -1,   /* err holds a message; *out must be left none */
    TPL_CALL_UNKNOWN = -2, /* the host has no such function (builtins are tried next) */
} tpl_call_result_t;

typedef struct tpl_host {
    void *ud; /* passed back to both callbacks */
    /* Global names the template did not set (e.g. "this", "target"). On true, *out (zeroed
     * on entry) holds a value the renderer takes over. NULL means no globals. */
    bool (*lookup)(void *ud, const char *name, tpl_value_t *out);
    /* Calls function `name` ("ref", or dotted like "adapter.quote"). args and kw are
     * borrowed. Returns a tpl_call_result_t. NULL means no host functions. */
    int (*call)(void *ud, const char *name, const tpl_value_t *args, size_t nargs,
                const tpl_kwarg_t *kw, size_t nkw, tpl_value_t *out, char *err, size_t errlen);
    /* Work limits for one render; 0 (or more than the ceiling) means the ceiling. A smaller
     * budget fails sooner with the same errors, e.g. for a fuzzer that must stay fast. */
    size_t max_output;  /* bytes in the output and in any one string; ceiling TPL_MAX_OUTPUT */
    uint64_t max_steps; /* evaluation work units; ceiling TPL_MAX_STEPS */
} tpl_host_t;

typedef struct tpl_error {
    char file[256];    /* as given to tpl_render, cut to fit */
    unsigned line;     /* 1-based */
    unsigned column;   /* 1-based, in characters (UTF-8 code points) */
    char message[512]; /* without the location prefix */
} tpl_error_t;

/* Renders src (len bytes) with Jinja's default settings (no autoescape, trim_blocks and
 * lstrip_blocks off, one trailing newline dropped, \r\n and \r read as \n). On success
 * *out is a malloc'd NUL-terminated string of *outlen bytes that the caller frees. On
 * failure *out is NULL and *err says where and why; nothing partial is returned. */
bool tpl_render(const char *file, const char *src, size_t len, const tpl_host_t *host, char **out,
                size_t *outlen, tpl_error_t *err) TPL_WUR;

/* Writes "FILE:LINE:COL: message" into buf (cut to n); returns what snprintf returns. */
int tpl_error_format(const tpl_error_t *err, char *buf, size_t n);

/* Value constructors. Scalars need no freeing; string, list and dict do. */
tpl_value_t tpl_value_none(void);
tpl_value_t tpl_value_bool(bool b);
tpl_value_t tpl_value_int(int64_t i);
tpl_value_t tpl_value_float(double f);
tpl_value_t tpl_value_list(void); /* empty; allocates on first push */
tpl_value_t tpl_value_dict(void); /* empty; allocates on first set */
/* Copies len bytes of s. On failure (out of memory) *out is none. */
bool tpl_value_string(tpl_value_t *out, const char *s, size_t len) TPL_WUR;
bool tpl_value_cstring(tpl_value_t *out, const char *s) TPL_WUR;

/* Appends *item, taking it over even on failure; *item is none afterwards. */
bool tpl_value_list_push(tpl_value_t *list, tpl_value_t *item) TPL_WUR;
/* Sets dict[key] (copied), taking *val over even on failure; *val is none afterwards.
 * An existing key keeps its position and gets the new value. */
bool tpl_value_dict_set(tpl_value_t *dict, const char *key, tpl_value_t *val) TPL_WUR;
/* Borrowed pointer into dict, or NULL when absent or dict is not a dict. */
const tpl_value_t *tpl_value_dict_get(const tpl_value_t *dict, const char *key);

/* Deep copy into *dst (overwritten, not freed first). On failure *dst is none. */
bool tpl_value_copy(tpl_value_t *dst, const tpl_value_t *src) TPL_WUR;
/* Releases what v owns and leaves it none. Safe on none. */
void tpl_value_free(tpl_value_t *v);

/* Python's str(): none -> "None", true -> "True", 1.0 -> "1.0", lists and dicts as repr.
 * *out is malloc'd and NUL-terminated; the caller frees it. */
bool tpl_value_to_string(const tpl_value_t *v, char **out, size_t *len) TPL_WUR;
/* Jinja truthiness: none, false, 0, 0.0, "", [] and {} are false. */
bool tpl_value_truthy(const tpl_value_t *v);
const char *tpl_type_name(tpl_type_t t);

#endif
