/* typemap.h — PostgreSQL column types to ClickHouse column types, and the SELECT expression
 * that makes PostgreSQL's COPY text exactly what ClickHouse's TabSeparated parser reads.
 * Pure functions on plain data: no I/O. */
#ifndef ELTD_TYPEMAP_H
#define ELTD_TYPEMAP_H

#include <stdbool.h>
#include <stddef.h>

/* What the server can store; decided from its version by typemap_caps_for_version. */
typedef struct typemap_caps {
    int major, minor;  /* ClickHouse version */
    bool datetime64;   /* DateTime64(6, 'UTC') keeps microseconds (20.1+) */
    bool date32;       /* Date32 reaches 1900..2299 (21.9+) */
    bool dt64_wide;    /* DateTime64 spans 1900..2299 (22.8+); before: 1925..2283 */
} typemap_caps_t;

/* One PostgreSQL column as read from pg_attribute/pg_type. */
typedef struct typemap_column {
    const char *name;     /* attname */
    const char *typname;  /* pg_type.typname of the column, or of a domain's base type */
    char typtype;         /* pg_type.typtype: 'b' base, 'e' enum, 'd' domain, ... */
    int precision, scale; /* numeric typmod, -1 when unconstrained */
    bool notnull;
    const char *cast;     /* configured ClickHouse type, or NULL */
} typemap_column_t;

typedef struct typemap_out {
    char *ch_type;     /* e.g. "Nullable(Decimal(10, 2))", malloc'd */
    char *select_expr; /* e.g. "\"price\"", malloc'd; its value is COPY text ClickHouse parses */
} typemap_out_t;

void typemap_caps_for_version(typemap_caps_t *caps, const char *version);

/* Maps one column of table (named in errors). Returns false with a message naming table
 * and column for types that have no exact mapping and no cast. */
__attribute__((warn_unused_result)) bool typemap_column(const typemap_column_t *col,
                                                        const char *table,
                                                        const typemap_caps_t *caps,
                                                        typemap_out_t *out, char *err,
                                                        size_t errlen);
void typemap_out_free(typemap_out_t *out);

/* "name" with embedded double quotes doubled, malloc'd: a PostgreSQL identifier. */
char *typemap_pg_ident(const char *name);
/* 'text' with embedded single quotes doubled, malloc'd: a PostgreSQL string literal. */
char *typemap_pg_literal(const char *text);

#endif
