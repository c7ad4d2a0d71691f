/* cli.h — the parsed command line and the commands main.c dispatches to. Each command
 * lives in its own file (cmd_<name>.c) and returns the process exit code. */
#ifndef ELTD_CLI_H
#define ELTD_CLI_H

#include "config.h"

#include <stdbool.h>

enum {
    EXIT_OK = 0,
    EXIT_RUN_FAILED = 1,
    EXIT_CONFIG = 2,
    EXIT_RUNTIME = 3,
    EXIT_CANCELLED = 4,
};

typedef struct cli {
    const char *command;
    const char *config;       /* -c FILE */
    const char *select;       /* -s/--select: dbt selectors, blank separated (a union); commas
                                 join an intersection */
    const char *exclude;      /* --exclude */
    char select_words[4096];  /* -s a b c: the words joined, when more than one */
    char exclude_words[4096]; /* --exclude a b */
    const char *vars;         /* --vars '{"k": "v"}' (JSON or YAML flow mapping) */
    const char *url;          /* --url for `eltd health` */
    bool full_refresh;        /* --full-refresh */
    const char *out;          /* eltd docs: --out DIR (default target) */
    bool empty_catalog;       /* eltd docs: --empty-catalog, no warehouse asked */
} cli_t;

struct run_request;

/* A run request from the command line: trigger "cli", --full-refresh, --select, --exclude
 * and --vars. On a bad value prints the reason and returns false with nothing held;
 * otherwise cmd_request_free releases what it filled. */
bool cmd_request_from_cli(const cli_t *c, struct run_request *req);
void cmd_request_free(struct run_request *req);

/* Commands. cfg is loaded and validated before the call (NULL for those that need none). */
int cmd_validate(const cli_t *c, config_t *cfg);
int cmd_run(const cli_t *c, config_t *cfg);
int cmd_test(const cli_t *c, config_t *cfg);
int cmd_docs(const cli_t *c, config_t *cfg);
int cmd_compile(const cli_t *c, config_t *cfg);
int cmd_plan(const cli_t *c, config_t *cfg);
int cmd_serve(const cli_t *c, config_t *cfg);
int cmd_health(const cli_t *c, config_t *cfg); /* loads the config itself when no --url */

#endif
