/* select.h — dbt's node selection (`--select` / `--exclude`) over a graph of loads, models
 * and tests: `name`, `+name` (with its ancestors), `name+` (with its descendants), `N+name`
 * and `name+N` (N generations), `@name`, `path:dir`, `tag:x`, `source:s` / `source:s.t`,
 * `resource_type:model|test|source`, `config.materialized:view|table|incremental`, globs
 * with `*` and `?`; selectors separated by blanks are a union, joined by commas an
 * intersection (`tag:daily,config.materialized:table`), as in dbt. Pure: plain data in, a
 * mask out; no I/O. */
#ifndef ELTD_SELECT_H
#define ELTD_SELECT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { SELECT_LOAD, SELECT_MODEL, SELECT_TEST } select_kind_t;

/* One node of the graph. Everything is borrowed from the caller for the call. */
typedef struct select_node {
    select_kind_t kind;
    const char *name;         /* model or test name; for loads the ClickHouse table */
    const char *alt;          /* loads: the PostgreSQL table name (also matches); or NULL */
    const char *path;         /* models: "models/staging/stg_orders.sql"; else NULL */
    const char *materialized; /* models: "view", "table" or "incremental"; else NULL */
    const char *const *tags;  /* models: tags */
    size_t ntags;
    const char *const *sources; /* loads: "source.table" names declared for it */
    size_t nsources;
    const size_t *parents; /* indices of the nodes this one reads */
    size_t nparents;
    size_t attached_to; /* tests: index of the model they test */
} select_node_t;

/* Marks in out[] (n entries) the nodes that the union of select[] (all when nselect is 0,
 * tests included) minus the union of exclude[] picks. An entry with commas is the
 * intersection of its parts, each part with its own graph operators ("+b,tag:x"). Tests
 * follow their model: a test is in when its model is selected (or it is picked itself) and
 * neither is excluded. A select entry that matches no node, or a part of one that matches
 * none on its own, is an error naming it; an exclude that matches none is not. Returns
 * false with err set on a malformed or unmatched selector. */
__attribute__((warn_unused_result)) bool select_nodes(const select_node_t *nodes, size_t n,
                                                      const char *const *select, size_t nselect,
                                                      const char *const *exclude, size_t nexclude,
                                                      bool *out, char *err, size_t errlen);

/* Splits a command-line selector list on blanks (dbt's union) into a malloc'd
 * NULL-terminated array of malloc'd strings, commas kept inside an entry; *n gets the
 * count. NULL on out-of-memory. */
char **select_split(const char *list, size_t *n);
void select_split_free(char **v);

#endif
