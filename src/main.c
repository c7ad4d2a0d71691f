/* main.c — parses the command line and wires the modules together; nothing else. */
#include "cli.h"
#include "log.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "  test       run the data tests of the selected models (all without -s)\n"
            "             against what ClickHouse holds: dbt test\n"
            "  compile    print each selected model's rendered SQL (no server needed)\n"
            "  plan       print the run's tasks in execution order with their dependencies\n"
            "  docs       dbt docs generate: index.html, manifest.json and catalog.json\n"
            "             (what ClickHouse holds) in --out DIR (default target)\n"
            "  serve      the daemon: cron schedule, HTTP API, metrics, run history\n"
            "  health     GET /health of a running instance (--url, default from\n"
            "             http.listen); exit 0 when healthy, 1 otherwise\n"
            "  version    print the version\n"
            "  config-reference  print the config keys as a Markdown table\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     pipeline config (default conf/pipeline.yaml)\n"
            "  -s, --select SEL...   dbt selectors: name, +name (and its upstream), name+\n"
            "                        (and downstream), path:DIR, tag:T, source:S[.T],\n"
            "                        resource_type:R, config.materialized:M; a table name\n"
            "                        selects its load. Several (-s a b, or -s 'a b') are a\n"
            "                        union; joined by commas (tag:x,path:marts) they\n"
            "                        intersect\n"
            "      --exclude SEL...  leave these out (same syntax)\n"
            "      --vars JSON       vars over the project's and the config's: '{\"k\": 1}'\n"
            "      --full-refresh    reload incremental tables and rebuild incremental models\n"
            "      --url URL         eltd health: base URL (e.g. http://127.0.0.1:5001)\n"
            "      --out DIR         eltd docs: where the files go (default target)\n"
            "      --empty-catalog   eltd docs: do not ask the warehouse; no types or sizes\n"
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

/* dbt's `--select a b`: the words that follow -s or --exclude, up to the next option, join
 * its list (in buf, blank separated). False when they do not fit. */
static bool join_word(const char **list, char *buf, size_t cap, const char *word)
{
    size_t used = 0;
    if (*list != buf) {
        used = (size_t)snprintf(buf, cap, "%s", *list);
        *list = buf;
    } else {
        used = strlen(buf);
    }
    int n = snprintf(buf + (used < cap ? used : cap), used < cap ? cap - used : 0, " %s", word);
    return n >= 0 && used + (size_t)n < cap;
}

static int parse_cli(int argc, char **argv, cli_t *c)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"select", required_argument, NULL, 's'},
        {"full-refresh", no_argument, NULL, 'F'}, {"help", no_argument, NULL, 'h'},
        {"exclude", required_argument, NULL, 'x'}, {"vars", required_argument, NULL, 'v'},
        {"url", required_argument, NULL, 'u'},
        {"out", required_argument, NULL, 'o'},
        {"empty-catalog", no_argument, NULL, 'E'},
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
    /* '+': options in order, so that the words after -s stay with it. */
    for (int ch, last = 0;; last = ch) {
        ch = getopt_long(argc, argv, "+c:s:h", opts, NULL);
        if (ch == -1) {
            if (optind >= argc || argv[optind][0] == '-' || !strcmp(argv[optind - 1], "--") ||
                (last != 's' && last != 'x'))
                break;
            bool sel = last == 's';
            if (!join_word(sel ? &c->select : &c->exclude, sel ? c->select_words : c->exclude_words,
                           sizeof c->select_words, argv[optind])) {
                fprintf(stderr, "eltd: %s: more than %zu characters of selectors\n",
                        sel ? "--select" : "--exclude", sizeof c->select_words - 1);
                return EXIT_CONFIG;
            }
            optind++;
            ch = last;
            continue;
        }
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
        case 'x':
            c->exclude = optarg;
            break;
        case 'v':
            c->vars = optarg;
            break;
        case 'u':
            c->url = optarg;
            break;
        case 'o':
            c->out = optarg;
            break;
        case 'E':
            c->empty_catalog = true;
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

int cmd_validate(const cli_t *c, config_t *cfg)
{
    (void)c;
    config_print(cfg, stdout);
    return EXIT_OK;
}

/* Every command: its name, whether it needs the config, and its function. */
static const struct command {
    const char *name;
    bool needs_config;
    int (*fn)(const cli_t *c, config_t *cfg);
} commands[] = {
    {"validate", true, cmd_validate},
    {"run", true, cmd_run},
    {"test", true, cmd_test},
    {"compile", true, cmd_compile},
    {"docs", true, cmd_docs},
    {"plan", true, cmd_plan},
    {"serve", true, cmd_serve},
    {"health", false, cmd_health},
    {NULL, false, NULL},
};

int main(int argc, char **argv)
{
    cli_t c = {0};
    int rc = parse_cli(argc, argv, &c);
    if (rc < 0)
        return EXIT_OK;
    if (rc != EXIT_OK)
        return rc;
    if (!strcmp(c.command, "config-reference")) {
        config_print_reference(stdout);
        return EXIT_OK;
    }
    if (!strcmp(c.command, "version")) {
        printf("eltd %s\n", ELTD_VERSION);
        return EXIT_OK;
    }
    const struct command *cmd = commands;
    while (cmd->name && strcmp(cmd->name, c.command))
        cmd++;
    if (!cmd->name) {
        fprintf(stderr, "eltd: unknown command '%s' (see eltd --help)\n", c.command);
        return EXIT_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return EXIT_RUNTIME;
    config_t cfg;
    if (cmd->needs_config && !load_config(&cfg, c.config)) {
        curl_global_cleanup();
        return EXIT_CONFIG;
    }
    rc = cmd->fn(&c, cmd->needs_config ? &cfg : NULL);
    if (cmd->needs_config)
        config_free(&cfg);
    curl_global_cleanup();
    return rc;
}
