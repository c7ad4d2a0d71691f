/* config.h — the pipeline configuration: typed structs filled from YAML by one table of
 * known keys (type, default, bounds), with ${VAR} / ${VAR:-default} substitution.
 * Errors name FILE:LINE:COL. See config.c for the key table. */
#ifndef ELTD_CONFIG_H
#define ELTD_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { LOAD_MODE_FULL, LOAD_MODE_INCREMENTAL } load_mode_t;
/* What a split load cuts into ranges (tables[].split_by), in config.c's word order. */
typedef enum { SPLIT_BY_AUTO, SPLIT_BY_PAGES, SPLIT_BY_KEY } split_by_t;

typedef struct config_cast {
    char *column; /* PostgreSQL column name */
    char *type;   /* ClickHouse type to use for it instead of the mapped one */
} config_cast_t;

typedef struct config_table {
    char *name;            /* PostgreSQL table name */
    char *schema;          /* PostgreSQL schema (default public) */
    char *target;          /* ClickHouse table in the raw database (default: name) */
    int mode;              /* load_mode_t */
    char *cursor;          /* incremental: column whose max() is the watermark */
    char **key;            /* ORDER BY / dedup key; default: PostgreSQL primary key */
    size_t nkey;           /* entries in key */
    config_cast_t *casts;  /* per-column ClickHouse type overrides */
    size_t ncasts;         /* entries in casts */
    int64_t split;         /* COPY streams at once, 1..16; 0 = auto (run.split_rows) */
    int split_by;          /* split_by_t: page ranges, key ranges, or pages where possible */
    int line;              /* line of the entry in the config file */
} config_table_t;

typedef struct config {
    char *path; /* file the config came from */
    struct {
        char *host, *database, *user, *password, *schema;
        int64_t port;
        double connect_timeout; /* seconds */
    } source;
    struct {
        char *url, *user, *password, *raw_database, *analytics_database;
        double connect_timeout; /* seconds */
        double query_timeout;   /* seconds, for one statement or one insert */
    } warehouse;
    config_table_t *tables;
    size_t ntables;
    struct {
        char *cron;     /* 5-field expression or @preset; empty = no schedule */
        char *timezone; /* IANA name, default UTC */
        bool catch_up;  /* run once at start when a fire was missed while down */
    } schedule;
    struct {
        int64_t retries;
        double retry_delay;     /* seconds */
        bool retry_backoff;     /* double the delay on each further attempt */
        double max_retry_delay; /* seconds, cap for backoff */
        double task_timeout;    /* seconds, 0 = none */
        int64_t load_parallelism;
        int64_t model_parallelism;
        int64_t queue_bytes;    /* back-pressure cap per table load (shared by its streams) */
        int64_t split_rows;     /* split: auto gives a table one stream per this many rows */
        double shutdown_grace;  /* seconds a running run may take after SIGTERM */
        int64_t keep_runs;      /* runs kept in the history and the journal (2 or more) */
    } run;
    struct {
        char *path;   /* dbt project directory */
        json_t *vars; /* project vars overriding dbt_project.yml (object) */
    } models;
    struct {
        char *listen; /* host:port */
        char *token;  /* bearer token for mutating endpoints; empty = none */
        bool allow_public_without_token;
        int64_t max_connections;
        int64_t rate_during_runs; /* API requests a second while a run is active; 0 = any */
        double header_timeout; /* seconds a client has to send a request head */
        int64_t max_body_bytes;
    } http;
    char *state_dir;
    char *log_level;
} config_t;

/* Loads and validates FILE. On failure returns false and writes "FILE:LINE:COL: message"
 * into err. On success *cfg owns everything; release with config_free. */
__attribute__((warn_unused_result)) bool config_load(config_t *cfg, const char *file, char *err,
                                                     size_t errlen);

/* Same, from a string in memory (tests); name stands in for the file name in errors. */
__attribute__((warn_unused_result)) bool config_load_string(config_t *cfg, const char *name,
                                                            const char *text, size_t len,
                                                            char *err, size_t errlen);

void config_free(config_t *cfg);

/* Prints the resolved configuration as YAML with secrets masked. */
void config_print(const config_t *cfg, FILE *out);

/* Prints the table of known keys (type, default, bounds) as Markdown, for the README. */
void config_print_reference(FILE *out);

/* Returns the table called name, or NULL. */
const config_table_t *config_find_table(const config_t *cfg, const char *name);

/* Substitutes ${VAR} and ${VAR:-default} (and $$ for a literal $) from the environment.
 * Returns a malloc'd string, or NULL with a message in err (an unset variable without a
 * default, or an unterminated reference). Exposed for tests. */
char *config_substitute_env(const char *in, char *err, size_t errlen);

/* Parses "300", "300s", "5m", "1h30m", "250ms" into seconds. */
bool config_parse_duration(const char *s, double *out);
/* Parses "4194304", "4MiB", "512KiB", "1GiB" into bytes. */
bool config_parse_size(const char *s, int64_t *out);

#endif
