/* fuzz_config.c — libFuzzer target for the config loader: config_load_string on arbitrary
 * YAML, with a few environment variables set for ${VAR} substitution.
 *
 * Checked: no crash, leak or UB; a refusal carries a non-empty "NAME:LINE:COL: message" that
 * fits its buffer; an accepted config is internally consistent (bounds the key table
 * promises) and can be printed and freed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    setenv("PGHOST", "db.internal", 1);
    setenv("PGPORT", "5433", 1);
    setenv("ELTD_API_TOKEN", "s3cret-token", 1);
    setenv("ELTD_SCHEDULE", "*/15 2-6 * * mon-fri", 1);
    setenv("ELTD_TIMEZONE", "Europe/Berlin", 1);
    setenv("EMPTY", "", 1);
    setenv("DOLLAR", "$HOME ${PGHOST} $$", 1);
    setenv("LONG", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1);
    unsetenv("ELTD_UNSET");
    return 0;
}

static void check_config(const config_t *c)
{
    CHECK(c->path != NULL);
    CHECK(c->ntables == 0 || c->tables != NULL);
    for (size_t i = 0; i < c->ntables; i++) {
        const config_table_t *t = &c->tables[i];
        CHECK(t->name && *t->name && t->target && *t->target && t->schema && *t->schema);
        CHECK(t->mode == LOAD_MODE_FULL || t->mode == LOAD_MODE_INCREMENTAL);
        CHECK(t->nkey == 0 || t->key != NULL);
        for (size_t k = 0; k < t->nkey; k++)
            CHECK(t->key[k] != NULL);
        for (size_t k = 0; k < t->ncasts; k++)
            CHECK(t->casts[k].column && t->casts[k].type);
        CHECK(config_find_table(c, t->name) != NULL);
    }
    CHECK(c->run.retries >= 0);
    CHECK(c->run.retry_delay >= 0 && c->run.task_timeout >= 0);
    CHECK(c->run.load_parallelism >= 1 && c->run.model_parallelism >= 1);
    CHECK(c->run.queue_bytes > 0);
    CHECK(c->models.vars == NULL || json_is_object(c->models.vars));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The loader takes a length, but a NUL inside must not confuse it either. */
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512];
    memset(err, 0x55, sizeof err);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (config_load_string(&cfg, "fuzz.yaml", text, size, err, sizeof err)) {
        check_config(&cfg);
        FILE *out = fopen("/dev/null", "w");
        if (out) {
            config_print(&cfg, out);
            fclose(out);
        }
        config_free(&cfg);
    } else {
        CHECK(memchr(err, '\0', sizeof err) != NULL);
        CHECK(strncmp(err, "fuzz.yaml", 9) == 0);
        CHECK(strlen(err) > 10);
    }
    free(text);
    return 0;
}
