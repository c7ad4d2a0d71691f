/* models.h — a dbt project read natively: dbt_project.yml (model-paths, folder configs,
 * vars), every .sql under the model paths rendered through template.c with dbt's functions (ref,
 * source, config, this, is_incremental, var, env_var), sources and tests from the project's .yml
 * files, the model graph (cycles and missing refs are errors naming the file), node
 * selection, and the model/test tasks a run's DAG gets. Errors carry FILE:LINE:COL. */
#ifndef ELTD_MODELS_H
#define ELTD_MODELS_H

#include "config.h"
#include "dag.h"
#include "load.h"
#include "template.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MODELS_WUR __attribute__((warn_unused_result))

typedef enum { MODELS_VIEW, MODELS_TABLE, MODELS_INCREMENTAL } models_mat_t;
typedef enum {
    MODELS_TEST_UNIQUE,
    MODELS_TEST_NOT_NULL,
    MODELS_TEST_ACCEPTED_VALUES,
    MODELS_TEST_RELATIONSHIPS,
} models_test_kind_t;

/* A model's resolved configuration: folder defaults < schema.yml config < config(). */
typedef struct models_config {
    models_mat_t materialized;
    char *engine;       /* default "MergeTree()" */
    char *order_by;     /* default "tuple()" */
    char *partition_by; /* NULL = none */
    char *primary_key;  /* NULL = none */
    char *settings;     /* "k = v, k2 = v2", NULL = none */
    char *unique_key;   /* "a" or "a, b", NULL = none */
    char *strategy;     /* "append" | "delete+insert"; NULL = by unique_key */
    char *alias;        /* relation name instead of the model's, NULL = none */
    char **tags;
    size_t ntags;
    bool enabled;
} models_config_t;

/* A documented column: schema.yml `columns:` entries (name, description). */
typedef struct models_column {
    char *name;
    char *description; /* NULL when none */
} models_column_t;

typedef struct models_model {
    char *name;
    char *file;    /* the file on disk, as errors name it */
    char *path;    /* relative path the path: selector matches ("models/staging/x.sql") */
    char *fqn_dir; /* folders below the model path ("staging"), "" at the top */
    char *raw;     /* template text */
    size_t rawlen;
    char *sql; /* rendered at load with is_incremental() false */
    models_config_t config;
    char *relation; /* `analytics`.`name` (alias honoured) */
    char *ident;    /* name of the relation in the analytics database */
    size_t *refs;   /* indices of the models it ref()s, unique */
    size_t nrefs;
    char **tables; /* ClickHouse raw tables it reads through source() that eltd loads */
    size_t ntables;
    char **sources; /* "source.table" it reads, unique */
    size_t nsources;
    char *description;        /* schema.yml description, NULL when none */
    models_column_t *columns; /* schema.yml columns, in file order */
    size_t ncolumns;
} models_model_t;

typedef struct models_test {
    char *name; /* "unique_order_item_id" (task "test:<model>.<name>") */
    models_test_kind_t kind;
    size_t model;  /* index of the model tested */
    char *column;  /* column or expression */
    char **values; /* accepted_values */
    size_t nvalues;
    bool quote;    /* accepted_values: quote the values (default true) */
    size_t parent; /* relationships: index of the parent model */
    char *field;   /* relationships: parent's column */
    bool warn;     /* severity: warn */
} models_test_t;

typedef struct models_source_table {
    char *source;             /* source name */
    char *table;              /* table name as source() names it */
    char *identifier;         /* table in the database (identifier: or the name) */
    char *database;           /* schema:/database: declared, or NULL */
    char *source_description; /* the source's description, NULL when none */
    char *description;        /* the table's description, NULL when none */
    models_column_t *columns; /* the table's documented columns */
    size_t ncolumns;
} models_source_table_t;

typedef struct models_project {
    const config_t *cfg;
    char *dir;    /* the project directory */
    char *name;   /* dbt_project.yml name, or "" */
    bool present; /* false when the directory does not exist: no models */
    json_t *vars; /* merged: dbt_project.yml < config models.vars < run vars */
    models_model_t *models;
    size_t nmodels;
    size_t *order; /* model indices, dependencies first */
    models_test_t *tests;
    size_t ntests;
    models_source_table_t *srcs;
    size_t nsrcs;
} models_project_t;

/* Reads the project at cfg->models.path (a directory with dbt_project.yml, or a bare models
 * directory), renders every model once, builds and checks the graph. run_vars (may be
 * NULL) override the others. A missing directory gives an empty project (present false).
 * On failure err holds "FILE:LINE:COL: message" (or the cycle path) and *p is freed. */
bool models_load(models_project_t *p, const config_t *cfg, const json_t *run_vars, char *err,
                 size_t errlen) MODELS_WUR;
void models_free(models_project_t *p);

/* Index of the model named name, or -1. */
long models_find(const models_project_t *p, const char *name);

/* Renders model i for execution with is_incremental() as given. *sql is malloc'd. */
bool models_render(const models_project_t *p, size_t i, bool incremental, char **sql, char *err,
                   size_t errlen) MODELS_WUR;

/* Parses --vars: a JSON object or a YAML flow mapping ({k: 1}). NULL with err on failure. */
json_t *models_parse_vars(const char *text, char *err, size_t errlen);

/* What a run does. Masks are malloc'd, one entry per configured table / model / test. */
typedef struct models_selection {
    bool *tables;
    bool *models;
    bool *tests;
} models_selection_t;

/* Evaluates dbt selectors over loads (configured tables), models and tests. tables (may be
 * NULL) are table names selected as loads, on top of select. All NULL = everything. */
bool models_select(const models_project_t *p, const char *const *select, size_t nselect,
                   const char *const *exclude, size_t nexclude, const char *const *tables,
                   size_t ntables, models_selection_t *out, char *err, size_t errlen) MODELS_WUR;
void models_selection_free(models_selection_t *s);

/* Adds `model:<name>` and `test:<model>.<test>` tasks for the selection to d. Each model
 * depends on setup, on the tasks `load:<table>` of its sources and on the models it refs
 * when those are in d; each test on its model (and a relationships parent) when in d. */
bool models_add_tasks(models_project_t *p, dag_t *d, load_env_t *env, const models_selection_t *sel,
                      dag_task_t *setup, char *err, size_t errlen) MODELS_WUR;

const char *models_mat_name(models_mat_t m);
const char *models_test_kind_name(models_test_kind_t k);

/* The configured table whose load fills source table st (its target or its name is st's
 * identifier; the table lands in the raw database under its target), or NULL when eltd does
 * not load it. */
const config_table_t *models_source_load(const config_t *cfg, const models_source_table_t *st);
/* What source() renders for st: `db`.`table`. malloc'd; NULL on out-of-memory. */
char *models_source_relation(const models_project_t *p, const models_source_table_t *st);

#endif
