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
    const char *config;  /* -c FILE */
    const char *select;  /* -s/--select: dbt-style selectors, comma or space separated */
    const char *exclude; /* --exclude */
    const char *vars;    /* --vars '{"k": "v"}' (JSON or YAML flow mapping) */
    const char *url;     /* --url for `eltd health` */
    bool full_refresh;   /* --full-refresh */
} cli_t;

/* Commands. cfg is loaded and validated before the call (NULL for those that need none). */
int cmd_validate(const cli_t *c, config_t *cfg);
int cmd_run(const cli_t *c, config_t *cfg);
int cmd_serve(const cli_t *c, config_t *cfg);
int cmd_health(const cli_t *c, config_t *cfg); /* loads the config itself when no --url */

#endif
