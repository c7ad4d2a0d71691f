/* docs.h — `eltd docs`, dbt's `docs generate`: the project's documentation as three files
 * in one directory. manifest.json (dbt's layout, the fields eltd knows): every model, test
 * and source with descriptions, columns, config, code and lineage (parent_map/child_map),
 * and for each source the eltd load that fills it. catalog.json: what ClickHouse holds for
 * those relations (engine, columns and types in order, rows and bytes). index.html: one
 * self-contained page (no script, no external resource) that reads like dbt's docs site.
 * Pure: plain data in, JSON and text out; cmd_docs.c queries ClickHouse and writes files. */
#ifndef ELTD_DOCS_H
#define ELTD_DOCS_H

#include "config.h"
#include "models.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The manifest of a loaded project. Unique ids are dbt's: "model.<project>.<name>",
 * "test.<project>.<model>.<test>", "source.<project>.<source>.<table>" (<project> is the
 * dbt_project.yml name, or "eltd" without one). generated_at is an ISO-8601 UTC time.
 * NULL on out-of-memory. */
json_t *docs_manifest(const models_project_t *p, const config_t *cfg, const char *generated_at);

/* The catalog of the manifest's models and sources from ClickHouse's answers, each
 * TabSeparated (escaped as ClickHouse escapes it), one row per line:
 *   columns: database, table, column name, type, comment   (system.columns, in column order)
 *   tables:  database, name, engine                         (system.tables)
 *   parts:   database, table, rows, bytes_on_disk           (system.parts, active, summed)
 * A relation the manifest names but ClickHouse lacks is left out (the page says "not
 * built"). NULL with err set on a malformed row. */
json_t *docs_catalog(const json_t *manifest, const char *columns_tsv, const char *tables_tsv,
                     const char *parts_tsv, const char *generated_at, char *err, size_t errlen);

/* index.html from the manifest and the catalog (NULL: without types, engines and sizes).
 * malloc'd, NUL-terminated, *len its length; NULL on out-of-memory. */
char *docs_html(const json_t *manifest, const json_t *catalog, size_t *len);

/* The three files, ready to write or serve. */
typedef struct docs_files {
    char *manifest, *catalog, *html; /* NUL-terminated; the JSON indented, keys sorted */
    size_t manifest_len, catalog_len, html_len;
} docs_files_t;

/* Builds the files of project p. answers are the DOCS_Q_* answers of docs_fetch.h, or NULL
 * for an empty catalog (and a page without types, engines and sizes). False with err set;
 * out is then empty. */
bool docs_build(const models_project_t *p, const config_t *cfg, const char *const *answers,
                const char *generated_at, docs_files_t *out, char *err, size_t errlen);
void docs_files_free(docs_files_t *f);

#endif
