/* docs_fetch.c — the catalog queries, chained (see docs_fetch.h). */
#include "docs_fetch.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fetch {
    ch_client_t *ch;
    char *sql[DOCS_Q_N];
    char *answer[DOCS_Q_N];
    int next;
    docs_fetch_cb cb;
    void *ud;
} fetch_t;

static void fetch_free(fetch_t *f)
{
    for (int q = 0; q < DOCS_Q_N; q++) {
        free(f->sql[q]);
        free(f->answer[q]);
    }
    free(f);
}

static void fetch_end(fetch_t *f, const char *err)
{
    f->cb(f->ud, (const char *const *)f->answer, err);
    fetch_free(f);
}

static void on_answer(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                      const char *err)
{
    (void)req, (void)status;
    fetch_t *f = ud;
    if (err) {
        char msg[1024];
        snprintf(msg, sizeof msg, "ClickHouse: %s", err);
        fetch_end(f, msg);
        return;
    }
    if (!(f->answer[f->next] = malloc(len + 1))) {
        fetch_end(f, "out of memory");
        return;
    }
    memcpy(f->answer[f->next], body, len + 1);
    if (++f->next == DOCS_Q_N) {
        fetch_end(f, NULL);
        return;
    }
    if (!ch_query(f->ch, f->sql[f->next], "wait_end_of_query=1", on_answer, f))
        fetch_end(f, "out of memory");
}

bool docs_fetch_catalog(ch_client_t *ch, const config_t *cfg, docs_fetch_cb cb, void *ud)
{
    fetch_t *f = calloc(1, sizeof *f);
    if (!f)
        return false;
    f->ch = ch;
    f->cb = cb;
    f->ud = ud;
    char *raw = ch_quote_string(cfg->warehouse.raw_database);
    char *an = ch_quote_string(cfg->warehouse.analytics_database);
    if (raw && an) {
        f->sql[DOCS_Q_COLUMNS] = util_asprintf("SELECT database, table, name, type, comment FROM "
                                               "system.columns WHERE database IN (%s, %s) "
                                               "FORMAT TabSeparated",
                                               raw, an);
        f->sql[DOCS_Q_TABLES] = util_asprintf("SELECT database, name, engine FROM system.tables "
                                              "WHERE database IN (%s, %s) FORMAT TabSeparated",
                                              raw, an);
        f->sql[DOCS_Q_PARTS] =
            util_asprintf("SELECT database, table, sum(rows), sum(bytes_on_disk) FROM "
                          "system.parts WHERE active AND database IN (%s, %s) "
                          "GROUP BY database, table FORMAT TabSeparated",
                          raw, an);
    }
    free(raw);
    free(an);
    bool ok = f->sql[DOCS_Q_COLUMNS] && f->sql[DOCS_Q_TABLES] && f->sql[DOCS_Q_PARTS] &&
              ch_query(ch, f->sql[0], "wait_end_of_query=1", on_answer, f);
    if (!ok)
        fetch_free(f);
    return ok;
}
