/* docs_live.h — the daemon's documentation, served at /docs: built at start and again after
 * every run (so the catalog shows what the run left), from the project on disk and the
 * catalog queries on the service's ClickHouse client. One build at a time; a refresh asked
 * meanwhile runs once after it. A warehouse that cannot answer gives a page without its
 * catalog rather than none; a project that does not load keeps the last good files. */
#ifndef ELTD_DOCS_LIVE_H
#define ELTD_DOCS_LIVE_H

#include "ch_client.h"
#include "config.h"
#include "docs.h"

#include <stdbool.h>

typedef struct docs_live {
    const config_t *cfg;
    ch_client_t *ch;
    docs_files_t files; /* the last build; files.html NULL before the first */
    char built_at[32];  /* its generated_at */
    bool with_catalog;  /* the last build had the warehouse's answers */
    bool busy;          /* a build waits for its catalog queries */
    bool again;         /* a refresh was asked during the build */
    bool closed;        /* docs_live_close was called */
} docs_live_t;

void docs_live_init(docs_live_t *d, const config_t *cfg, ch_client_t *ch);
/* Starts a build, or asks for one more after the build in progress. */
void docs_live_refresh(docs_live_t *d);
/* No build starts from now on; call before the client closes (a build in flight then ends
 * with its queries cancelled). Frees the files. */
void docs_live_close(docs_live_t *d);

#endif
