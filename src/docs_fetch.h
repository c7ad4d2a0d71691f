/* docs_fetch.h — the three catalog queries `eltd docs` and the daemon's /docs ask ClickHouse
 * (columns, tables, active parts of the raw and analytics databases), one after another on
 * the caller's client, read-only. SQL that ClickHouse 18.16 and a current server both
 * answer: no system.columns.position, no system.tables.total_rows. */
#ifndef ELTD_DOCS_FETCH_H
#define ELTD_DOCS_FETCH_H

#include "ch_client.h"
#include "config.h"

enum { DOCS_Q_COLUMNS, DOCS_Q_TABLES, DOCS_Q_PARTS, DOCS_Q_N };

/* Called once: answers[DOCS_Q_*] (TabSeparated, as docs_catalog reads them) when err is
 * NULL, else err says which query failed and why. Both are valid during the call only. */
typedef void (*docs_fetch_cb)(void *ud, const char *const *answers, const char *err);

/* Starts the queries on ch. False on out-of-memory (cb is then never called). */
bool docs_fetch_catalog(ch_client_t *ch, const config_t *cfg, docs_fetch_cb cb, void *ud);

#endif
