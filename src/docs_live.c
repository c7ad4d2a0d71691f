/* docs_live.c — the daemon's /docs, rebuilt after each run (see docs_live.h). */
#include "docs_live.h"

#include "docs_fetch.h"
#include "log.h"
#include "models.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void docs_live_init(docs_live_t *d, const config_t *cfg, ch_client_t *ch)
{
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->ch = ch;
}

static void on_catalog(void *ud, const char *const *answers, const char *err)
{
    docs_live_t *d = ud;
    d->busy = false;
    if (d->closed)
        return;
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    if (err)
        log_warn("event=docs_catalog_failed error=%s", log_quote(err));
    char why[1024];
    models_project_t p;
    docs_files_t files;
    if (!models_load(&p, d->cfg, NULL, why, sizeof why)) {
        log_warn("event=docs_not_built error=%s", log_quote(why));
    } else {
        if (!p.present) {
            log_debug("event=docs_not_built error=\"no dbt project at models.path\"");
        } else if (!docs_build(&p, d->cfg, err ? NULL : answers, now, &files, why, sizeof why)) {
            log_warn("event=docs_not_built error=%s", log_quote(why));
        } else {
            docs_files_free(&d->files);
            d->files = files;
            d->with_catalog = !err;
            snprintf(d->built_at, sizeof d->built_at, "%s", now);
            log_info("event=docs_built models=%zu tests=%zu catalog=%d bytes=%zu", p.nmodels,
                     p.ntests, d->with_catalog, d->files.html_len);
        }
        models_free(&p);
    }
    if (d->again) {
        d->again = false;
        docs_live_refresh(d);
    }
}

void docs_live_refresh(docs_live_t *d)
{
    if (d->closed)
        return;
    if (d->busy) {
        d->again = true;
        return;
    }
    d->busy = docs_fetch_catalog(d->ch, d->cfg, on_catalog, d);
    if (!d->busy)
        log_warn("event=docs_not_built error=\"out of memory\"");
}

void docs_live_close(docs_live_t *d)
{
    d->closed = true;
    docs_files_free(&d->files);
}
