/* main.c — parses the command line and wires the modules together; nothing else. */
#include "ch_client.h"
#include "config.h"
#include "log.h"
#include "run.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    EXIT_OK = 0,
    EXIT_RUN_FAILED = 1,
    EXIT_CONFIG = 2,
    EXIT_RUNTIME = 3,
    EXIT_CANCELLED = 4,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: eltd COMMAND [-c FILE] [options]\n"
            "\n"
            "Streams PostgreSQL tables into ClickHouse and builds dbt models on top of them.\n"
            "\n"
            "commands:\n"
            "  validate   load and check the config, print the resolved pipeline\n"
            "  run        perform one run (loads, then models and tests) and exit\n"
            "  version    print the version\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     pipeline config (default conf/pipeline.yaml)\n"
            "  -s, --select NAMES    run only these tables (comma separated)\n"
            "      --full-refresh    reload incremental tables fully\n"
            "  -h, --help            this help\n"
            "\n"
            "exit codes:\n"
            "  0  success\n"
            "  1  the run failed (a task failed; see the log lines)\n"
            "  2  bad command line or bad config (FILE:LINE:COL: message)\n"
            "  3  runtime error (cannot start the loop, state directory, listen address)\n"
            "  4  the run was cancelled (SIGINT/SIGTERM)\n"
            "\n"
            "environment: PGHOST PGPORT POSTGRES_DB POSTGRES_USER POSTGRES_PASSWORD\n"
            "  CLICKHOUSE_URL CLICKHOUSE_USER CLICKHOUSE_PASSWORD ELTD_LISTEN ELTD_API_TOKEN\n"
            "  ELTD_STATE_DIR ELTD_LOG_LEVEL, substituted into ${VAR} references of the config.\n");
}

typedef struct cli {
    const char *command;
    const char *config;
    char *select;
    bool full_refresh;
} cli_t;

static int parse_cli(int argc, char **argv, cli_t *c)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"select", required_argument, NULL, 's'},
        {"full-refresh", no_argument, NULL, 'F'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    c->config = "conf/pipeline.yaml";
    if (argc < 2) {
        usage(stderr);
        return EXIT_CONFIG;
    }
    c->command = argv[1];
    if (!strcmp(c->command, "-h") || !strcmp(c->command, "--help") ||
        !strcmp(c->command, "help")) {
        usage(stdout);
        return -1;
    }
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            c->config = optarg;
            break;
        case 's':
            c->select = optarg;
            break;
        case 'F':
            c->full_refresh = true;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "eltd: unexpected argument '%s'\n", argv[optind]);
        return EXIT_CONFIG;
    }
    return EXIT_OK;
}

static bool load_config(config_t *cfg, const char *file)
{
    char err[1024];
    if (!config_load(cfg, file, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
        return false;
    }
    int ok;
    const char *lvl = getenv("ELTD_LOG_LEVEL");
    log_level_t level = log_level_from_name(lvl && *lvl ? lvl : cfg->log_level, &ok);
    if (!ok) {
        fprintf(stderr, "eltd: %s: log_level: expected debug, info, warn or error\n", file);
        config_free(cfg);
        return false;
    }
    log_set_level(level);
    return true;
}

/* ---- eltd run ---------------------------------------------------------------------- */

typedef struct one_run {
    uv_loop_t *loop;
    run_t *run;
    ch_client_t *ch;
    uv_signal_t sigint, sigterm;
    int exit_code;
} one_run_t;

static void on_signal(uv_signal_t *h, int signum)
{
    one_run_t *o = h->data;
    log_warn("event=signal signal=%d action=cancel_run", signum);
    run_cancel(o->run);
}

static void print_summary(const run_t *r)
{
    printf("\n%-28s %-16s %8s %12s %14s %9s\n", "task", "state", "attempts", "rows", "bytes",
           "seconds");
    for (size_t i = 0; i < r->dag->ntasks; i++) {
        const dag_task_t *t = r->dag->tasks[i];
        double secs = t->finished_at > 0 && t->started_at > 0 ? t->finished_at - t->started_at
                                                              : 0;
        printf("%-28s %-16s %8d %12lld %14lld %9.3f\n", t->name, dag_state_name(t->state),
               t->attempt, (long long)t->rows, (long long)t->bytes, secs);
        if (t->error[0] && t->state != TASK_SUCCESS)
            printf("    error: %s\n", t->error);
    }
    printf("run %lld: %s in %.3f s\n", (long long)r->id, run_state_name(r->state),
           r->finished_at - r->started_at);
    fflush(stdout);
}

static void on_client_closed(void *ud)
{
    (void)ud;
}

static void on_run_freed(void *ud)
{
    one_run_t *o = ud;
    ch_client_close(o->ch, on_client_closed, NULL);
    uv_close((uv_handle_t *)&o->sigint, NULL);
    uv_close((uv_handle_t *)&o->sigterm, NULL);
}

static void on_run_done(run_t *r, void *ud)
{
    one_run_t *o = ud;
    print_summary(r);
    o->exit_code = r->state == RUN_SUCCESS     ? EXIT_OK
                   : r->state == RUN_CANCELLED ? EXIT_CANCELLED
                                               : EXIT_RUN_FAILED;
    run_free(r, on_run_freed, o);
}

static bool split_names(char *list, run_request_t *req, const config_t *cfg)
{
    size_t n = 1;
    for (char *p = list; *p; p++)
        n += *p == ',';
    req->tables = calloc(n, sizeof *req->tables);
    if (!req->tables)
        return false;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (!config_find_table(cfg, tok)) {
            fprintf(stderr, "eltd: --select: '%s' is not a configured table\n", tok);
            return false;
        }
        req->tables[req->ntables++] = tok;
    }
    return true;
}

static int cmd_run(const cli_t *c, const config_t *cfg)
{
    run_request_t req = {.full_refresh = c->full_refresh};
    snprintf(req.trigger, sizeof req.trigger, "cli");
    if (c->select && !split_names(c->select, &req, cfg)) {
        free(req.tables);
        return EXIT_CONFIG;
    }
    one_run_t o = {.exit_code = EXIT_RUNTIME};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        free(req.tables);
        return EXIT_RUNTIME;
    }
    o.loop = &loop;
    char err[1024];
    ch_client_opts_t co = {
        .url = cfg->warehouse.url,
        .user = cfg->warehouse.user,
        .password = cfg->warehouse.password,
        .connect_timeout = cfg->warehouse.connect_timeout,
        .query_timeout = cfg->warehouse.query_timeout,
    };
    o.ch = ch_client_new(&loop, &co, err, sizeof err);
    if (!o.ch) {
        fprintf(stderr, "eltd: %s\n", err);
        free(req.tables);
        uv_loop_close(&loop);
        return EXIT_RUNTIME;
    }
    o.run = run_new(&loop, cfg, o.ch, 1, &req, err, sizeof err);
    free(req.tables);
    if (!o.run || !run_start(o.run, on_run_done, &o, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
        return EXIT_CONFIG;
    }
    uv_signal_init(&loop, &o.sigint);
    uv_signal_init(&loop, &o.sigterm);
    o.sigint.data = o.sigterm.data = &o;
    uv_signal_start(&o.sigint, on_signal, SIGINT);
    uv_signal_start(&o.sigterm, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_warn("event=loop_close_busy");
    return o.exit_code;
}

int main(int argc, char **argv)
{
    cli_t c = {0};
    int rc = parse_cli(argc, argv, &c);
    if (rc < 0)
        return EXIT_OK;
    if (rc != EXIT_OK)
        return rc;
    if (!strcmp(c.command, "version")) {
        printf("eltd %s\n", ELTD_VERSION);
        return EXIT_OK;
    }
    bool known = !strcmp(c.command, "validate") || !strcmp(c.command, "run");
    if (!known) {
        fprintf(stderr, "eltd: unknown command '%s' (see eltd --help)\n", c.command);
        return EXIT_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    config_t cfg;
    if (!load_config(&cfg, c.config))
        return EXIT_CONFIG;
    if (!strcmp(c.command, "validate")) {
        config_print(&cfg, stdout);
        config_free(&cfg);
        return EXIT_OK;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        config_free(&cfg);
        return EXIT_RUNTIME;
    }
    rc = cmd_run(&c, &cfg);
    config_free(&cfg);
    curl_global_cleanup();
    return rc;
}
