/* cmd_docs.c — `eltd docs` (dbt's `docs generate`): reads the project, asks ClickHouse what
 * it holds for the raw and analytics databases (docs_fetch.c, on a short-lived loop), and
 * writes manifest.json, catalog.json and index.html into the output directory, each
 * replaced atomically. With --empty-catalog no server is asked and catalog.json is empty.
 * Nothing in the warehouse is written, so no state lock is taken. */
#include "ch_client.h"
#include "cli.h"
#include "docs.h"
#include "docs_fetch.h"
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

typedef struct catalog_wait {
    ch_client_t *ch;
    char *answer[DOCS_Q_N];
    char err[1024];
    bool done;
} catalog_wait_t;

static void on_client_closed(void *ud)
{
    (void)ud;
}

static void on_catalog(void *ud, const char *const *answers, const char *err)
{
    catalog_wait_t *w = ud;
    w->done = true;
    if (err)
        snprintf(w->err, sizeof w->err, "%s", err);
    for (int q = 0; !err && q < DOCS_Q_N; q++)
        if (!(w->answer[q] = strdup(answers[q])))
            snprintf(w->err, sizeof w->err, "out of memory");
    ch_client_close(w->ch, on_client_closed, NULL);
}

/* The catalog queries on a loop of their own; false with w->err set. */
static bool fetch_catalog(const config_t *cfg, catalog_wait_t *w)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        snprintf(w->err, sizeof w->err, "cannot start the event loop");
        return false;
    }
    ch_client_opts_t co;
    load_ch_opts(cfg, &co);
    if ((w->ch = ch_client_new(&loop, &co, w->err, sizeof w->err))) {
        if (!docs_fetch_catalog(w->ch, cfg, on_catalog, w)) {
            snprintf(w->err, sizeof w->err, "out of memory");
            ch_client_close(w->ch, on_client_closed, NULL);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&loop) != 0)
        log_warn("event=loop_close_busy");
    return !w->err[0];
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
    catalog_wait_t w = {0};
    docs_files_t f = {0};
    if (!c->empty_catalog && !fetch_catalog(cfg, &w)) {
        fprintf(stderr,
                "eltd: %s: %s (the documentation needs the warehouse for its catalog; "
                "--empty-catalog writes it without)\n",
                cfg->warehouse.url, w.err);
    } else if (!docs_build(&p, cfg, c->empty_catalog ? NULL : (const char *const *)w.answer, now,
                           &f, err, sizeof err)) {
        fprintf(stderr, "eltd: docs: %s\n", err);
    } else if (!util_make_dirs(out, err, sizeof err) ||
               !write_out(out, "manifest.json", f.manifest, f.manifest_len, err, sizeof err) ||
               !write_out(out, "catalog.json", f.catalog, f.catalog_len, err, sizeof err) ||
               !write_out(out, "index.html", f.html, f.html_len, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
    } else {
        size_t enabled = 0;
        for (size_t i = 0; i < p.nmodels; i++)
            enabled += p.models[i].config.enabled;
        printf("docs: %s/index.html, manifest.json, catalog.json: %zu models, %zu tests, %zu "
               "sources%s\n",
               out, enabled, p.ntests, p.nsrcs, c->empty_catalog ? " (--empty-catalog)" : "");
        rc = EXIT_OK;
    }
    docs_files_free(&f);
    for (int q = 0; q < DOCS_Q_N; q++)
        free(w.answer[q]);
    models_free(&p);
    return rc;
}
