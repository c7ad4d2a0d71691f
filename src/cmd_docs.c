/* cmd_docs.c — `eltd docs` (dbt's `docs generate`): reads the project, asks ClickHouse what
 * it holds for the raw and analytics databases (three catalog queries, one after another,
 * on a short-lived loop), and writes manifest.json, catalog.json and index.html into the
 * output directory, each replaced atomically. With --empty-catalog no server is asked and
 * catalog.json is empty. Nothing in the warehouse is written, so no state lock is taken. */
#include "ch_client.h"
#include "cli.h"
#include "docs.h"
#include "journal.h"
#include "load.h"
#include "log.h"
#include "models.h"
#include "run.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The catalog queries, in order; each answer is kept for docs_catalog. */
enum { Q_COLUMNS, Q_TABLES, Q_PARTS, Q_N };

typedef struct catalog_fetch {
    uv_loop_t *loop;
    ch_client_t *ch;
    char *sql[Q_N];
    char *answer[Q_N];
    int next;
    char err[1024];
} catalog_fetch_t;

static void fetch_next(catalog_fetch_t *f);

static void on_client_closed(void *ud)
{
    (void)ud;
}

static void on_answer(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                      const char *err)
{
    (void)req, (void)status;
    catalog_fetch_t *f = ud;
    if (err)
        snprintf(f->err, sizeof f->err, "ClickHouse: %s", err);
    else if (!(f->answer[f->next] = malloc(len + 1)))
        snprintf(f->err, sizeof f->err, "out of memory");
    else
        memcpy(f->answer[f->next], body, len + 1);
    f->next++;
    fetch_next(f);
}

static void fetch_next(catalog_fetch_t *f)
{
    if (f->err[0] || f->next == Q_N) {
        ch_client_close(f->ch, on_client_closed, NULL);
        return;
    }
    if (!ch_query(f->ch, f->sql[f->next], "wait_end_of_query=1", on_answer, f)) {
        snprintf(f->err, sizeof f->err, "out of memory");
        ch_client_close(f->ch, on_client_closed, NULL);
    }
}

/* Runs the three queries over the raw and analytics databases. The SQL is what ClickHouse
 * 18.16 and a current server both answer (no system.columns.position, no total_rows). */
static bool fetch_catalog(const config_t *cfg, catalog_fetch_t *f)
{
    char *raw = ch_quote_string(cfg->warehouse.raw_database);
    char *an = ch_quote_string(cfg->warehouse.analytics_database);
    if (raw && an) {
        f->sql[Q_COLUMNS] = util_asprintf("SELECT database, table, name, type, comment FROM "
                                          "system.columns WHERE database IN (%s, %s) "
                                          "FORMAT TabSeparated",
                                          raw, an);
        f->sql[Q_TABLES] = util_asprintf("SELECT database, name, engine FROM system.tables "
                                         "WHERE database IN (%s, %s) FORMAT TabSeparated",
                                         raw, an);
        f->sql[Q_PARTS] = util_asprintf("SELECT database, table, sum(rows), sum(bytes_on_disk) "
                                        "FROM system.parts WHERE active AND database IN (%s, %s) "
                                        "GROUP BY database, table FORMAT TabSeparated",
                                        raw, an);
    }
    free(raw);
    free(an);
    for (int q = 0; q < Q_N; q++)
        if (!f->sql[q]) {
            snprintf(f->err, sizeof f->err, "out of memory");
            return false;
        }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        snprintf(f->err, sizeof f->err, "cannot start the event loop");
        return false;
    }
    f->loop = &loop;
    ch_client_opts_t co;
    load_ch_opts(cfg, &co);
    f->ch = ch_client_new(&loop, &co, f->err, sizeof f->err);
    if (f->ch) {
        fetch_next(f);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&loop) != 0)
        log_warn("event=loop_close_busy");
    return !f->err[0];
}

static void fetch_free(catalog_fetch_t *f)
{
    for (int q = 0; q < Q_N; q++) {
        free(f->sql[q]);
        free(f->answer[q]);
    }
}

/* Writes dir/name atomically. */
static bool write_out(const char *dir, const char *name, const char *data, size_t len, char *err,
                      size_t errlen)
{
    char *path = util_asprintf("%s/%s", dir, name);
    bool ok = path && journal_write_atomic(path, data, len, err, errlen);
    if (!path)
        snprintf(err, errlen, "out of memory");
    free(path);
    return ok;
}

static bool write_json(const char *dir, const char *name, const json_t *j, char *err, size_t errlen)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    bool ok = write_out(dir, name, line, len + 1, err, errlen);
    free(line);
    return ok;
}

int cmd_docs(const cli_t *c, config_t *cfg)
{
    run_request_t req;
    if (!cmd_request_from_cli(c, &req))
        return EXIT_CONFIG;
    char err[1024];
    models_project_t p;
    bool loaded = models_load(&p, cfg, req.vars, err, sizeof err);
    cmd_request_free(&req);
    if (!loaded) {
        fprintf(stderr, "eltd: %s\n", err);
        return EXIT_CONFIG;
    }
    if (!p.present) {
        fprintf(stderr, "eltd: %s: no dbt project there (models.path)\n", p.dir);
        models_free(&p);
        return EXIT_CONFIG;
    }
    const char *out = c->out ? c->out : "target";
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));

    int rc = EXIT_RUNTIME;
    json_t *manifest = docs_manifest(&p, cfg, now), *catalog = NULL;
    catalog_fetch_t f = {0};
    char *html = NULL;
    size_t html_len = 0;
    if (!manifest) {
        fprintf(stderr, "eltd: out of memory\n");
    } else if (!c->empty_catalog && !fetch_catalog(cfg, &f)) {
        fprintf(stderr,
                "eltd: %s: %s (the documentation needs the warehouse for its catalog; "
                "--empty-catalog writes it without)\n",
                cfg->warehouse.url, f.err);
    } else if (!(catalog = c->empty_catalog
                               ? json_pack("{s:{s:s, s:s}, s:{}, s:{}}", "metadata", "generated_at",
                                           now, "generated_by", "eltd", "nodes", "sources")
                               : docs_catalog(manifest, f.answer[Q_COLUMNS], f.answer[Q_TABLES],
                                              f.answer[Q_PARTS], now, err, sizeof err))) {
        fprintf(stderr, "eltd: catalog: %s\n", c->empty_catalog ? "out of memory" : err);
    } else if (!(html = docs_html(manifest, c->empty_catalog ? NULL : catalog, &html_len))) {
        fprintf(stderr, "eltd: out of memory\n");
    } else if (!util_make_dirs(out, err, sizeof err) ||
               !write_json(out, "manifest.json", manifest, err, sizeof err) ||
               !write_json(out, "catalog.json", catalog, err, sizeof err) ||
               !write_out(out, "index.html", html, html_len, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
    } else {
        size_t enabled = 0;
        for (size_t i = 0; i < p.nmodels; i++)
            enabled += p.models[i].config.enabled;
        printf("docs: %s/index.html, manifest.json, catalog.json: %zu models, %zu tests, %zu "
               "sources; %zu relations in the catalog%s\n",
               out, enabled, p.ntests, p.nsrcs,
               json_object_size(json_object_get(catalog, "nodes")) +
                   json_object_size(json_object_get(catalog, "sources")),
               c->empty_catalog ? " (--empty-catalog)" : "");
        rc = EXIT_OK;
    }
    free(html);
    json_decref(catalog);
    json_decref(manifest);
    fetch_free(&f);
    models_free(&p);
    return rc;
}
