/* template.c — the Jinja-subset renderer: normalises the source, lexes it into tokens,
 * parses the tokens into a tree (so syntax errors anywhere fail the whole template, as in
 * Jinja), then walks the tree against the host. Owns nothing beyond one tpl_render call. */
#include "template.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Expression trees are also bounded in depth, because left-deep chains like a+b+c+...
 * are built without parser recursion but evaluated and freed with it. */
#define NODE_MAX_DEPTH (2 * TPL_MAX_DEPTH)

/* ---------------------------------------------------------------- growable buffer */

enum { BUF_OK = 0, BUF_OOM, BUF_TOO_BIG };

typedef struct {
    char *ptr;
    size_t len, cap;
    size_t limit; /* most bytes it may hold; 0 means TPL_MAX_OUTPUT */
    int fail;     /* BUF_*: sticky, so callers may check once after several appends */
} buf_t;

static bool buf_reserve(buf_t *b, size_t extra)
{
    if (b->fail)
        return false;
    size_t limit = b->limit ? b->limit : TPL_MAX_OUTPUT;
    if (extra > limit || b->len + extra > limit) {
        b->fail = BUF_TOO_BIG;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (!p) {
        b->fail = BUF_OOM;
        return false;
    }
    b->ptr = p;
    b->cap = cap;
    b->ptr[b->len] = '\0';
    return true;
}

static bool buf_add(buf_t *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return true;
}

static bool buf_adds(buf_t *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

static bool buf_addc(buf_t *b, char c)
{
    return buf_add(b, &c, 1);
}

/* Moves the buffer's bytes into a string value; an empty buffer becomes "". */
static bool buf_to_value(buf_t *b, tpl_value_t *out)
{
    memset(out, 0, sizeof *out);
    if (!b->ptr && !buf_reserve(b, 0))
        return false;
    out->type = TPL_STRING;
    out->u.str.ptr = b->ptr;
    out->u.str.len = b->len;
    memset(b, 0, sizeof *b);
    return true;
}

/* ---------------------------------------------------------------- values */

const char *tpl_type_name(tpl_type_t t)
{
    switch (t) {
    case TPL_NONE:
        return "none";
    case TPL_BOOL:
        return "bool";
    case TPL_INT:
        return "int";
    case TPL_FLOAT:
        return "float";
    case TPL_STRING:
        return "string";
    case TPL_LIST:
        return "list";
    case TPL_DICT:
        return "dict";
    }
    return "?";
}

tpl_value_t tpl_value_none(void)
{
    tpl_value_t v;
    memset(&v, 0, sizeof v);
    return v;
}

tpl_value_t tpl_value_bool(bool b)
{
    tpl_value_t v = tpl_value_none();
    v.type = TPL_BOOL;
    v.u.b = b;
    return v;
}

tpl_value_t tpl_value_int(int64_t i)
{
    tpl_value_t v = tpl_value_none();
    v.type = TPL_INT;
    v.u.i = i;
    return v;
}

tpl_value_t tpl_value_float(double f)
{
    tpl_value_t v = tpl_value_none();
    v.type = TPL_FLOAT;
    v.u.f = f;
    return v;
}

tpl_value_t tpl_value_list(void)
{
    tpl_value_t v = tpl_value_none();
    v.type = TPL_LIST;
    return v;
}

tpl_value_t tpl_value_dict(void)
{
    tpl_value_t v = tpl_value_none();
    v.type = TPL_DICT;
    return v;
}

bool tpl_value_string(tpl_value_t *out, const char *s, size_t len)
{
    memset(out, 0, sizeof *out);
    char *p = malloc(len + 1);
    if (!p)
        return false;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    out->type = TPL_STRING;
    out->u.str.ptr = p;
    out->u.str.len = len;
    return true;
}

bool tpl_value_cstring(tpl_value_t *out, const char *s)
{
    return tpl_value_string(out, s, strlen(s));
}

void tpl_value_free(tpl_value_t *v)
{
    switch (v->type) {
    case TPL_STRING:
        free(v->u.str.ptr);
        break;
    case TPL_LIST:
        for (size_t i = 0; i < v->u.list.len; i++)
            tpl_value_free(&v->u.list.items[i]);
        free(v->u.list.items);
        break;
    case TPL_DICT:
        for (size_t i = 0; i < v->u.dict.len; i++) {
            free(v->u.dict.items[i].key);
            tpl_value_free(&v->u.dict.items[i].value);
        }
        free(v->u.dict.items);
        break;
    default:
        break;
    }
    memset(v, 0, sizeof *v);
}

bool tpl_value_list_push(tpl_value_t *list, tpl_value_t *item)
{
    if (list->type != TPL_LIST) {
        tpl_value_free(item);
        return false;
    }
    if (list->u.list.len == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        tpl_value_t *p = realloc(list->u.list.items, cap * sizeof *p);
        if (!p) {
            tpl_value_free(item);
            return false;
        }
        list->u.list.items = p;
        list->u.list.cap = cap;
    }
    list->u.list.items[list->u.list.len++] = *item;
    memset(item, 0, sizeof *item);
    return true;
}

static tpl_entry_t *dict_find(const tpl_value_t *d, const char *key, size_t klen)
{
    if (d->type != TPL_DICT)
        return NULL;
    for (size_t i = 0; i < d->u.dict.len; i++) {
        tpl_entry_t *e = &d->u.dict.items[i];
        if (e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
    return NULL;
}

static bool dict_setn(tpl_value_t *d, const char *key, size_t klen, tpl_value_t *val)
{
    if (d->type != TPL_DICT) {
        tpl_value_free(val);
        return false;
    }
    tpl_entry_t *e = dict_find(d, key, klen);
    if (e) {
        tpl_value_free(&e->value);
        e->value = *val;
        memset(val, 0, sizeof *val);
        return true;
    }
    if (d->u.dict.len == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
        tpl_entry_t *p = realloc(d->u.dict.items, cap * sizeof *p);
        if (!p) {
            tpl_value_free(val);
            return false;
        }
        d->u.dict.items = p;
        d->u.dict.cap = cap;
    }
    char *k = malloc(klen + 1);
    if (!k) {
        tpl_value_free(val);
        return false;
    }
    memcpy(k, key, klen);
    k[klen] = '\0';
    e = &d->u.dict.items[d->u.dict.len++];
    e->key = k;
    e->klen = klen;
    e->value = *val;
    memset(val, 0, sizeof *val);
    return true;
}

bool tpl_value_dict_set(tpl_value_t *dict, const char *key, tpl_value_t *val)
{
    return dict_setn(dict, key, strlen(key), val);
}

const tpl_value_t *tpl_value_dict_get(const tpl_value_t *dict, const char *key)
{
    tpl_entry_t *e = dict_find(dict, key, strlen(key));
    return e ? &e->value : NULL;
}

/* Deep copy that also counts the items it copied, so the renderer can bill the work. */
static bool value_copy_counted(tpl_value_t *dst, const tpl_value_t *src, uint64_t *count)
{
    memset(dst, 0, sizeof *dst);
    if (count)
        *count += 1;
    switch (src->type) {
    case TPL_STRING:
        if (count)
            *count += src->u.str.len / 16;
        return tpl_value_string(dst, src->u.str.ptr, src->u.str.len);
    case TPL_LIST:
        *dst = tpl_value_list();
        for (size_t i = 0; i < src->u.list.len; i++) {
            tpl_value_t item;
            if (!value_copy_counted(&item, &src->u.list.items[i], count) ||
                !tpl_value_list_push(dst, &item)) {
                tpl_value_free(dst);
                return false;
            }
        }
        return true;
    case TPL_DICT:
        *dst = tpl_value_dict();
        for (size_t i = 0; i < src->u.dict.len; i++) {
            const tpl_entry_t *e = &src->u.dict.items[i];
            tpl_value_t item;
            if (!value_copy_counted(&item, &e->value, count) ||
                !dict_setn(dst, e->key, e->klen, &item)) {
                tpl_value_free(dst);
                return false;
            }
        }
        return true;
    default:
        *dst = *src;
        return true;
    }
}

bool tpl_value_copy(tpl_value_t *dst, const tpl_value_t *src)
{
    return value_copy_counted(dst, src, NULL);
}

bool tpl_value_truthy(const tpl_value_t *v)
{
    switch (v->type) {
    case TPL_NONE:
        return false;
    case TPL_BOOL:
        return v->u.b;
    case TPL_INT:
        return v->u.i != 0;
    case TPL_FLOAT:
        return v->u.f != 0.0;
    case TPL_STRING:
        return v->u.str.len != 0;
    case TPL_LIST:
        return v->u.list.len != 0;
    case TPL_DICT:
        return v->u.dict.len != 0;
    }
    return false;
}

/* Host values may be arbitrarily nested; ours never exceed TPL_MAX_DEPTH, which keeps
 * every recursive walk over values (copy, free, str) within a bounded stack. */
static bool value_depth_ok(const tpl_value_t *v, int left)
{
    if (v->type != TPL_LIST && v->type != TPL_DICT)
        return true;
    if (left <= 0)
        return false;
    if (v->type == TPL_LIST) {
        for (size_t i = 0; i < v->u.list.len; i++)
            if (!value_depth_ok(&v->u.list.items[i], left - 1))
                return false;
    } else {
        for (size_t i = 0; i < v->u.dict.len; i++)
            if (!value_depth_ok(&v->u.dict.items[i].value, left - 1))
                return false;
    }
    return true;
}

/* ---------------------------------------------------------------- Python's str() */

/* Python's repr() of a float: the shortest digits that round-trip, positional notation
 * when the decimal exponent is in [-4, 16), scientific otherwise, ".0" for integers. */
static void format_float(double d, char *out, size_t n)
{
    if (isnan(d)) {
        snprintf(out, n, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, n, d < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    char digits[32];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *p;
    int exp10 = (*p == 'e') ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int decpt = exp10 + 1;
    char res[96];
    size_t r = 0;
    if (neg)
        res[r++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            res[r++] = '0';
            res[r++] = '.';
            for (int i = 0; i < -decpt; i++)
                res[r++] = '0';
            for (size_t i = 0; i < nd; i++)
                res[r++] = digits[i];
        } else if ((size_t)decpt >= nd) {
            for (size_t i = 0; i < nd; i++)
                res[r++] = digits[i];
            for (size_t i = nd; i < (size_t)decpt; i++)
                res[r++] = '0';
            res[r++] = '.';
            res[r++] = '0';
        } else {
            for (size_t i = 0; i < nd; i++) {
                if (i == (size_t)decpt)
                    res[r++] = '.';
                res[r++] = digits[i];
            }
        }
        res[r] = '\0';
    } else {
        res[r++] = digits[0];
        if (nd > 1) {
            res[r++] = '.';
            for (size_t i = 1; i < nd; i++)
                res[r++] = digits[i];
        }
        res[r] = '\0';
        int e = decpt - 1;
        snprintf(res + r, sizeof res - r, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    snprintf(out, n, "%s", res);
}

static bool repr_string(buf_t *b, const char *s, size_t len)
{
    bool has_sq = memchr(s, '\'', len) != NULL, has_dq = memchr(s, '"', len) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    buf_addc(b, q);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\\' || c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_add(b, esc, 2);
        } else if (c == '\n') {
            buf_adds(b, "\\n");
        } else if (c == '\r') {
            buf_adds(b, "\\r");
        } else if (c == '\t') {
            buf_adds(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            buf_adds(b, esc);
        } else if (c == 0xc2 && i + 1 < len &&
                   ((unsigned char)s[i + 1] <= 0xa0 || (unsigned char)s[i + 1] == 0xad)) {
            /* U+0080..U+00A0 and U+00AD are not printable for Python's repr. */
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i + 1]);
            buf_adds(b, esc);
            i++;
        } else {
            buf_addc(b, (char)c);
        }
    }
    return buf_addc(b, q);
}

static bool value_str(buf_t *b, const tpl_value_t *v, bool repr)
{
    char num[64];
    switch (v->type) {
    case TPL_NONE:
        return buf_adds(b, "None");
    case TPL_BOOL:
        return buf_adds(b, v->u.b ? "True" : "False");
    case TPL_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->u.i);
        return buf_adds(b, num);
    case TPL_FLOAT:
        format_float(v->u.f, num, sizeof num);
        return buf_adds(b, num);
    case TPL_STRING:
        if (repr)
            return repr_string(b, v->u.str.ptr, v->u.str.len);
        return buf_add(b, v->u.str.ptr, v->u.str.len);
    case TPL_LIST:
        buf_addc(b, '[');
        for (size_t i = 0; i < v->u.list.len; i++) {
            if (i)
                buf_adds(b, ", ");
            value_str(b, &v->u.list.items[i], true);
        }
        return buf_addc(b, ']');
    case TPL_DICT:
        buf_addc(b, '{');
        for (size_t i = 0; i < v->u.dict.len; i++) {
            if (i)
                buf_adds(b, ", ");
            repr_string(b, v->u.dict.items[i].key, v->u.dict.items[i].klen);
            buf_adds(b, ": ");
            value_str(b, &v->u.dict.items[i].value, true);
        }
        return buf_addc(b, '}');
    }
    return false;
}

bool tpl_value_to_string(const tpl_value_t *v, char **out, size_t *len)
{
    buf_t b = {0};
    tpl_value_t s;
    value_str(&b, v, false);
    if (b.fail || !buf_to_value(&b, &s)) {
        free(b.ptr);
        *out = NULL;
        return false;
    }
    *out = s.u.str.ptr;
    if (len)
        *len = s.u.str.len;
    return true;
}

/* ---------------------------------------------------------------- errors */

int tpl_error_format(const tpl_error_t *err, char *buf, size_t n)
{
    return snprintf(buf, n, "%s:%u:%u: %s", err->file, err->line, err->column, err->message);
}

typedef struct {
    const char *file;
    const char *src; /* normalised source: offsets in tokens and nodes point into it */
    size_t len;
    tpl_error_t *err;
    bool failed;
} ctx_t;

static bool vfail(ctx_t *c, size_t pos, const char *fmt, va_list ap)
{
    if (c->failed)
        return false;
    c->failed = true;
    tpl_error_t *e = c->err;
    snprintf(e->file, sizeof e->file, "%s", c->file ? c->file : "<template>");
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < pos && i < c->len; i++) {
        if (c->src[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)c->src[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    e->line = line;
    e->column = col;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    return false;
}

static bool fail(ctx_t *c, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(ctx_t *c, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, pos, fmt, ap);
    va_end(ap);
    return false;
}

/* ---------------------------------------------------------------- whitespace */

/* Length of the Python whitespace character (str.isspace, re's \s) at p, or 0. */
static size_t ws_at(const char *p, const char *end)
{
    unsigned char c = (unsigned char)p[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c < 0x80 || end - p < 2)
        return 0;
    unsigned char c1 = (unsigned char)p[1];
    if (c == 0xc2 && (c1 == 0x85 || c1 == 0xa0))
        return 2;
    if (end - p < 3)
        return 0;
    unsigned char c2 = (unsigned char)p[2];
    if (c == 0xe1 && c1 == 0x9a && c2 == 0x80) /* U+1680 */
        return 3;
    if (c == 0xe2 && c1 == 0x80 &&
        (c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf)) /* U+2000..200A, 2028/9, 202F */
        return 3;
    if (c == 0xe2 && c1 == 0x81 && c2 == 0x9f) /* U+205F */
        return 3;
    if (c == 0xe3 && c1 == 0x80 && c2 == 0x80) /* U+3000 */
        return 3;
    return 0;
}

/* Length of the whitespace character that ends just before p (start bounds it), or 0. */
static size_t ws_before(const char *start, const char *p)
{
    for (size_t k = 1; k <= 3 && (size_t)(p - start) >= k; k++) {
        size_t n = ws_at(p - k, p);
        if (n == k)
            return k;
    }
    return 0;
}

/* ---------------------------------------------------------------- lexer */

enum {
    TK_EOF,
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
};

enum {
    OP_ADD,
    OP_SUB,
    OP_DIV,
    OP_FLOORDIV,
    OP_MUL,
    OP_MOD,
    OP_POW,
    OP_TILDE,
    OP_LBRACKET,
    OP_RBRACKET,
    OP_LPAREN,
    OP_RPAREN,
    OP_LBRACE,
    OP_RBRACE,
    OP_EQ,
    OP_NE,
    OP_GT,
    OP_GE,
    OP_LT,
    OP_LE,
    OP_ASSIGN,
    OP_DOT,
    OP_COLON,
    OP_PIPE,
    OP_COMMA,
    OP_SEMICOLON,
    /* comparison operators that are words */
    OP_IN,
    OP_NOTIN,
};

/* Longest first, as Jinja's operator regex is sorted. */
static const struct {
    const char *text;
    int op;
} op_table[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW},   {"==", OP_EQ},      {"!=", OP_NE},      {">=", OP_GE},
    {"<=", OP_LE},       {"+", OP_ADD},    {"-", OP_SUB},      {"/", OP_DIV},      {"*", OP_MUL},
    {"%", OP_MOD},       {"~", OP_TILDE},  {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN},
    {")", OP_RPAREN},    {"{", OP_LBRACE}, {"}", OP_RBRACE},   {">", OP_GT},       {"<", OP_LT},
    {"=", OP_ASSIGN},    {".", OP_DOT},    {":", OP_COLON},    {"|", OP_PIPE},     {",", OP_COMMA},
    {";", OP_SEMICOLON},
};

static const char *op_text(int op)
{
    if (op == OP_IN)
        return "in";
    if (op == OP_NOTIN)
        return "not in";
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (op_table[i].op == op)
            return op_table[i].text;
    return "?";
}

typedef struct {
    int type;
    int op;
    size_t pos, len; /* source span; for TK_DATA the (stripped) text itself */
    char *str;       /* TK_STRING: decoded, malloc'd */
    size_t slen;
    int64_t i;
    double f;
} token_t;

typedef struct {
    ctx_t *c;
    token_t *toks;
    size_t n, cap;
} lexer_t;

static bool lex_push(lexer_t *lx, token_t t)
{
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        token_t *p = realloc(lx->toks, cap * sizeof *p);
        if (!p) {
            free(t.str);
            return fail(lx->c, t.pos, "out of memory");
        }
        lx->toks = p;
        lx->cap = cap;
    }
    lx->toks[lx->n++] = t;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || is_digit(c);
}

/* Matches (\d+_)*\d+ at i; returns the end, or i when nothing matches. */
static size_t scan_digits(const char *s, size_t i, size_t n)
{
    size_t j = i;
    if (j >= n || !is_digit(s[j]))
        return i;
    while (j < n && is_digit(s[j]))
        j++;
    while (j + 1 < n && s[j] == '_' && is_digit(s[j + 1])) {
        j++;
        while (j < n && is_digit(s[j]))
            j++;
    }
    return j;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Lexes a number the way Jinja's float_re then integer_re do. */
static bool lex_number(lexer_t *lx, size_t *pi)
{
    const char *s = lx->c->src;
    size_t n = lx->c->len, i = *pi;
    token_t t = {.pos = i};
    /* A float may not start right after '.', so that a.0.1 is two subscripts. */
    if (i == 0 || s[i - 1] != '.') {
        size_t a = scan_digits(s, i, n), end = 0;
        size_t b = (a < n && s[a] == '.') ? scan_digits(s, a + 1, n) : a + 1;
        bool frac = b > a + 1;
        size_t p = frac ? b : a;
        if (p < n && (s[p] == 'e' || s[p] == 'E')) {
            size_t q = p + 1;
            if (q < n && (s[q] == '+' || s[q] == '-'))
                q++;
            size_t e = scan_digits(s, q, n);
            if (e > q)
                end = e;
        }
        if (!end && frac)
            end = b;
        if (end) {
            char tmp[128];
            size_t k = 0;
            for (size_t j = i; j < end && k < sizeof tmp - 1; j++)
                if (s[j] != '_')
                    tmp[k++] = s[j];
            tmp[k] = '\0';
            t.type = TK_FLOAT;
            t.f = strtod(tmp, NULL);
            t.len = end - i;
            *pi = end;
            return lex_push(lx, t);
        }
    }
    int base = 10;
    size_t j = i;
    if (s[i] == '0' && i + 1 < n) {
        char x = (char)(s[i + 1] | 0x20);
        base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 10;
        if (base != 10) {
            /* (_?digit)+ must follow the prefix, or this is just the integer 0. */
            size_t k = i + 2;
            if (k < n && s[k] == '_')
                k++;
            int v = k < n ? hex_val(s[k]) : -1;
            if (v < 0 || v >= base)
                base = 10;
            else
                j = i + 2;
        }
    }
    uint64_t val = 0;
    bool overflow = false;
    if (base == 10 && s[i] == '0') {
        /* 0(_?0)* */
        j = i + 1;
        while (j < n && (s[j] == '0' || (s[j] == '_' && j + 1 < n && s[j + 1] == '0')))
            j++;
    } else {
        if (base == 10)
            j = i;
        while (j < n) {
            size_t k = j;
            if (s[k] == '_' && k > i && k + 1 < n)
                k++;
            int v = hex_val(s[k]);
            if (v < 0 || v >= base)
                break;
            if (val > (UINT64_MAX - (uint64_t)v) / (uint64_t)base)
                overflow = true;
            val = val * (uint64_t)base + (uint64_t)v;
            j = k + 1;
        }
    }
    if (overflow || val > (uint64_t)INT64_MAX)
        return fail(lx->c, i, "integer literal too large");
    t.type = TK_INT;
    t.i = (int64_t)val;
    t.len = j - i;
    *pi = j;
    return lex_push(lx, t);
}

static bool utf8_put(buf_t *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        return buf_add(b, u, 1);
    }
    if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        return buf_add(b, u, 2);
    }
    if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        return buf_add(b, u, 3);
    }
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    return buf_add(b, u, 4);
}

/* Decodes a string literal as Python's unicode-escape does (Jinja's own decoding). */
static bool lex_string(lexer_t *lx, size_t *pi)
{
    const char *s = lx->c->src;
    size_t n = lx->c->len, i = *pi, j = i + 1;
    char q = s[i];
    buf_t b = {0};
    while (j < n && s[j] != q) {
        if (s[j] != '\\') {
            buf_addc(&b, s[j++]);
            continue;
        }
        if (j + 1 >= n)
            break;
        size_t esc = j;
        char e = s[j + 1];
        j += 2;
        static const char simple_from[] = "\\'\"abfnrtv";
        static const char simple_to[] = "\\'\"\a\b\f\n\r\t\v";
        const char *sp = strchr(simple_from, e);
        if (e && sp) {
            buf_addc(&b, simple_to[sp - simple_from]);
        } else if (e == '\n') {
            /* a backslash-newline is a line continuation */
        } else if (e >= '0' && e <= '7') {
            uint32_t cp = (uint32_t)(e - '0');
            for (int k = 0; k < 2 && j < n && s[j] >= '0' && s[j] <= '7'; k++)
                cp = cp * 8 + (uint32_t)(s[j++] - '0');
            utf8_put(&b, cp);
        } else if (e == 'x' || e == 'u' || e == 'U') {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < digits; k++) {
                int v = j < n ? hex_val(s[j]) : -1;
                if (v < 0) {
                    free(b.ptr);
                    return fail(lx->c, esc, "truncated \\%c escape in string", e);
                }
                cp = cp * 16 + (uint32_t)v;
                j++;
            }
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                free(b.ptr);
                return fail(lx->c, esc, "invalid \\%c escape in string", e);
            }
            utf8_put(&b, cp);
        } else if (e == 'N') {
            free(b.ptr);
            return fail(lx->c, esc, "\\N{...} escapes are not supported");
        } else {
            /* Python keeps unknown escapes, backslash included. */
            buf_addc(&b, '\\');
            buf_addc(&b, e);
        }
    }
    if (j >= n) {
        free(b.ptr);
        return fail(lx->c, i, "unterminated string");
    }
    if (b.fail) {
        free(b.ptr);
        return fail(lx->c, i, b.fail == BUF_OOM ? "out of memory" : "string literal too long");
    }
    tpl_value_t v;
    if (!buf_to_value(&b, &v)) {
        free(b.ptr);
        return fail(lx->c, i, "out of memory");
    }
    token_t t = {
        .type = TK_STRING, .pos = i, .len = j + 1 - i, .str = v.u.str.ptr, .slen = v.u.str.len};
    *pi = j + 1;
    return lex_push(lx, t);
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    size_t k;
    while (i < n && (k = ws_at(s + i, s + n)) > 0)
        i += k;
    return i;
}

/* Lexes the inside of {{ }} or {% %} starting at *pi, through the closing marker. */
static bool lex_tag(lexer_t *lx, size_t *pi, size_t open_pos, bool is_block)
{
    const char *s = lx->c->src;
    size_t n = lx->c->len, i = *pi;
    char stack[TPL_MAX_DEPTH];
    size_t depth = 0;
    const char end_ch = is_block ? '%' : '}';
    for (;;) {
        i = skip_ws(s, i, n);
        if (i >= n)
            return fail(lx->c, open_pos, "unterminated '%s' (missing '%s')", is_block ? "{%" : "{{",
                        is_block ? "%}" : "}}");
        /* The closing marker only counts with brackets balanced, as in Jinja, so that
         * {{ {'a': {'b': 1}} }} works. */
        if (depth == 0) {
            bool strip = false;
            size_t m = 0;
            if ((s[i] == '-' || (is_block && s[i] == '+')) && i + 2 < n && s[i + 1] == end_ch &&
                s[i + 2] == '}') {
                strip = s[i] == '-';
                m = 3;
            } else if (s[i] == end_ch && i + 1 < n && s[i + 1] == '}') {
                m = 2;
            }
            if (m) {
                token_t t = {.type = is_block ? TK_BLOCK_END : TK_VAR_END, .pos = i, .len = m};
                if (!lex_push(lx, t))
                    return false;
                i += m;
                if (strip)
                    i = skip_ws(s, i, n);
                *pi = i;
                return true;
            }
        }
        char ch = s[i];
        if (is_digit(ch)) {
            if (!lex_number(lx, &i))
                return false;
        } else if (is_name_start(ch)) {
            size_t j = i;
            while (j < n && is_name_char(s[j]))
                j++;
            token_t t = {.type = TK_NAME, .pos = i, .len = j - i};
            if (!lex_push(lx, t))
                return false;
            i = j;
        } else if (ch == '\'' || ch == '"') {
            if (!lex_string(lx, &i))
                return false;
        } else {
            size_t k;
            for (k = 0; k < sizeof op_table / sizeof op_table[0]; k++) {
                size_t l = strlen(op_table[k].text);
                if (i + l <= n && memcmp(s + i, op_table[k].text, l) == 0)
                    break;
            }
            if (k == sizeof op_table / sizeof op_table[0]) {
                if ((unsigned char)ch >= 0x20 && (unsigned char)ch < 0x7f)
                    return fail(lx->c, i, "unexpected character '%c'", ch);
                return fail(lx->c, i, "unexpected character 0x%02x", (unsigned char)ch);
            }
            int op = op_table[k].op;
            if (op == OP_LPAREN || op == OP_LBRACKET || op == OP_LBRACE) {
                if (depth == sizeof stack)
                    return fail(lx->c, i, "brackets nested too deeply (limit %d)", TPL_MAX_DEPTH);
                stack[depth++] = op == OP_LPAREN ? ')' : op == OP_LBRACKET ? ']' : '}';
            } else if (op == OP_RPAREN || op == OP_RBRACKET || op == OP_RBRACE) {
                if (depth == 0)
                    return fail(lx->c, i, "unexpected '%c'", ch);
                if (stack[depth - 1] != ch)
                    return fail(lx->c, i, "unexpected '%c', expected '%c'", ch, stack[depth - 1]);
                depth--;
            }
            token_t t = {.type = TK_OP, .op = op, .pos = i, .len = strlen(op_table[k].text)};
            if (!lex_push(lx, t))
                return false;
            i += t.len;
        }
    }
}

static bool lex(lexer_t *lx)
{
    const char *s = lx->c->src;
    size_t n = lx->c->len, i = 0;
    while (i < n) {
        /* Find the next {{, {% or {#. */
        size_t t = i;
        while (t + 1 < n &&
               !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
            t++;
        if (t + 1 >= n)
            t = n;
        size_t dstart = i, dend = t;
        char kind = t < n ? s[t + 1] : 0;
        char sign = (t + 2 < n) ? s[t + 2] : 0;
        bool has_sign = t < n && (sign == '-' || sign == '+');
        if (t < n && sign == '-') {
            size_t k;
            while (dend > dstart && (k = ws_before(s + dstart, s + dend)) > 0)
                dend -= k;
        }
        if (dend > dstart) {
            token_t d = {.type = TK_DATA, .pos = dstart, .len = dend - dstart};
            if (!lex_push(lx, d))
                return false;
        }
        if (t >= n)
            break;
        size_t body = t + 2 + (has_sign ? 1 : 0);
        if (kind == '#') {
            /* A comment ends at the first #}; a '-' right before it (inside the
             * comment) strips the whitespace that follows. */
            size_t j = body;
            while (j + 1 < n && !(s[j] == '#' && s[j + 1] == '}'))
                j++;
            if (j + 1 >= n)
                return fail(lx->c, t, "unterminated comment (missing '#}')");
            bool strip = j > body && s[j - 1] == '-';
            i = j + 2;
            if (strip)
                i = skip_ws(s, i, n);
            continue;
        }
        bool is_block = kind == '%';
        token_t b = {.type = is_block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, .pos = t, .len = body - t};
        if (!lex_push(lx, b))
            return false;
        i = body;
        if (!lex_tag(lx, &i, t, is_block))
            return false;
    }
    token_t e = {.type = TK_EOF, .pos = n};
    return lex_push(lx, e);
}

/* ---------------------------------------------------------------- tree */

enum {
    /* statements */
    N_BODY,     /* kids: statements */
    N_DATA,     /* pos/len: literal text in the source */
    N_OUTPUT,   /* kids[0]: expression */
    N_IF,       /* kids: cond, body, cond, body, ..., [else body] */
    N_FOR,      /* name: target; kids: iterable, body, [else body] */
    N_SET,      /* name; kids[0]: expression */
    N_SETBLOCK, /* name; kids[0]: body */
    N_DO,       /* kids[0]: expression */
    /* expressions */
    E_LIT,     /* lit */
    E_NAME,    /* name */
    E_ATTR,    /* name: attribute; kids[0]: base */
    E_ITEM,    /* kids: base, index */
    E_CALL,    /* kids: callee, args... */
    E_KWARG,   /* name; kids[0]: value (only inside calls, filters) */
    E_FILTER,  /* name; kids: operand, args... */
    E_TEST,    /* name; op: negated; kids[0]: operand */
    E_NEG,     /* kids[0] */
    E_POS,     /* kids[0] */
    E_NOT,     /* kids[0] */
    E_BIN,     /* op: OP_ADD...; kids: left, right */
    E_CONCAT,  /* kids: parts */
    E_AND,     /* kids: left, right */
    E_OR,      /* kids: left, right */
    E_CMP,     /* kids: first operand, then E_OPERAND each */
    E_OPERAND, /* op: comparison; kids[0]: right-hand side */
    E_LIST,    /* kids: items */
    E_DICT,    /* kids: key, value, key, value... */
    E_COND,    /* kids: then, cond, [else] */
};

typedef struct node node_t;
struct node {
    int kind;
    int op;
    int depth;  /* 1 + deepest kid */
    size_t pos; /* source offset reported in errors */
    size_t len; /* N_DATA: length of the text */
    char *name; /* NUL-terminated, malloc'd */
    tpl_value_t lit;
    node_t **kids;
    size_t nkids, kcap;
};

static void node_free(node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->name);
    tpl_value_free(&n->lit);
    free(n);
}

typedef struct {
    ctx_t *c;
    token_t *t;
    size_t i, n;
    int rdepth; /* parser recursion: nested expressions */
    int bdepth; /* nested blocks */
} parser_t;

static node_t *node_new(parser_t *p, int kind, size_t pos)
{
    node_t *n = calloc(1, sizeof *n);
    if (!n) {
        fail(p->c, pos, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->pos = pos;
    n->depth = 1;
    return n;
}

/* Adds kid to n, taking it over; frees it on failure. */
static bool node_add(parser_t *p, node_t *n, node_t *kid)
{
    if (!kid)
        return false;
    if (n->nkids == n->kcap) {
        size_t cap = n->kcap ? n->kcap * 2 : 4;
        node_t **k = realloc(n->kids, cap * sizeof *k);
        if (!k) {
            node_free(kid);
            return fail(p->c, n->pos, "out of memory");
        }
        n->kids = k;
        n->kcap = cap;
    }
    n->kids[n->nkids++] = kid;
    if (kid->depth + 1 > n->depth)
        n->depth = kid->depth + 1;
    if (n->kind >= E_LIT && n->depth > NODE_MAX_DEPTH)
        return fail(p->c, n->pos, "expression nested too deeply (limit %d)", NODE_MAX_DEPTH);
    return true;
}

static bool node_set_name(parser_t *p, node_t *n, const token_t *t)
{
    n->name = malloc(t->len + 1);
    if (!n->name)
        return fail(p->c, t->pos, "out of memory");
    memcpy(n->name, p->c->src + t->pos, t->len);
    n->name[t->len] = '\0';
    return true;
}

/* Builds a node of `kind` over kids a and b (b may be absent); frees them on failure. */
static node_t *node2(parser_t *p, int kind, int op, size_t pos, node_t *a, node_t *b)
{
    /* Every parse failure has recorded an error, so a NULL kid after one means "failed",
     * not "absent". */
    node_t *n = p->c->failed ? NULL : node_new(p, kind, pos);
    if (!n) {
        node_free(a);
        node_free(b);
        return NULL;
    }
    n->op = op;
    if (!node_add(p, n, a)) {
        node_free(b);
        node_free(n);
        return NULL;
    }
    if (b && !node_add(p, n, b)) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* ---------------------------------------------------------------- parser */

static const token_t *cur(parser_t *p)
{
    return &p->t[p->i];
}

static const token_t *peek(parser_t *p, size_t k)
{
    return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n - 1];
}

static void advance(parser_t *p)
{
    if (p->i + 1 < p->n)
        p->i++;
}

static bool tok_is_name(const parser_t *p, const token_t *t, const char *name)
{
    size_t l = strlen(name);
    return t->type == TK_NAME && t->len == l && memcmp(p->c->src + t->pos, name, l) == 0;
}

static bool tok_is_op(const token_t *t, int op)
{
    return t->type == TK_OP && t->op == op;
}

/* A short description of a token for "unexpected ..." messages. */
static void tok_describe(const parser_t *p, const token_t *t, char *out, size_t n)
{
    switch (t->type) {
    case TK_EOF:
        snprintf(out, n, "end of template");
        break;
    case TK_VAR_END:
        snprintf(out, n, "'}}'");
        break;
    case TK_BLOCK_END:
        snprintf(out, n, "'%%}'");
        break;
    case TK_STRING:
        snprintf(out, n, "string");
        break;
    case TK_INT:
    case TK_FLOAT:
        snprintf(out, n, "number '%.*s'", (int)(t->len > 40 ? 40 : t->len), p->c->src + t->pos);
        break;
    case TK_NAME:
        snprintf(out, n, "'%.*s'", (int)(t->len > 60 ? 60 : t->len), p->c->src + t->pos);
        break;
    case TK_OP:
        snprintf(out, n, "'%s'", op_text(t->op));
        break;
    default:
        snprintf(out, n, "text");
        break;
    }
}

static bool unexpected(parser_t *p, const char *expected)
{
    char d[96];
    tok_describe(p, cur(p), d, sizeof d);
    if (expected)
        return fail(p->c, cur(p)->pos, "expected %s, got %s", expected, d);
    return fail(p->c, cur(p)->pos, "unexpected %s", d);
}

static bool expect_op(parser_t *p, int op)
{
    if (!tok_is_op(cur(p), op)) {
        char e[16];
        snprintf(e, sizeof e, "'%s'", op_text(op));
        return unexpected(p, e);
    }
    advance(p);
    return true;
}

static const char *const keywords[] = {"and", "or", "not", "in", "is", "if", "else"};

static bool is_keyword(const parser_t *p, const token_t *t)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (tok_is_name(p, t, keywords[i]))
            return true;
    return false;
}

static const char *const known_filters[] = {"upper",   "lower", "trim",   "length",
                                            "default", "join",  "replace"};
static const char *const known_tests[] = {"defined", "undefined", "none",    "string",
                                          "number",  "mapping",   "boolean", "integer",
                                          "float",   "true",      "false"};

static node_t *parse_expr(parser_t *p);
static node_t *parse_or(parser_t *p);
static node_t *parse_unary(parser_t *p, bool with_filter);

static bool enter(parser_t *p)
{
    if (++p->rdepth > TPL_MAX_DEPTH)
        return fail(p->c, cur(p)->pos, "expression nested too deeply (limit %d)", TPL_MAX_DEPTH);
    return true;
}

/* Parses "(args)" into n's kids: positional first, then E_KWARG nodes. */
static bool parse_call_args(parser_t *p, node_t *n)
{
    advance(p); /* ( */
    bool seen_kw = false;
    while (!tok_is_op(cur(p), OP_RPAREN)) {
        const token_t *t = cur(p);
        if (tok_is_op(t, OP_MUL) || tok_is_op(t, OP_POW))
            return fail(p->c, t->pos, "'*args' and '**kwargs' in calls are not supported");
        if (t->type == TK_NAME && tok_is_op(peek(p, 1), OP_ASSIGN)) {
            node_t *kw = node_new(p, E_KWARG, t->pos);
            if (!kw || !node_set_name(p, kw, t)) {
                node_free(kw);
                return false;
            }
            for (size_t k = 1; k < n->nkids; k++)
                if (n->kids[k]->kind == E_KWARG && strcmp(n->kids[k]->name, kw->name) == 0) {
                    fail(p->c, t->pos, "duplicate keyword argument '%s'", kw->name);
                    node_free(kw);
                    return false;
                }
            advance(p);
            advance(p);
            if (!node_add(p, kw, parse_expr(p))) {
                node_free(kw);
                return false;
            }
            if (!node_add(p, n, kw))
                return false;
            seen_kw = true;
        } else {
            if (seen_kw)
                return fail(p->c, t->pos, "positional argument follows keyword argument");
            if (!node_add(p, n, parse_expr(p)))
                return false;
        }
        if (tok_is_op(cur(p), OP_COMMA)) {
            advance(p);
            continue;
        }
        if (!tok_is_op(cur(p), OP_RPAREN))
            return unexpected(p, "',' or ')'");
    }
    advance(p); /* ) */
    return true;
}

static bool name_in(const parser_t *p, const token_t *t, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tok_is_name(p, t, set[i]))
            return true;
    return false;
}

static node_t *parse_postfix(parser_t *p, node_t *node)
{
    for (;;) {
        const token_t *t = cur(p);
        if (tok_is_op(t, OP_DOT)) {
            advance(p);
            const token_t *a = cur(p);
            if (a->type == TK_NAME) {
                node_t *n = node2(p, E_ATTR, 0, a->pos, node, NULL);
                if (!n || !node_set_name(p, n, a)) {
                    node_free(n);
                    return NULL;
                }
                advance(p);
                node = n;
            } else if (a->type == TK_INT) {
                node_t *idx = node_new(p, E_LIT, a->pos);
                if (!idx) {
                    node_free(node);
                    return NULL;
                }
                idx->lit = tpl_value_int(a->i);
                advance(p);
                node = node2(p, E_ITEM, 0, t->pos, node, idx);
            } else {
                unexpected(p, "a name or number after '.'");
                node_free(node);
                return NULL;
            }
        } else if (tok_is_op(t, OP_LBRACKET)) {
            advance(p);
            node_t *idx = parse_expr(p);
            if (idx && (tok_is_op(cur(p), OP_COLON) || tok_is_op(cur(p), OP_COMMA))) {
                fail(p->c, cur(p)->pos, "slices and tuple subscripts are not supported");
                node_free(idx);
                idx = NULL;
            }
            if (idx && !expect_op(p, OP_RBRACKET)) {
                node_free(idx);
                idx = NULL;
            }
            if (!idx) {
                node_free(node);
                return NULL;
            }
            node = node2(p, E_ITEM, 0, t->pos, node, idx);
        } else if (tok_is_op(t, OP_LPAREN)) {
            node_t *n = node2(p, E_CALL, 0, node ? node->pos : t->pos, node, NULL);
            if (!n)
                return NULL;
            if (!parse_call_args(p, n)) {
                node_free(n);
                return NULL;
            }
            node = n;
        } else {
            return node;
        }
        if (!node)
            return NULL;
    }
}

static node_t *parse_filter_expr(parser_t *p, node_t *node)
{
    for (;;) {
        const token_t *t = cur(p);
        if (tok_is_op(t, OP_PIPE)) {
            advance(p);
            const token_t *f = cur(p);
            if (f->type != TK_NAME) {
                unexpected(p, "a filter name");
                node_free(node);
                return NULL;
            }
            if (!name_in(p, f, known_filters, sizeof known_filters / sizeof known_filters[0])) {
                fail(p->c, f->pos, "unknown filter '%.*s'", (int)(f->len > 60 ? 60 : f->len),
                     p->c->src + f->pos);
                node_free(node);
                return NULL;
            }
            node_t *n = node2(p, E_FILTER, 0, f->pos, node, NULL);
            if (!n || !node_set_name(p, n, f)) {
                node_free(n);
                return NULL;
            }
            advance(p);
            if (tok_is_op(cur(p), OP_LPAREN) && !parse_call_args(p, n)) {
                node_free(n);
                return NULL;
            }
            node = n;
        } else if (tok_is_name(p, t, "is")) {
            advance(p);
            bool neg = false;
            if (tok_is_name(p, cur(p), "not")) {
                neg = true;
                advance(p);
            }
            const token_t *f = cur(p);
            /* none, true and false are test names too, spelled as constants */
            if (f->type != TK_NAME) {
                unexpected(p, "a test name");
                node_free(node);
                return NULL;
            }
            if (!name_in(p, f, known_tests, sizeof known_tests / sizeof known_tests[0])) {
                fail(p->c, f->pos, "unknown test '%.*s'", (int)(f->len > 60 ? 60 : f->len),
                     p->c->src + f->pos);
                node_free(node);
                return NULL;
            }
            node_t *n = node2(p, E_TEST, neg, f->pos, node, NULL);
            if (!n || !node_set_name(p, n, f)) {
                node_free(n);
                return NULL;
            }
            advance(p);
            node = n;
            /* Jinja would take a following literal, name or bracket as the test's argument;
             * none of our tests takes one, so that is an error (and chaining is one there). */
            const token_t *a = cur(p);
            bool arg = a->type == TK_STRING || a->type == TK_INT || a->type == TK_FLOAT ||
                       tok_is_op(a, OP_LPAREN) || tok_is_op(a, OP_LBRACKET) ||
                       tok_is_op(a, OP_LBRACE) ||
                       (a->type == TK_NAME && !tok_is_name(p, a, "else") &&
                        !tok_is_name(p, a, "or") && !tok_is_name(p, a, "and"));
            if (arg) {
                if (tok_is_name(p, a, "is"))
                    fail(p->c, a->pos, "tests cannot be chained with 'is'");
                else
                    fail(p->c, a->pos, "test '%s' takes no arguments", n->name);
                node_free(node);
                return NULL;
            }
        } else if (tok_is_op(t, OP_LPAREN)) {
            node_t *n = node2(p, E_CALL, 0, t->pos, node, NULL);
            if (!n)
                return NULL;
            if (!parse_call_args(p, n)) {
                node_free(n);
                return NULL;
            }
            node = n;
        } else {
            return node;
        }
    }
}

static node_t *parse_primary(parser_t *p)
{
    const token_t *t = cur(p);
    node_t *n = NULL;
    if (t->type == TK_NAME) {
        /* Jinja reads even keywords here as plain names ({{ not }} is an undefined
         * variable), so no keyword check. */
        n = node_new(p, E_LIT, t->pos);
        if (!n)
            return NULL;
        if (tok_is_name(p, t, "true") || tok_is_name(p, t, "True")) {
            n->lit = tpl_value_bool(true);
        } else if (tok_is_name(p, t, "false") || tok_is_name(p, t, "False")) {
            n->lit = tpl_value_bool(false);
        } else if (tok_is_name(p, t, "none") || tok_is_name(p, t, "None")) {
            n->lit = tpl_value_none();
        } else {
            n->kind = E_NAME;
            if (!node_set_name(p, n, t)) {
                node_free(n);
                return NULL;
            }
        }
        advance(p);
        return n;
    }
    if (t->type == TK_STRING) {
        /* Adjacent literals concatenate, as in Python. */
        buf_t b = {0};
        while (cur(p)->type == TK_STRING) {
            buf_add(&b, cur(p)->str, cur(p)->slen);
            advance(p);
        }
        n = node_new(p, E_LIT, t->pos);
        if (!n || b.fail || !buf_to_value(&b, &n->lit)) {
            free(b.ptr);
            node_free(n);
            if (!p->c->failed)
                fail(p->c, t->pos, "string literal too long");
            return NULL;
        }
        return n;
    }
    if (t->type == TK_INT || t->type == TK_FLOAT) {
        n = node_new(p, E_LIT, t->pos);
        if (!n)
            return NULL;
        n->lit = t->type == TK_INT ? tpl_value_int(t->i) : tpl_value_float(t->f);
        advance(p);
        return n;
    }
    if (tok_is_op(t, OP_LPAREN)) {
        advance(p);
        n = parse_expr(p);
        if (n && tok_is_op(cur(p), OP_COMMA)) {
            fail(p->c, cur(p)->pos, "tuples are not supported");
            node_free(n);
            return NULL;
        }
        if (n && !expect_op(p, OP_RPAREN)) {
            node_free(n);
            return NULL;
        }
        return n;
    }
    if (tok_is_op(t, OP_LBRACKET) || tok_is_op(t, OP_LBRACE)) {
        bool is_dict = tok_is_op(t, OP_LBRACE);
        int close = is_dict ? OP_RBRACE : OP_RBRACKET;
        n = node_new(p, is_dict ? E_DICT : E_LIST, t->pos);
        if (!n)
            return NULL;
        advance(p);
        while (!tok_is_op(cur(p), close)) {
            if (!node_add(p, n, parse_expr(p)))
                goto bad;
            if (is_dict) {
                if (!expect_op(p, OP_COLON) || !node_add(p, n, parse_expr(p)))
                    goto bad;
            }
            if (tok_is_op(cur(p), OP_COMMA)) {
                advance(p);
                continue;
            }
            if (!tok_is_op(cur(p), close)) {
                unexpected(p, is_dict ? "',' or '}'" : "',' or ']'");
                goto bad;
            }
        }
        advance(p);
        return n;
    bad:
        node_free(n);
        return NULL;
    }
    unexpected(p, NULL);
    return NULL;
}

static node_t *parse_unary(parser_t *p, bool with_filter)
{
    const token_t *t = cur(p);
    node_t *n;
    if (tok_is_op(t, OP_SUB) || tok_is_op(t, OP_ADD)) {
        if (!enter(p))
            return NULL;
        advance(p);
        n = node2(p, tok_is_op(t, OP_SUB) ? E_NEG : E_POS, 0, t->pos, parse_unary(p, false), NULL);
        p->rdepth--;
    } else {
        n = parse_primary(p);
    }
    if (n)
        n = parse_postfix(p, n);
    if (n && with_filter)
        n = parse_filter_expr(p, n);
    return n;
}

static node_t *parse_pow(parser_t *p)
{
    node_t *left = parse_unary(p, true);
    while (left && tok_is_op(cur(p), OP_POW)) {
        size_t pos = cur(p)->pos;
        advance(p);
        left = node2(p, E_BIN, OP_POW, pos, left, parse_unary(p, true));
    }
    return left;
}

static node_t *parse_math2(parser_t *p)
{
    node_t *left = parse_pow(p);
    while (left && (tok_is_op(cur(p), OP_MUL) || tok_is_op(cur(p), OP_DIV) ||
                    tok_is_op(cur(p), OP_FLOORDIV) || tok_is_op(cur(p), OP_MOD))) {
        int op = cur(p)->op;
        size_t pos = cur(p)->pos;
        advance(p);
        left = node2(p, E_BIN, op, pos, left, parse_pow(p));
    }
    return left;
}

static node_t *parse_concat(parser_t *p)
{
    node_t *first = parse_math2(p);
    if (!first || !tok_is_op(cur(p), OP_TILDE))
        return first;
    node_t *n = node2(p, E_CONCAT, 0, cur(p)->pos, first, NULL);
    while (n && tok_is_op(cur(p), OP_TILDE)) {
        advance(p);
        if (!node_add(p, n, parse_math2(p))) {
            node_free(n);
            return NULL;
        }
    }
    return n;
}

static node_t *parse_math1(parser_t *p)
{
    node_t *left = parse_concat(p);
    while (left && (tok_is_op(cur(p), OP_ADD) || tok_is_op(cur(p), OP_SUB))) {
        int op = cur(p)->op;
        size_t pos = cur(p)->pos;
        advance(p);
        left = node2(p, E_BIN, op, pos, left, parse_concat(p));
    }
    return left;
}

static node_t *parse_compare(parser_t *p)
{
    node_t *first = parse_math1(p);
    node_t *n = NULL;
    while (first) {
        const token_t *t = cur(p);
        int op;
        if (t->type == TK_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT ||
                                 t->op == OP_LE || t->op == OP_GT || t->op == OP_GE)) {
            op = t->op;
            advance(p);
        } else if (tok_is_name(p, t, "in")) {
            op = OP_IN;
            advance(p);
        } else if (tok_is_name(p, t, "not") && tok_is_name(p, peek(p, 1), "in")) {
            op = OP_NOTIN;
            advance(p);
            advance(p);
        } else {
            break;
        }
        if (!n) {
            n = node2(p, E_CMP, 0, t->pos, first, NULL);
            if (!n)
                return NULL;
        }
        node_t *operand = node2(p, E_OPERAND, op, t->pos, parse_math1(p), NULL);
        if (!node_add(p, n, operand)) {
            node_free(n);
            return NULL;
        }
    }
    return n ? n : first;
}

static node_t *parse_not(parser_t *p)
{
    if (tok_is_name(p, cur(p), "not")) {
        size_t pos = cur(p)->pos;
        if (!enter(p))
            return NULL;
        advance(p);
        node_t *n = node2(p, E_NOT, 0, pos, parse_not(p), NULL);
        p->rdepth--;
        return n;
    }
    return parse_compare(p);
}

static node_t *parse_and(parser_t *p)
{
    node_t *left = parse_not(p);
    while (left && tok_is_name(p, cur(p), "and")) {
        size_t pos = cur(p)->pos;
        advance(p);
        left = node2(p, E_AND, 0, pos, left, parse_not(p));
    }
    return left;
}

static node_t *parse_or(parser_t *p)
{
    node_t *left = parse_and(p);
    while (left && tok_is_name(p, cur(p), "or")) {
        size_t pos = cur(p)->pos;
        advance(p);
        left = node2(p, E_OR, 0, pos, left, parse_and(p));
    }
    return left;
}

/* expr := or ('if' or ('else' expr)?)* — Jinja's conditional expression. */
static node_t *parse_expr(parser_t *p)
{
    if (!enter(p))
        return NULL;
    node_t *n = parse_or(p);
    while (n && tok_is_name(p, cur(p), "if")) {
        size_t pos = cur(p)->pos;
        advance(p);
        node_t *c = node2(p, E_COND, 0, pos, n, parse_or(p));
        if (c && tok_is_name(p, cur(p), "else")) {
            advance(p);
            if (!node_add(p, c, parse_expr(p))) {
                node_free(c);
                c = NULL;
            }
        }
        n = c;
    }
    p->rdepth--;
    return n;
}

/* ---------------------------------------------------------------- statements */

static const char *const unsupported_tags[] = {
    "macro",    "endmacro",   "call",          "endcall",         "block",
    "endblock", "extends",    "include",       "import",          "from",
    "raw",      "endraw",     "filter",        "endfilter",       "with",
    "endwith",  "autoescape", "endautoescape", "break",           "continue",
    "print",    "trans",      "endtrans",      "pluralize",       "test",
    "endtest",  "snapshot",   "endsnapshot",   "materialization", "endmaterialization",
    "docs",     "enddocs",    "elseif",
};
static const char *const stray_tags[] = {"endif", "endfor", "else", "elif", "endset"};

static node_t *parse_body(parser_t *p, const char *const *ends, size_t nends, size_t open_pos,
                          const char *open_tag, int *which);

static bool expect_block_end(parser_t *p)
{
    if (cur(p)->type != TK_BLOCK_END)
        return unexpected(p, "end of tag '%}'");
    advance(p);
    return true;
}

static bool expect_name(parser_t *p, const char *name)
{
    if (!tok_is_name(p, cur(p), name)) {
        char e[40];
        snprintf(e, sizeof e, "'%s'", name);
        return unexpected(p, e);
    }
    advance(p);
    return true;
}

static bool block_enter(parser_t *p, size_t pos)
{
    if (++p->bdepth > TPL_MAX_DEPTH)
        return fail(p->c, pos, "blocks nested too deeply (limit %d)", TPL_MAX_DEPTH);
    return true;
}

/* {% if %} ... {% elif %} ... {% else %} ... {% endif %}; cur is after 'if'. */
static node_t *parse_if(parser_t *p, size_t open_pos)
{
    static const char *const ends[] = {"elif", "else", "endif"};
    node_t *n = node_new(p, N_IF, open_pos);
    if (!n || !block_enter(p, open_pos))
        goto bad;
    for (;;) {
        int which;
        if (!node_add(p, n, parse_expr(p)) || !expect_block_end(p))
            goto bad;
        if (!node_add(p, n, parse_body(p, ends, 3, open_pos, "if", &which)))
            goto bad;
        advance(p); /* the end tag's name */
        if (which == 0)
            continue;
        if (!expect_block_end(p))
            goto bad;
        if (which == 1) {
            if (!node_add(p, n, parse_body(p, ends + 2, 1, open_pos, "if", &which)))
                goto bad;
            advance(p);
            if (!expect_block_end(p))
                goto bad;
        }
        break;
    }
    p->bdepth--;
    return n;
bad:
    node_free(n);
    return NULL;
}

static node_t *parse_for(parser_t *p, size_t open_pos)
{
    static const char *const ends[] = {"else", "endfor"};
    node_t *n = node_new(p, N_FOR, open_pos);
    if (!n || !block_enter(p, open_pos))
        goto bad;
    const token_t *t = cur(p);
    if (t->type != TK_NAME || is_keyword(p, t)) {
        unexpected(p, "a loop variable name");
        goto bad;
    }
    if (!node_set_name(p, n, t))
        goto bad;
    advance(p);
    if (tok_is_op(cur(p), OP_COMMA)) {
        fail(p->c, cur(p)->pos, "unpacking several loop variables is not supported");
        goto bad;
    }
    if (!expect_name(p, "in") || !node_add(p, n, parse_or(p)))
        goto bad;
    if (tok_is_name(p, cur(p), "if") || tok_is_name(p, cur(p), "recursive")) {
        fail(p->c, cur(p)->pos, "'%s' in for loops is not supported",
             tok_is_name(p, cur(p), "if") ? "if" : "recursive");
        goto bad;
    }
    if (!expect_block_end(p))
        goto bad;
    int which;
    if (!node_add(p, n, parse_body(p, ends, 2, open_pos, "for", &which)))
        goto bad;
    advance(p);
    if (!expect_block_end(p))
        goto bad;
    if (which == 0) {
        if (!node_add(p, n, parse_body(p, ends + 1, 1, open_pos, "for", &which)))
            goto bad;
        advance(p);
        if (!expect_block_end(p))
            goto bad;
    }
    p->bdepth--;
    return n;
bad:
    node_free(n);
    return NULL;
}

static node_t *parse_set(parser_t *p, size_t open_pos)
{
    static const char *const ends[] = {"endset"};
    const token_t *t = cur(p);
    if (t->type != TK_NAME || is_keyword(p, t)) {
        unexpected(p, "a variable name");
        return NULL;
    }
    node_t *n = node_new(p, N_SET, open_pos);
    if (!n || !node_set_name(p, n, t))
        goto bad;
    advance(p);
    if (tok_is_op(cur(p), OP_ASSIGN)) {
        advance(p);
        if (!node_add(p, n, parse_expr(p)))
            goto bad;
        if (tok_is_op(cur(p), OP_COMMA)) {
            fail(p->c, cur(p)->pos, "tuples are not supported");
            goto bad;
        }
        if (!expect_block_end(p))
            goto bad;
        return n;
    }
    if (cur(p)->type == TK_BLOCK_END) {
        int which;
        n->kind = N_SETBLOCK;
        advance(p);
        if (!block_enter(p, open_pos) ||
            !node_add(p, n, parse_body(p, ends, 1, open_pos, "set", &which)))
            goto bad;
        advance(p);
        if (!expect_block_end(p))
            goto bad;
        p->bdepth--;
        return n;
    }
    if (tok_is_op(cur(p), OP_COMMA) || tok_is_op(cur(p), OP_DOT))
        fail(p->c, cur(p)->pos, "only '{%% set name = value %%}' is supported");
    else
        unexpected(p, "'='");
bad:
    node_free(n);
    return NULL;
}

/* Parses statements until one of `ends` (a tag name) or the end of the template. On an
 * end tag, returns with cur on its name and *which set to its index; *which is -1 at the
 * end of the template, which is an error when ends were expected. */
static node_t *parse_body(parser_t *p, const char *const *ends, size_t nends, size_t open_pos,
                          const char *open_tag, int *which)
{
    node_t *body = node_new(p, N_BODY, cur(p)->pos);
    if (!body)
        return NULL;
    *which = -1;
    for (;;) {
        const token_t *t = cur(p);
        node_t *st = NULL;
        if (t->type == TK_EOF) {
            if (nends) {
                fail(p->c, open_pos, "unclosed '{%% %s %%}' (missing '{%% %s %%}')", open_tag,
                     ends[nends - 1]);
                node_free(body);
                return NULL;
            }
            return body;
        }
        if (t->type == TK_DATA) {
            st = node_new(p, N_DATA, t->pos);
            if (st)
                st->len = t->len;
            advance(p);
        } else if (t->type == TK_VAR_BEGIN) {
            advance(p);
            if (cur(p)->type == TK_VAR_END) {
                unexpected(p, "an expression");
                node_free(body);
                return NULL;
            }
            st = node2(p, N_OUTPUT, 0, t->pos, parse_expr(p), NULL);
            if (st && cur(p)->type != TK_VAR_END) {
                unexpected(p, "end of expression '}}'");
                node_free(st);
                st = NULL;
            }
            advance(p);
        } else if (t->type == TK_BLOCK_BEGIN) {
            size_t tag_pos = t->pos;
            advance(p);
            const token_t *nm = cur(p);
            if (nm->type != TK_NAME) {
                unexpected(p, "a tag name");
                node_free(body);
                return NULL;
            }
            for (size_t k = 0; k < nends; k++) {
                if (tok_is_name(p, nm, ends[k])) {
                    *which = (int)k;
                    return body;
                }
            }
            advance(p);
            if (tok_is_name(p, nm, "if")) {
                st = parse_if(p, tag_pos);
            } else if (tok_is_name(p, nm, "for")) {
                st = parse_for(p, tag_pos);
            } else if (tok_is_name(p, nm, "set")) {
                st = parse_set(p, tag_pos);
            } else if (tok_is_name(p, nm, "do")) {
                st = node2(p, N_DO, 0, tag_pos, parse_expr(p), NULL);
                if (st && !expect_block_end(p)) {
                    node_free(st);
                    st = NULL;
                }
            } else {
                int l = (int)(nm->len > 60 ? 60 : nm->len);
                const char *s = p->c->src + nm->pos;
                if (name_in(p, nm, stray_tags, sizeof stray_tags / sizeof stray_tags[0]))
                    fail(p->c, nm->pos, "unexpected '{%% %.*s %%}' without a matching opening tag",
                         l, s);
                else if (name_in(p, nm, unsupported_tags,
                                 sizeof unsupported_tags / sizeof unsupported_tags[0]))
                    fail(p->c, nm->pos, "unsupported tag '%.*s'", l, s);
                else
                    fail(p->c, nm->pos, "unknown tag '%.*s'", l, s);
            }
        } else {
            unexpected(p, NULL);
        }
        if (!node_add(p, body, st)) {
            node_free(body);
            return NULL;
        }
    }
}

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    ctx_t *c;
    const tpl_host_t *host;
    buf_t out;
    tpl_value_t *scopes; /* dicts; [0] holds the template's top-level sets */
    size_t nscopes, scap;
    uint64_t steps;
    uint64_t max_steps; /* the host's budget, at most TPL_MAX_STEPS */
    size_t max_output;  /* the host's limit on any string, at most TPL_MAX_OUTPUT */
} render_t;

static bool eval(render_t *r, const node_t *n, tpl_value_t *out);

static bool charge(render_t *r, uint64_t units, size_t pos)
{
    r->steps += units;
    if (r->steps > r->max_steps)
        return fail(r->c, pos, "template exceeds its evaluation budget (%llu steps)",
                    (unsigned long long)r->max_steps);
    return true;
}

static bool too_big(render_t *r, size_t pos)
{
    return fail(r->c, pos, "string or output too large (limit %zu bytes)", r->max_output);
}

/* An empty buffer that holds at most the host's limit. */
static buf_t render_buf(const render_t *r)
{
    return (buf_t){.limit = r->max_output};
}

static bool buf_check(render_t *r, const buf_t *b, size_t pos)
{
    if (b->fail == BUF_OOM)
        return fail(r->c, pos, "out of memory");
    if (b->fail == BUF_TOO_BIG)
        return too_big(r, pos);
    return true;
}

static bool copy_value(render_t *r, tpl_value_t *dst, const tpl_value_t *src, size_t pos)
{
    uint64_t count = 0;
    if (!value_copy_counted(dst, src, &count))
        return fail(r->c, pos, "out of memory");
    if (!charge(r, count, pos)) {
        tpl_value_free(dst);
        return false;
    }
    return true;
}

/* Converts v with str() into a new string value. */
static bool to_string_value(render_t *r, const tpl_value_t *v, tpl_value_t *out, size_t pos)
{
    buf_t b = render_buf(r);
    value_str(&b, v, false);
    bool ok = buf_check(r, &b, pos) && charge(r, b.len / 16, pos) &&
              (buf_to_value(&b, out) || fail(r->c, pos, "out of memory"));
    free(b.ptr);
    return ok;
}

static bool scope_push(render_t *r, size_t pos)
{
    if (r->nscopes == r->scap) {
        size_t cap = r->scap ? r->scap * 2 : 8;
        tpl_value_t *s = realloc(r->scopes, cap * sizeof *s);
        if (!s)
            return fail(r->c, pos, "out of memory");
        r->scopes = s;
        r->scap = cap;
    }
    r->scopes[r->nscopes++] = tpl_value_dict();
    return true;
}

static void scope_pop(render_t *r)
{
    tpl_value_free(&r->scopes[--r->nscopes]);
}

static const tpl_value_t *scope_find(const render_t *r, const char *name)
{
    for (size_t i = r->nscopes; i-- > 0;) {
        tpl_entry_t *e = dict_find(&r->scopes[i], name, strlen(name));
        if (e)
            return &e->value;
    }
    return NULL;
}

static bool scope_set(render_t *r, const char *name, tpl_value_t *v, size_t pos)
{
    if (!dict_setn(&r->scopes[r->nscopes - 1], name, strlen(name), v))
        return fail(r->c, pos, "out of memory");
    return true;
}

static bool host_value_ok(render_t *r, tpl_value_t *v, size_t pos)
{
    if (value_depth_ok(v, TPL_MAX_DEPTH))
        return true;
    tpl_value_free(v);
    return fail(r->c, pos, "host value nested too deeply (limit %d)", TPL_MAX_DEPTH);
}

static bool is_path(const node_t *n)
{
    return n->kind == E_NAME || n->kind == E_ATTR || n->kind == E_ITEM;
}

/* Resolves a name, attribute or subscript to a borrowed pointer, without copying the
 * containers on the way. *ref points into a scope or into *holder, which the caller frees.
 * With soft, a missing last step yields *ref == NULL instead of an error (for `default`
 * and `is defined`); a missing base is an error either way, as in Jinja. */
static bool eval_path(render_t *r, const node_t *n, tpl_value_t *holder, const tpl_value_t **ref,
                      bool soft)
{
    *ref = NULL;
    if (!charge(r, 1, n->pos))
        return false;
    if (n->kind == E_NAME) {
        const tpl_value_t *v = scope_find(r, n->name);
        if (v) {
            *ref = v;
            return true;
        }
        if (r->host && r->host->lookup && r->host->lookup(r->host->ud, n->name, holder)) {
            if (!host_value_ok(r, holder, n->pos))
                return false;
            *ref = holder;
            return true;
        }
        tpl_value_free(holder);
        if (soft)
            return true;
        return fail(r->c, n->pos, "undefined variable '%s'", n->name);
    }
    if (n->kind == E_ATTR || n->kind == E_ITEM) {
        const tpl_value_t *base;
        if (!eval_path(r, n->kids[0], holder, &base, false))
            return false;
        if (n->kind == E_ATTR) {
            if (base->type == TPL_DICT) {
                tpl_entry_t *e = dict_find(base, n->name, strlen(n->name));
                if (e) {
                    *ref = &e->value;
                    return true;
                }
            }
            if (soft)
                return true;
            return fail(r->c, n->pos, "%s has no attribute '%s'", tpl_type_name(base->type),
                        n->name);
        }
        tpl_value_t idx;
        if (!eval(r, n->kids[1], &idx))
            return false;
        bool ok = true;
        if (base->type == TPL_LIST && (idx.type == TPL_INT || idx.type == TPL_BOOL)) {
            int64_t i = idx.type == TPL_INT ? idx.u.i : idx.u.b;
            int64_t len = (int64_t)base->u.list.len;
            if (i < 0)
                i += len;
            if (i >= 0 && i < len) {
                *ref = &base->u.list.items[i];
            } else if (!soft) {
                ok = fail(r->c, n->kids[1]->pos, "list index out of range");
            }
        } else if (base->type == TPL_DICT && idx.type == TPL_STRING) {
            tpl_entry_t *e = dict_find(base, idx.u.str.ptr, idx.u.str.len);
            if (e) {
                *ref = &e->value;
            } else if (!soft) {
                ok = fail(r->c, n->kids[1]->pos, "dict has no key '%.*s'",
                          (int)(idx.u.str.len > 80 ? 80 : idx.u.str.len), idx.u.str.ptr);
            }
        } else {
            ok = fail(r->c, n->kids[1]->pos, "cannot subscript %s with %s",
                      tpl_type_name(base->type), tpl_type_name(idx.type));
        }
        tpl_value_free(&idx);
        return ok;
    }
    if (!eval(r, n, holder))
        return false;
    *ref = holder;
    return true;
}

/* Evaluated call or filter arguments. */
typedef struct {
    tpl_value_t *args;
    size_t nargs;
    tpl_kwarg_t *kw;
    size_t nkw;
    const node_t *const *argnodes; /* kids[first...] for positions in errors */
} args_t;

static void args_free(args_t *a)
{
    for (size_t i = 0; i < a->nargs; i++)
        tpl_value_free(&a->args[i]);
    for (size_t i = 0; i < a->nkw; i++)
        tpl_value_free(&a->kw[i].value);
    free(a->args);
    free(a->kw);
    memset(a, 0, sizeof *a);
}

static bool eval_args(render_t *r, const node_t *n, size_t first, args_t *a)
{
    memset(a, 0, sizeof *a);
    size_t count = n->nkids - first;
    if (count == 0)
        return true;
    a->args = calloc(count, sizeof *a->args);
    a->kw = calloc(count, sizeof *a->kw);
    if (!a->args || !a->kw) {
        args_free(a);
        return fail(r->c, n->pos, "out of memory");
    }
    for (size_t i = first; i < n->nkids; i++) {
        const node_t *k = n->kids[i];
        if (k->kind == E_KWARG) {
            a->kw[a->nkw].name = k->name;
            if (!eval(r, k->kids[0], &a->kw[a->nkw].value)) {
                args_free(a);
                return false;
            }
            a->nkw++;
        } else {
            if (!eval(r, k, &a->args[a->nargs])) {
                args_free(a);
                return false;
            }
            a->nargs++;
        }
    }
    return true;
}

/* Binds positional and keyword arguments to named parameters, like a Python signature. */
static bool bind_args(render_t *r, const node_t *n, const char *what, const args_t *a,
                      const char *const *names, size_t nnames, const tpl_value_t **out)
{
    for (size_t i = 0; i < nnames; i++)
        out[i] = NULL;
    if (a->nargs > nnames)
        return fail(r->c, n->pos, "%s takes at most %zu argument%s (%zu given)", what, nnames,
                    nnames == 1 ? "" : "s", a->nargs);
    for (size_t i = 0; i < a->nargs; i++)
        out[i] = &a->args[i];
    for (size_t i = 0; i < a->nkw; i++) {
        size_t k;
        for (k = 0; k < nnames; k++)
            if (strcmp(names[k], a->kw[i].name) == 0)
                break;
        if (k == nnames)
            return fail(r->c, n->pos, "%s got an unexpected keyword argument '%s'", what,
                        a->kw[i].name);
        if (out[k])
            return fail(r->c, n->pos, "%s got multiple values for argument '%s'", what, names[k]);
        out[k] = &a->kw[i].value;
    }
    return true;
}

static bool as_int(const tpl_value_t *v, int64_t *out)
{
    if (v->type == TPL_INT) {
        *out = v->u.i;
        return true;
    }
    if (v->type == TPL_BOOL) {
        *out = v->u.b;
        return true;
    }
    return false;
}

static bool is_number(const tpl_value_t *v)
{
    return v->type == TPL_INT || v->type == TPL_BOOL || v->type == TPL_FLOAT;
}

static double as_double(const tpl_value_t *v)
{
    return v->type == TPL_FLOAT ? v->u.f : v->type == TPL_INT ? (double)v->u.i : (double)v->u.b;
}

/* Builtins tried when the host does not know a function: range() and dict(). */
static bool call_builtin(render_t *r, const node_t *n, const char *name, const args_t *a,
                         tpl_value_t *out, bool *known)
{
    *known = true;
    if (strcmp(name, "range") == 0) {
        int64_t v[3] = {0, 0, 1};
        if (a->nkw || a->nargs < 1 || a->nargs > 3)
            return fail(r->c, n->pos, "range() takes 1 to 3 positional arguments");
        for (size_t i = 0; i < a->nargs; i++)
            if (!as_int(&a->args[i], &v[i]))
                return fail(r->c, n->pos, "range() needs integers, got %s",
                            tpl_type_name(a->args[i].type));
        int64_t start = a->nargs == 1 ? 0 : v[0], stop = a->nargs == 1 ? v[0] : v[1];
        int64_t step = a->nargs == 3 ? v[2] : 1;
        if (step == 0)
            return fail(r->c, n->pos, "range() step must not be zero");
        uint64_t count = 0;
        if (step > 0 && start < stop)
            count = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
        else if (step < 0 && start > stop)
            count = ((uint64_t)start - (uint64_t)stop - 1) / (0 - (uint64_t)step) + 1;
        if (!charge(r, count, n->pos))
            return false;
        *out = tpl_value_list();
        int64_t x = start;
        for (uint64_t i = 0; i < count; i++) {
            tpl_value_t item = tpl_value_int(x);
            if (!tpl_value_list_push(out, &item)) {
                tpl_value_free(out);
                return fail(r->c, n->pos, "out of memory");
            }
            x = (int64_t)((uint64_t)x + (uint64_t)step);
        }
        return true;
    }
    if (strcmp(name, "dict") == 0) {
        if (a->nargs)
            return fail(r->c, n->pos, "dict() takes keyword arguments only");
        *out = tpl_value_dict();
        for (size_t i = 0; i < a->nkw; i++) {
            tpl_value_t v;
            if (!copy_value(r, &v, &a->kw[i].value, n->pos) ||
                !value_depth_ok(&v, TPL_MAX_DEPTH - 1)) {
                tpl_value_free(&v);
                tpl_value_free(out);
                return r->c->failed || fail(r->c, n->pos, "value nested too deeply");
            }
            if (!tpl_value_dict_set(out, a->kw[i].name, &v)) {
                tpl_value_free(out);
                return fail(r->c, n->pos, "out of memory");
            }
        }
        return true;
    }
    *known = false;
    return true;
}

/* Spells a callee as a dotted name ("ref", "adapter.quote") when it is one and its root
 * is not a template variable; anything else is not callable. */
static bool callee_name(const render_t *r, const node_t *n, buf_t *b)
{
    if (n->kind == E_NAME) {
        if (scope_find(r, n->name))
            return false;
        return buf_adds(b, n->name);
    }
    if (n->kind == E_ATTR) {
        if (!callee_name(r, n->kids[0], b))
            return false;
        buf_addc(b, '.');
        return buf_adds(b, n->name);
    }
    return false;
}

static bool eval_call(render_t *r, const node_t *n, tpl_value_t *out)
{
    const node_t *callee = n->kids[0];
    /* Errors point at the start of the callee: "adapter" in adapter.quote(...). */
    const node_t *root = callee;
    while (root->kind == E_ATTR || root->kind == E_ITEM)
        root = root->kids[0];
    size_t at = root->pos;
    buf_t nb = render_buf(r);
    if (!callee_name(r, callee, &nb)) {
        free(nb.ptr);
        if (callee->kind == E_NAME)
            return fail(r->c, at, "'%s' is a %s, not a function", callee->name,
                        tpl_type_name(scope_find(r, callee->name)->type));
        return fail(r->c, at, "only named functions can be called");
    }
    if (nb.fail) {
        free(nb.ptr);
        return fail(r->c, at, "out of memory");
    }
    args_t a;
    if (!eval_args(r, n, 1, &a)) {
        free(nb.ptr);
        return false;
    }
    const char *name = nb.ptr;
    bool ok = true;
    int rc = TPL_CALL_UNKNOWN;
    memset(out, 0, sizeof *out);
    if (r->host && r->host->call) {
        char err[256] = "";
        rc = r->host->call(r->host->ud, name, a.args, a.nargs, a.kw, a.nkw, out, err, sizeof err);
        if (rc == TPL_CALL_OK) {
            ok = host_value_ok(r, out, at);
        } else {
            tpl_value_free(out);
            if (rc != TPL_CALL_UNKNOWN)
                ok = fail(r->c, at, "%s(): %s", name, err[0] ? err : "call failed");
        }
    }
    if (ok && rc == TPL_CALL_UNKNOWN) {
        bool known;
        ok = call_builtin(r, n, name, &a, out, &known);
        if (ok && !known) {
            tpl_value_t probe = tpl_value_none();
            if (callee->kind == E_NAME && r->host && r->host->lookup &&
                r->host->lookup(r->host->ud, name, &probe)) {
                ok =
                    fail(r->c, at, "'%s' is a %s, not a function", name, tpl_type_name(probe.type));
            } else {
                ok = fail(r->c, at, "unknown function '%s'", name);
            }
            tpl_value_free(&probe);
        }
    }
    args_free(&a);
    free(nb.ptr);
    return ok;
}

/* Number of UTF-8 code points, which is what Python's len() counts. */
static size_t utf8_len(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

static size_t utf8_next(const char *s, size_t n, size_t i)
{
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

/* Finds needle in hay (m > 0). Each candidate comparison is billed, so adversarial inputs
 * run into the evaluation budget instead of quadratic time. *ok is false when billing
 * failed (the error is set). */
static const char *find_bytes(render_t *r, const char *hay, size_t n, const char *needle, size_t m,
                              size_t pos, bool *ok)
{
    *ok = true;
    const char *p = hay, *end = hay + n;
    while ((size_t)(end - p) >= m) {
        p = memchr(p, needle[0], (size_t)(end - p) - m + 1);
        if (!p)
            return NULL;
        if (!charge(r, 1 + m / 16, pos)) {
            *ok = false;
            return NULL;
        }
        if (memcmp(p, needle, m) == 0)
            return p;
        p++;
    }
    return NULL;
}

static bool eval_filter(render_t *r, const node_t *n, tpl_value_t *out)
{
    const char *f = n->name;
    tpl_value_t holder = tpl_value_none(), val = tpl_value_none();
    const tpl_value_t *ref = NULL;
    bool soft = strcmp(f, "default") == 0;
    if (!eval_path(r, n->kids[0], &holder, &ref, soft && is_path(n->kids[0]))) {
        tpl_value_free(&holder);
        return false;
    }
    args_t a;
    if (!eval_args(r, n, 1, &a)) {
        tpl_value_free(&holder);
        return false;
    }
    bool ok = true;
    const tpl_value_t *p[3];
    buf_t b = render_buf(r);
    memset(out, 0, sizeof *out);
    if (soft) {
        static const char *const names[] = {"default_value", "boolean"};
        ok = bind_args(r, n, "default", &a, names, 2, p);
        if (ok) {
            bool use_default = !ref || (p[1] && tpl_value_truthy(p[1]) && !tpl_value_truthy(ref));
            if (use_default && p[0])
                ok = copy_value(r, out, p[0], n->pos);
            else if (use_default)
                ok = tpl_value_string(out, "", 0) || fail(r->c, n->pos, "out of memory");
            else
                ok = copy_value(r, out, ref, n->pos);
        }
    } else if (strcmp(f, "length") == 0) {
        ok = bind_args(r, n, "length", &a, NULL, 0, p);
        if (ok && ref->type == TPL_STRING)
            *out = tpl_value_int((int64_t)utf8_len(ref->u.str.ptr, ref->u.str.len));
        else if (ok && ref->type == TPL_LIST)
            *out = tpl_value_int((int64_t)ref->u.list.len);
        else if (ok && ref->type == TPL_DICT)
            *out = tpl_value_int((int64_t)ref->u.dict.len);
        else if (ok)
            ok = fail(r->c, n->pos, "length of %s is undefined", tpl_type_name(ref->type));
    } else if (strcmp(f, "join") == 0) {
        static const char *const names[] = {"d"};
        ok = bind_args(r, n, "join", &a, names, 1, p);
        tpl_value_t sep = tpl_value_none();
        if (ok && p[0])
            ok = to_string_value(r, p[0], &sep, n->pos);
        if (ok) {
            const char *sp = sep.type == TPL_STRING ? sep.u.str.ptr : "";
            size_t sl = sep.type == TPL_STRING ? sep.u.str.len : 0;
            if (ref->type == TPL_LIST) {
                for (size_t i = 0; i < ref->u.list.len; i++) {
                    if (i)
                        buf_add(&b, sp, sl);
                    value_str(&b, &ref->u.list.items[i], false);
                }
            } else if (ref->type == TPL_DICT) {
                for (size_t i = 0; i < ref->u.dict.len; i++) {
                    if (i)
                        buf_add(&b, sp, sl);
                    buf_add(&b, ref->u.dict.items[i].key, ref->u.dict.items[i].klen);
                }
            } else if (ref->type == TPL_STRING) {
                const char *s = ref->u.str.ptr;
                size_t len = ref->u.str.len;
                for (size_t i = 0; i < len;) {
                    size_t j = utf8_next(s, len, i);
                    if (i)
                        buf_add(&b, sp, sl);
                    buf_add(&b, s + i, j - i);
                    i = j;
                }
            } else {
                ok = fail(r->c, n->pos, "cannot join a %s", tpl_type_name(ref->type));
            }
        }
        tpl_value_free(&sep);
        if (ok)
            ok = buf_check(r, &b, n->pos) && charge(r, b.len / 16, n->pos) &&
                 (buf_to_value(&b, out) || fail(r->c, n->pos, "out of memory"));
    } else {
        /* upper, lower, trim and replace work on str() of the value, as Jinja's do. */
        static const char *const names[] = {"old", "new", "count"};
        bool is_replace = strcmp(f, "replace") == 0;
        ok = bind_args(r, n, f, &a, names, is_replace ? 3 : 0, p);
        if (ok && is_replace && (!p[0] || !p[1]))
            ok = fail(r->c, n->pos, "replace needs the old and the new string");
        int64_t count = -1;
        if (ok && is_replace && p[2] && p[2]->type != TPL_NONE && !as_int(p[2], &count))
            ok = fail(r->c, n->pos, "replace count must be an integer");
        if (ok)
            ok = to_string_value(r, ref, &val, n->pos);
        if (ok && !is_replace) {
            char *s = val.u.str.ptr;
            size_t len = val.u.str.len;
            if (strcmp(f, "upper") == 0 || strcmp(f, "lower") == 0) {
                bool up = f[0] == 'u';
                for (size_t i = 0; i < len; i++) {
                    if (up && s[i] >= 'a' && s[i] <= 'z')
                        s[i] = (char)(s[i] - 32);
                    else if (!up && s[i] >= 'A' && s[i] <= 'Z')
                        s[i] = (char)(s[i] + 32);
                }
                *out = val;
                val = tpl_value_none();
            } else {
                size_t lo = 0, hi = len, k;
                while (lo < hi && (k = ws_at(s + lo, s + hi)) > 0)
                    lo += k;
                while (hi > lo && (k = ws_before(s + lo, s + hi)) > 0)
                    hi -= k;
                ok = tpl_value_string(out, s + lo, hi - lo) || fail(r->c, n->pos, "out of memory");
            }
        } else if (ok) {
            tpl_value_t olds = tpl_value_none(), news = tpl_value_none();
            ok = to_string_value(r, p[0], &olds, n->pos) && to_string_value(r, p[1], &news, n->pos);
            if (ok) {
                const char *s = val.u.str.ptr, *o = olds.u.str.ptr;
                size_t len = val.u.str.len, ol = olds.u.str.len;
                size_t i = 0;
                int64_t done = 0;
                if (ol == 0) {
                    /* Python inserts `new` around every character. */
                    while (count < 0 || done < count) {
                        buf_add(&b, news.u.str.ptr, news.u.str.len);
                        done++;
                        if (i >= len)
                            break;
                        size_t j = utf8_next(s, len, i);
                        buf_add(&b, s + i, j - i);
                        i = j;
                    }
                    buf_add(&b, s + i, len - i);
                } else {
                    while (i < len && (count < 0 || done < count)) {
                        bool found_ok;
                        const char *hit = find_bytes(r, s + i, len - i, o, ol, n->pos, &found_ok);
                        if (!found_ok) {
                            ok = false;
                            break;
                        }
                        if (!hit)
                            break;
                        buf_add(&b, s + i, (size_t)(hit - (s + i)));
                        buf_add(&b, news.u.str.ptr, news.u.str.len);
                        i = (size_t)(hit - s) + ol;
                        done++;
                        if (b.fail)
                            break;
                    }
                    buf_add(&b, s + i, len - i);
                }
                ok = ok && buf_check(r, &b, n->pos) && charge(r, b.len / 16, n->pos) &&
                     (buf_to_value(&b, out) || fail(r->c, n->pos, "out of memory"));
            }
            tpl_value_free(&olds);
            tpl_value_free(&news);
        }
    }
    free(b.ptr);
    tpl_value_free(&val);
    args_free(&a);
    tpl_value_free(&holder);
    return ok;
}

static bool eval_test(render_t *r, const node_t *n, tpl_value_t *out)
{
    tpl_value_t holder = tpl_value_none();
    const tpl_value_t *ref;
    const char *t = n->name;
    bool soft = strcmp(t, "defined") == 0 || strcmp(t, "undefined") == 0;
    if (!eval_path(r, n->kids[0], &holder, &ref, soft && is_path(n->kids[0]))) {
        tpl_value_free(&holder);
        return false;
    }
    bool res;
    if (soft)
        res = (ref != NULL) == (t[0] == 'd');
    else if (strcmp(t, "none") == 0)
        res = ref->type == TPL_NONE;
    else if (strcmp(t, "string") == 0)
        res = ref->type == TPL_STRING;
    else if (strcmp(t, "number") == 0)
        res = is_number(ref);
    else if (strcmp(t, "mapping") == 0)
        res = ref->type == TPL_DICT;
    else if (strcmp(t, "boolean") == 0)
        res = ref->type == TPL_BOOL;
    else if (strcmp(t, "integer") == 0)
        res = ref->type == TPL_INT;
    else if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0)
        res = ref->type == TPL_BOOL && ref->u.b == (t[0] == 't');
    else
        res = ref->type == TPL_FLOAT;
    tpl_value_free(&holder);
    *out = tpl_value_bool(n->op ? !res : res);
    return true;
}

static bool values_equal(const tpl_value_t *a, const tpl_value_t *b)
{
    if (is_number(a) && is_number(b)) {
        if (a->type != TPL_FLOAT && b->type != TPL_FLOAT) {
            int64_t x, y;
            (void)as_int(a, &x);
            (void)as_int(b, &y);
            return x == y;
        }
        return as_double(a) == as_double(b);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case TPL_NONE:
        return true;
    case TPL_STRING:
        return a->u.str.len == b->u.str.len &&
               memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case TPL_LIST:
        if (a->u.list.len != b->u.list.len)
            return false;
        for (size_t i = 0; i < a->u.list.len; i++)
            if (!values_equal(&a->u.list.items[i], &b->u.list.items[i]))
                return false;
        return true;
    case TPL_DICT:
        if (a->u.dict.len != b->u.dict.len)
            return false;
        for (size_t i = 0; i < a->u.dict.len; i++) {
            const tpl_entry_t *e = &a->u.dict.items[i];
            const tpl_entry_t *f = dict_find(b, e->key, e->klen);
            if (!f || !values_equal(&e->value, &f->value))
                return false;
        }
        return true;
    default:
        return false;
    }
}

/* Python ordering: numbers with numbers, strings with strings, lists item by item. */
static bool values_order(const tpl_value_t *a, const tpl_value_t *b, int *cmp)
{
    if (is_number(a) && is_number(b)) {
        if (a->type != TPL_FLOAT && b->type != TPL_FLOAT) {
            int64_t x, y;
            (void)as_int(a, &x);
            (void)as_int(b, &y);
            *cmp = (x > y) - (x < y);
            return true;
        }
        double x = as_double(a), y = as_double(b);
        if (isnan(x) || isnan(y)) {
            *cmp = 2; /* unordered: every comparison is false */
            return true;
        }
        *cmp = (x > y) - (x < y);
        return true;
    }
    if (a->type == TPL_STRING && b->type == TPL_STRING) {
        size_t m = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int c = memcmp(a->u.str.ptr, b->u.str.ptr, m);
        *cmp =
            c ? (c > 0) - (c < 0) : (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
        return true;
    }
    if (a->type == TPL_LIST && b->type == TPL_LIST) {
        size_t m = a->u.list.len < b->u.list.len ? a->u.list.len : b->u.list.len;
        for (size_t i = 0; i < m; i++)
            if (!values_equal(&a->u.list.items[i], &b->u.list.items[i]))
                return values_order(&a->u.list.items[i], &b->u.list.items[i], cmp);
        *cmp = (a->u.list.len > b->u.list.len) - (a->u.list.len < b->u.list.len);
        return true;
    }
    return false;
}

static bool compare(render_t *r, int op, const tpl_value_t *a, const tpl_value_t *b, size_t pos,
                    bool *res)
{
    if (op == OP_EQ || op == OP_NE) {
        *res = values_equal(a, b) == (op == OP_EQ);
        return true;
    }
    if (op == OP_IN || op == OP_NOTIN) {
        bool found = false;
        if (b->type == TPL_STRING) {
            if (a->type != TPL_STRING)
                return fail(r->c, pos, "'in <string>' needs a string on the left, not %s",
                            tpl_type_name(a->type));
            bool ok = true;
            found = a->u.str.len == 0 || find_bytes(r, b->u.str.ptr, b->u.str.len, a->u.str.ptr,
                                                    a->u.str.len, pos, &ok) != NULL;
            if (!ok || !charge(r, b->u.str.len / 16, pos))
                return false;
        } else if (b->type == TPL_LIST) {
            for (size_t i = 0; !found && i < b->u.list.len; i++)
                found = values_equal(a, &b->u.list.items[i]);
            if (!charge(r, b->u.list.len, pos))
                return false;
        } else if (b->type == TPL_DICT) {
            if (a->type == TPL_LIST || a->type == TPL_DICT)
                return fail(r->c, pos, "a %s cannot be a dict key", tpl_type_name(a->type));
            found = a->type == TPL_STRING && dict_find(b, a->u.str.ptr, a->u.str.len);
        } else {
            return fail(r->c, pos, "'in' needs a string, list or dict on the right, not %s",
                        tpl_type_name(b->type));
        }
        *res = found == (op == OP_IN);
        return true;
    }
    int c;
    if (!values_order(a, b, &c))
        return fail(r->c, pos, "'%s' is not supported between %s and %s", op_text(op),
                    tpl_type_name(a->type), tpl_type_name(b->type));
    switch (op) {
    case OP_LT:
        *res = c == -1;
        break;
    case OP_LE:
        *res = c == -1 || c == 0;
        break;
    case OP_GT:
        *res = c == 1;
        break;
    default:
        *res = c == 1 || c == 0;
        break;
    }
    return true;
}

/* 'ab' * 3 and [1] * 3, as in Python; a count below one gives an empty result. */
static bool repeat(render_t *r, const node_t *n, const tpl_value_t *seq, const tpl_value_t *count,
                   tpl_value_t *out)
{
    int64_t times = 0;
    (void)as_int(count, &times);
    if (times < 0)
        times = 0;
    if (seq->type == TPL_STRING) {
        /* The size is known up front: bill it, then fill by doubling what is already there
         * (log2(times) copies, not one per repetition, which '' * 10**12 made endless). */
        size_t len = seq->u.str.len;
        if (len && (uint64_t)times > r->max_output / len)
            return too_big(r, n->pos);
        size_t total = len ? len * (size_t)times : 0;
        if (!charge(r, total / 16, n->pos))
            return false;
        buf_t b = render_buf(r);
        if (!buf_reserve(&b, total))
            return buf_check(r, &b, n->pos);
        if (total) {
            memcpy(b.ptr, seq->u.str.ptr, len);
            for (size_t have = len; have < total;) {
                size_t k = have < total - have ? have : total - have;
                memcpy(b.ptr + have, b.ptr, k);
                have += k;
            }
        }
        b.len = total;
        b.ptr[total] = '\0';
        bool ok = buf_to_value(&b, out) || fail(r->c, n->pos, "out of memory");
        free(b.ptr);
        return ok;
    }
    *out = tpl_value_list();
    if (!seq->u.list.len)
        return true;
    if ((uint64_t)times > r->max_steps / seq->u.list.len)
        return charge(r, r->max_steps + 1u, n->pos);
    for (int64_t i = 0; i < times; i++) {
        for (size_t k = 0; k < seq->u.list.len; k++) {
            tpl_value_t item;
            if (!copy_value(r, &item, &seq->u.list.items[k], n->pos)) {
                tpl_value_free(out);
                return false;
            }
            if (!tpl_value_list_push(out, &item)) {
                tpl_value_free(out);
                return fail(r->c, n->pos, "out of memory");
            }
        }
    }
    return true;
}

static bool eval_binary(render_t *r, const node_t *n, const tpl_value_t *a, const tpl_value_t *b,
                        tpl_value_t *out)
{
    int op = n->op;
    memset(out, 0, sizeof *out);
    if (op == OP_ADD && ((a->type == TPL_STRING && b->type == TPL_STRING) ||
                         (a->type == TPL_LIST && b->type == TPL_LIST))) {
        if (a->type == TPL_STRING) {
            buf_t buf = render_buf(r);
            buf_add(&buf, a->u.str.ptr, a->u.str.len);
            buf_add(&buf, b->u.str.ptr, b->u.str.len);
            if (!buf_check(r, &buf, n->pos) || !charge(r, buf.len / 16, n->pos) ||
                !buf_to_value(&buf, out)) {
                free(buf.ptr);
                return r->c->failed || fail(r->c, n->pos, "out of memory");
            }
            return true;
        }
        tpl_value_t items[2];
        if (!copy_value(r, &items[0], a, n->pos))
            return false;
        if (!copy_value(r, &items[1], b, n->pos)) {
            tpl_value_free(&items[0]);
            return false;
        }
        bool ok = true;
        for (size_t i = 0; i < items[1].u.list.len && ok; i++) {
            ok = tpl_value_list_push(&items[0], &items[1].u.list.items[i]);
        }
        tpl_value_free(&items[1]);
        if (!ok) {
            tpl_value_free(&items[0]);
            return fail(r->c, n->pos, "out of memory");
        }
        *out = items[0];
        return true;
    }
    if (op == OP_MUL && (a->type == TPL_STRING || a->type == TPL_LIST) &&
        (b->type == TPL_INT || b->type == TPL_BOOL))
        return repeat(r, n, a, b, out);
    if (op == OP_MUL && (b->type == TPL_STRING || b->type == TPL_LIST) &&
        (a->type == TPL_INT || a->type == TPL_BOOL))
        return repeat(r, n, b, a, out);
    if (!is_number(a) || !is_number(b))
        return fail(r->c, n->pos, "unsupported operand types for %s: %s and %s", op_text(op),
                    tpl_type_name(a->type), tpl_type_name(b->type));
    bool ints = a->type != TPL_FLOAT && b->type != TPL_FLOAT;
    int64_t x = 0, y = 0, z;
    (void)as_int(a, &x);
    (void)as_int(b, &y);
    double dx = as_double(a), dy = as_double(b);
    switch (op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
        if (ints) {
            bool ovf = op == OP_ADD   ? __builtin_add_overflow(x, y, &z)
                       : op == OP_SUB ? __builtin_sub_overflow(x, y, &z)
                                      : __builtin_mul_overflow(x, y, &z);
            if (ovf)
                return fail(r->c, n->pos, "integer overflow");
            *out = tpl_value_int(z);
        } else {
            *out = tpl_value_float(op == OP_ADD ? dx + dy : op == OP_SUB ? dx - dy : dx * dy);
        }
        return true;
    case OP_DIV:
        if (dy == 0.0)
            return fail(r->c, n->pos, "division by zero");
        *out = tpl_value_float(dx / dy);
        return true;
    case OP_FLOORDIV:
    case OP_MOD:
        if ((ints && y == 0) || (!ints && dy == 0.0))
            return fail(r->c, n->pos, "division by zero");
        if (ints) {
            if (x == INT64_MIN && y == -1) {
                if (op == OP_FLOORDIV)
                    return fail(r->c, n->pos, "integer overflow");
                *out = tpl_value_int(0);
                return true;
            }
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q -= 1;
                m += y;
            }
            *out = tpl_value_int(op == OP_FLOORDIV ? q : m);
        } else {
            /* CPython's float_divmod, so that 7 // 0.1 is 69.0 as in Python. */
            double m = fmod(dx, dy), div = (dx - m) / dy, q;
            if (m != 0.0) {
                if ((dy < 0) != (m < 0)) {
                    m += dy;
                    div -= 1.0;
                }
            } else {
                m = copysign(0.0, dy);
            }
            if (div != 0.0) {
                q = floor(div);
                if (div - q > 0.5)
                    q += 1.0;
            } else {
                q = copysign(0.0, dx / dy);
            }
            *out = tpl_value_float(op == OP_FLOORDIV ? q : m);
        }
        return true;
    case OP_POW:
        if (ints && y >= 0) {
            int64_t res = 1, base = x;
            int64_t e = y;
            while (e > 0) {
                if ((e & 1) && __builtin_mul_overflow(res, base, &res))
                    return fail(r->c, n->pos, "integer overflow");
                e >>= 1;
                if (e > 0 && __builtin_mul_overflow(base, base, &base))
                    return fail(r->c, n->pos, "integer overflow");
            }
            *out = tpl_value_int(res);
        } else {
            if (dx == 0.0 && dy < 0)
                return fail(r->c, n->pos, "division by zero");
            double res = pow(dx, dy);
            if (isinf(res) && isfinite(dx) && isfinite(dy))
                return fail(r->c, n->pos, "float overflow");
            if (isnan(res) && !isnan(dx) && !isnan(dy))
                return fail(r->c, n->pos, "complex numbers are not supported");
            *out = tpl_value_float(res);
        }
        return true;
    default:
        return fail(r->c, n->pos, "unsupported operator");
    }
}

static bool eval(render_t *r, const node_t *n, tpl_value_t *out)
{
    memset(out, 0, sizeof *out);
    if (!charge(r, 1, n->pos))
        return false;
    switch (n->kind) {
    case E_LIT:
        return copy_value(r, out, &n->lit, n->pos);
    case E_NAME:
    case E_ATTR:
    case E_ITEM: {
        tpl_value_t holder = tpl_value_none();
        const tpl_value_t *ref;
        if (!eval_path(r, n, &holder, &ref, false)) {
            tpl_value_free(&holder);
            return false;
        }
        if (ref == &holder) {
            *out = holder;
            return true;
        }
        bool ok = copy_value(r, out, ref, n->pos);
        tpl_value_free(&holder);
        return ok;
    }
    case E_CALL:
        return eval_call(r, n, out);
    case E_FILTER:
        return eval_filter(r, n, out);
    case E_TEST:
        return eval_test(r, n, out);
    case E_NEG:
    case E_POS: {
        tpl_value_t v;
        if (!eval(r, n->kids[0], &v))
            return false;
        int64_t i;
        if (v.type == TPL_FLOAT) {
            *out = tpl_value_float(n->kind == E_NEG ? -v.u.f : v.u.f);
        } else if (as_int(&v, &i)) {
            if (n->kind == E_NEG && i == INT64_MIN)
                return fail(r->c, n->pos, "integer overflow");
            *out = tpl_value_int(n->kind == E_NEG ? -i : i);
        } else {
            tpl_type_t t = v.type;
            tpl_value_free(&v);
            return fail(r->c, n->pos, "bad operand type for unary %s: %s",
                        n->kind == E_NEG ? "-" : "+", tpl_type_name(t));
        }
        return true;
    }
    case E_NOT: {
        tpl_value_t v;
        if (!eval(r, n->kids[0], &v))
            return false;
        *out = tpl_value_bool(!tpl_value_truthy(&v));
        tpl_value_free(&v);
        return true;
    }
    case E_AND:
    case E_OR: {
        /* Python semantics: the result is one of the operands, not a bool. */
        if (!eval(r, n->kids[0], out))
            return false;
        if (tpl_value_truthy(out) == (n->kind == E_OR))
            return true;
        tpl_value_free(out);
        return eval(r, n->kids[1], out);
    }
    case E_BIN: {
        tpl_value_t a, b;
        if (!eval(r, n->kids[0], &a))
            return false;
        if (!eval(r, n->kids[1], &b)) {
            tpl_value_free(&a);
            return false;
        }
        bool ok = eval_binary(r, n, &a, &b, out);
        tpl_value_free(&a);
        tpl_value_free(&b);
        return ok;
    }
    case E_CONCAT: {
        buf_t b = render_buf(r);
        for (size_t i = 0; i < n->nkids; i++) {
            tpl_value_t v;
            if (!eval(r, n->kids[i], &v)) {
                free(b.ptr);
                return false;
            }
            value_str(&b, &v, false);
            tpl_value_free(&v);
            if (!buf_check(r, &b, n->pos)) {
                free(b.ptr);
                return false;
            }
        }
        if (!charge(r, b.len / 16, n->pos) || !buf_to_value(&b, out)) {
            free(b.ptr);
            return r->c->failed || fail(r->c, n->pos, "out of memory");
        }
        return true;
    }
    case E_CMP: {
        tpl_value_t left;
        if (!eval(r, n->kids[0], &left))
            return false;
        bool res = true;
        /* a < b < c means a < b and b < c, stopping at the first false. */
        for (size_t i = 1; i < n->nkids && res; i++) {
            const node_t *o = n->kids[i];
            tpl_value_t right;
            if (!eval(r, o->kids[0], &right)) {
                tpl_value_free(&left);
                return false;
            }
            bool ok = compare(r, o->op, &left, &right, o->pos, &res);
            tpl_value_free(&left);
            left = right;
            if (!ok) {
                tpl_value_free(&left);
                return false;
            }
        }
        tpl_value_free(&left);
        *out = tpl_value_bool(res);
        return true;
    }
    case E_LIST:
    case E_DICT: {
        *out = n->kind == E_LIST ? tpl_value_list() : tpl_value_dict();
        size_t stepsz = n->kind == E_LIST ? 1 : 2;
        for (size_t i = 0; i < n->nkids; i += stepsz) {
            tpl_value_t k = tpl_value_none(), v;
            if (n->kind == E_DICT) {
                if (!eval(r, n->kids[i], &k))
                    goto bad;
                if (k.type != TPL_STRING) {
                    fail(r->c, n->kids[i]->pos, "dict keys must be strings, not %s",
                         tpl_type_name(k.type));
                    tpl_value_free(&k);
                    goto bad;
                }
            }
            if (!eval(r, n->kids[i + stepsz - 1], &v)) {
                tpl_value_free(&k);
                goto bad;
            }
            if (!value_depth_ok(&v, TPL_MAX_DEPTH - 1)) {
                fail(r->c, n->pos, "value nested too deeply (limit %d)", TPL_MAX_DEPTH);
                tpl_value_free(&k);
                tpl_value_free(&v);
                goto bad;
            }
            bool ok = n->kind == E_LIST ? tpl_value_list_push(out, &v)
                                        : dict_setn(out, k.u.str.ptr, k.u.str.len, &v);
            tpl_value_free(&k);
            if (!ok) {
                fail(r->c, n->pos, "out of memory");
                goto bad;
            }
        }
        return true;
    bad:
        tpl_value_free(out);
        return false;
    }
    case E_COND: {
        tpl_value_t c;
        if (!eval(r, n->kids[1], &c))
            return false;
        bool t = tpl_value_truthy(&c);
        tpl_value_free(&c);
        if (t)
            return eval(r, n->kids[0], out);
        if (n->nkids > 2)
            return eval(r, n->kids[2], out);
        /* Jinja yields a lenient Undefined here even under StrictUndefined; it renders
         * as "" and that is what we produce. */
        return tpl_value_string(out, "", 0) || fail(r->c, n->pos, "out of memory");
    }
    default:
        return fail(r->c, n->pos, "internal error: unexpected node");
    }
}

/* ---------------------------------------------------------------- statements */

static bool render_body(render_t *r, const node_t *body);

static bool make_loop(render_t *r, size_t i, size_t len, tpl_value_t *loop, size_t pos)
{
    static const char *const names[] = {"index", "index0", "revindex", "revindex0", "first",
                                        "last",  "length", "depth",    "depth0"};
    int64_t vals[] = {(int64_t)i + 1,         (int64_t)i, (int64_t)(len - i),
                      (int64_t)(len - i - 1), i == 0,     i + 1 == len,
                      (int64_t)len,           1,          0};
    *loop = tpl_value_dict();
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        tpl_value_t v = (k == 4 || k == 5) ? tpl_value_bool(vals[k] != 0) : tpl_value_int(vals[k]);
        if (!tpl_value_dict_set(loop, names[k], &v)) {
            tpl_value_free(loop);
            return fail(r->c, pos, "out of memory");
        }
    }
    if (!charge(r, 10, pos)) {
        tpl_value_free(loop);
        return false;
    }
    return true;
}

static bool render_for(render_t *r, const node_t *n)
{
    tpl_value_t seq;
    if (!eval(r, n->kids[0], &seq))
        return false;
    size_t len;
    if (seq.type == TPL_LIST)
        len = seq.u.list.len;
    else if (seq.type == TPL_DICT)
        len = seq.u.dict.len;
    else if (seq.type == TPL_STRING)
        len = utf8_len(seq.u.str.ptr, seq.u.str.len);
    else {
        tpl_type_t t = seq.type;
        tpl_value_free(&seq);
        return fail(r->c, n->kids[0]->pos, "cannot loop over %s", tpl_type_name(t));
    }
    bool ok = true;
    size_t spos = 0;
    for (size_t i = 0; i < len && ok; i++) {
        tpl_value_t item, loop;
        if (seq.type == TPL_LIST) {
            ok = copy_value(r, &item, &seq.u.list.items[i], n->pos);
        } else if (seq.type == TPL_DICT) {
            ok = tpl_value_string(&item, seq.u.dict.items[i].key, seq.u.dict.items[i].klen) ||
                 fail(r->c, n->pos, "out of memory");
        } else {
            size_t e = utf8_next(seq.u.str.ptr, seq.u.str.len, spos);
            ok = tpl_value_string(&item, seq.u.str.ptr + spos, e - spos) ||
                 fail(r->c, n->pos, "out of memory");
            spos = e;
        }
        if (!ok)
            break;
        /* Each iteration gets a fresh scope: sets inside the body do not survive it,
         * exactly as in Jinja. */
        if (!scope_push(r, n->pos)) {
            tpl_value_free(&item);
            ok = false;
            break;
        }
        ok = scope_set(r, n->name, &item, n->pos) && make_loop(r, i, len, &loop, n->pos) &&
             scope_set(r, "loop", &loop, n->pos) && render_body(r, n->kids[1]);
        scope_pop(r);
    }
    tpl_value_free(&seq);
    if (ok && len == 0 && n->nkids > 2) {
        ok = scope_push(r, n->pos);
        if (ok) {
            ok = render_body(r, n->kids[2]);
            scope_pop(r);
        }
    }
    return ok;
}

static bool render_stmt(render_t *r, const node_t *n)
{
    if (!charge(r, 1, n->pos))
        return false;
    switch (n->kind) {
    case N_DATA:
        buf_add(&r->out, r->c->src + n->pos, n->len);
        return buf_check(r, &r->out, n->pos) && charge(r, n->len / 16, n->pos);
    case N_OUTPUT: {
        tpl_value_t v;
        if (!eval(r, n->kids[0], &v))
            return false;
        size_t before = r->out.len;
        value_str(&r->out, &v, false);
        tpl_value_free(&v);
        return buf_check(r, &r->out, n->pos) && charge(r, (r->out.len - before) / 16, n->pos);
    }
    case N_IF:
        for (size_t i = 0; i + 1 < n->nkids; i += 2) {
            tpl_value_t c;
            if (!eval(r, n->kids[i], &c))
                return false;
            bool t = tpl_value_truthy(&c);
            tpl_value_free(&c);
            if (t)
                return render_body(r, n->kids[i + 1]);
        }
        if (n->nkids % 2)
            return render_body(r, n->kids[n->nkids - 1]);
        return true;
    case N_FOR:
        return render_for(r, n);
    case N_SET: {
        tpl_value_t v;
        if (!eval(r, n->kids[0], &v))
            return false;
        return scope_set(r, n->name, &v, n->pos);
    }
    case N_SETBLOCK: {
        /* Render into the output, then cut what was rendered out into the variable. */
        size_t mark = r->out.len;
        if (!render_body(r, n->kids[0]))
            return false;
        tpl_value_t v;
        if (!tpl_value_string(&v, r->out.ptr ? r->out.ptr + mark : "", r->out.len - mark))
            return fail(r->c, n->pos, "out of memory");
        r->out.len = mark;
        if (r->out.ptr)
            r->out.ptr[mark] = '\0';
        return scope_set(r, n->name, &v, n->pos);
    }
    case N_DO: {
        tpl_value_t v;
        if (!eval(r, n->kids[0], &v))
            return false;
        tpl_value_free(&v);
        return true;
    }
    default:
        return fail(r->c, n->pos, "internal error: unexpected statement");
    }
}

static bool render_body(render_t *r, const node_t *body)
{
    for (size_t i = 0; i < body->nkids; i++)
        if (!render_stmt(r, body->kids[i]))
            return false;
    return true;
}

/* ---------------------------------------------------------------- entry point */

/* Jinja reads \r\n and \r as \n and drops one trailing newline before lexing; doing the
 * same up front keeps every later offset consistent with the lines Jinja reports. */
static char *normalize(const char *src, size_t len, size_t *outlen)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[j++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[j++] = src[i];
        }
    }
    if (j > 0 && s[j - 1] == '\n')
        j--;
    s[j] = '\0';
    *outlen = j;
    return s;
}

bool tpl_render(const char *file, const char *src, size_t len, const tpl_host_t *host, char **out,
                size_t *outlen, tpl_error_t *err)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    memset(err, 0, sizeof *err);
    size_t nlen = 0;
    char *norm = normalize(src ? src : "", src ? len : 0, &nlen);
    ctx_t c = {.file = file, .src = norm, .len = nlen, .err = err};
    if (!norm)
        return fail(&c, 0, "out of memory");
    lexer_t lx = {.c = &c};
    node_t *root = NULL;
    render_t r = {.c = &c, .host = host, .max_steps = TPL_MAX_STEPS, .max_output = TPL_MAX_OUTPUT};
    if (host && host->max_steps && host->max_steps < r.max_steps)
        r.max_steps = host->max_steps;
    if (host && host->max_output && host->max_output < r.max_output)
        r.max_output = host->max_output;
    r.out = render_buf(&r);
    bool ok = lex(&lx);
    if (ok) {
        parser_t p = {.c = &c, .t = lx.toks, .n = lx.n};
        int which;
        root = parse_body(&p, NULL, 0, 0, NULL, &which);
        ok = root != NULL;
    }
    if (ok)
        ok = scope_push(&r, 0) && render_body(&r, root);
    if (ok && !r.out.ptr)
        ok = buf_reserve(&r.out, 0) || fail(&c, 0, "out of memory");
    if (ok) {
        *out = r.out.ptr;
        if (outlen)
            *outlen = r.out.len;
    } else {
        free(r.out.ptr);
    }
    while (r.nscopes)
        scope_pop(&r);
    free(r.scopes);
    node_free(root);
    for (size_t i = 0; i < lx.n; i++)
        free(lx.toks[i].str);
    free(lx.toks);
    free(norm);
    return ok;
}
